"""StrokeNet's fixed numbers and the two small rules built on them, in one place.

The torch code (painter, agents, training) and the numpy runtime (``runtime.py``, which runs in
Blender's own Python) both import them from here, so the two can never disagree.  Plain Python:
no numpy, no torch.
"""

AGENT_KIND = "strokenet_agent"           # model-file kinds (core/modelfile.py) of the two networks
GENERATOR_KIND = "strokenet_generator"

SIZE = 64               # the agents' and the generator's working square (pixels)
N_POINTS = 16           # control points of a stroke (x, y, pressure)
R_MIN, R_MAX = 0.004, 0.06   # brush radius as a fraction of the image size, for b = 0 and b = 1
ALPHA = 0.5             # centripetal Catmull-Rom parametrisation (Yuksel et al. 2011)

SMOOTHNESS = 0.02       # lambda of the neighbouring-point penalty
FAINT = 0.25            # pixels: smaller brush radii are lifted off the paper after refinement
CHAMFER = 3.0           # weight of the chamfer term in inference refinement (judged best of 0.3, 1, 3)
REFINE_POOLS = (2, 4, 8)   # average-pooled views the refinement's image loss adds to full resolution
REFINE_LR = 0.05        # Adam step of the inference refinement
PRUNE_TOLERANCE = 1.001  # a stroke is dropped when the error without it is at most this times the error
                         # with it: ties (a stroke that paints nothing) go to the simpler drawing


def brush_radius(brush):
    """Radius (fraction of image size) of brush value ``b`` in [0, 1] (numbers, numpy arrays or tensors)."""
    return R_MIN + (R_MAX - R_MIN) * brush


def samples_per_segment(size):
    """Spline samples per control-point segment when painting at ``size`` pixels."""
    return max(4, size // 32)
