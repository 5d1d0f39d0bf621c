"""μNCA: ultra-compact neural cellular automata for textures (Mordvintsev & Niklasson, 2021).

A cell holds C numbers, the state s.  One step of the rule, applied to every cell of a
torus at once:

    p      = K_c * s_c                                  (eq. 1: fixed 3x3 filter per channel)
    ds     = W · [s, p, |s|, |p|] + b                   (eq. 2: no hidden layer)
    s'     = s + ds                                     (eq. 3: residual update)
    RGB    = s[:3] + 0.5                                (eq. 4: the first three channels are colour)

W is C x 4C and b has C entries: C(4C+1) parameters, 68/150/264/588 for C = 4/6/8/12.
Channel c is perceived with ``FILTER_OF_CHANNEL[c % 4]``: Laplacian, Sobel-x, Sobel-y,
Laplacian, so every model mixes isotropic diffusion with both gradient directions.
The grid wraps around (torus), hence every texture tiles seamlessly.  The seed is
uniform noise in [-0.5, 0.5).

This file holds the constants every runtime shares (numpy, C, GLSL, OSL read them from
here) and the torch implementation used for training.
"""

import numpy as np

PARAMS_TO_CHANNELS = {68: 4, 150: 6, 264: 8, 588: 12}

LAPLACIAN = np.array([[1, 2, 1], [2, -12, 2], [1, 2, 1]], np.float32) / 16
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
SOBEL_Y = SOBEL_X.T.copy()
FILTERS = {"laplacian": LAPLACIAN, "sobel_x": SOBEL_X, "sobel_y": SOBEL_Y}
FILTER_OF_CHANNEL = ("laplacian", "sobel_x", "sobel_y", "laplacian")


def parameter_count(channels):
    return channels * (4 * channels + 1)


def channels_for(params):
    return PARAMS_TO_CHANNELS[params]


def perception_kernels(channels):
    """(C, 3, 3) array: the fixed filter of each channel (eq. 1), as a cross-correlation:
    ``p[y, x] = sum K[1+dy, 1+dx] * s[y+dy, x+dx]`` with rows going down the image."""
    return np.stack([FILTERS[FILTER_OF_CHANNEL[c % 4]] for c in range(channels)])


def seed_state(rng, batch, channels, height, width):
    """The uniform-noise seed, (batch, C, H, W) float32."""
    return rng.random((batch, channels, height, width), dtype=np.float32) - 0.5


# ---------------------------------------------------------------- torch implementation
import torch  # noqa: E402  (the constants above are needed without torch, e.g. in Blender)
import torch.nn.functional as F  # noqa: E402


class MicroNCA(torch.nn.Module):
    """The rule as a torch module: ``forward(s)`` performs one step (eqs. 1-3)."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.w = torch.nn.Parameter(torch.randn(channels, 4 * channels) * 0.01)
        self.b = torch.nn.Parameter(torch.zeros(channels))
        self.register_buffer("kernels", torch.from_numpy(perception_kernels(channels)))

    def forward(self, s, w=None, b=None):
        return step(s, self.kernels, self.w if w is None else w, self.b if b is None else b)


def step(s, kernels, w, b):
    """One step on a (B, C, H, W) batch, written with shifted views and broadcasting only,
    so ``torch.compile`` fuses eqs. 1-3 (forward and backward) into a few loops."""
    height, width = s.shape[2], s.shape[3]
    padded = torch.cat([s[:, :, -1:], s, s[:, :, :1]], 2)  # torus wrap
    padded = torch.cat([padded[:, :, :, -1:], padded, padded[:, :, :, :1]], 3)
    p = sum(kernels[None, :, dy, dx, None, None] * padded[:, :, dy:dy + height, dx:dx + width]
            for dy in range(3) for dx in range(3))
    y = torch.cat([s, p, s.abs(), p.abs()], 1)
    return s + (w[None, :, :, None, None] * y[:, None]).sum(2) + b[None, :, None, None]


def reference_step(s, kernels, w, b):
    """The straightforward port of the reference loop (pad, depthwise conv, concatenate,
    1x1 conv, add): the yardstick for training speed in bench/nca.py."""
    p = F.conv2d(F.pad(s, (1, 1, 1, 1), mode="circular"), kernels[:, None], groups=s.shape[1])
    return s + F.conv2d(torch.cat([s, p, s.abs(), p.abs()], 1), w[:, :, None, None], b)


def rgb(s):
    """Eq. 4: colour of a (B, C, H, W) state, unclipped."""
    return s[:, :3] + 0.5

