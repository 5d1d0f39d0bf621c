"""Line art: the fewest clean strokes that redraw a drawing, from every first guess there is (numpy alone).

``draw_lines`` is what ``atelier strokes paint --mode lines`` runs, in Blender's own Python as well
(numpy only: the tracer, the agent and the painter's gradients are all ``runtime.py``/``tracer.py``):

1. **First guesses**: the classical tracer's strokes (``tracer.py``: skeleton, graph walk, joins) and
   the recurrent agent's (StrokeNet: each stroke seeing the real painter's canvas so far).
2. **Refinement through the real painter** at the working size: Adam on the raw stroke parameters
   minimising the image error (full resolution and 2x, 4x pools) + a chamfer term (every ink pixel
   pulls its nearest sample, every sample its nearest ink) + the smoothness penalty, from the
   runtime's hand-written backward pass.
3. **Merging**: two strokes whose ends meet and whose directions continue each other become one
   when the painter's error does not rise; **pruning**: a stroke whose removal does not raise the
   error (by more than ``PRUNE_TOLERANCE``) goes; a stroke painting ink where there is none is gone
   by the same rule, so there are no hairlines or crossings.
4. The candidate with the lowest error wins (1 % of the error per stroke decides near-ties); the
   summary says whose it was.  A first guess whose error before refinement is over ``HOPELESS``
   times the best one's is not refined at all (time goes to the guesses that can win).
"""

import math
import time

import numpy as np

from . import runtime as R
from . import tracer
from .constants import N_POINTS, R_MAX, R_MIN, SIZE, SMOOTHNESS

F32 = np.float32
WORK = 128              # the tracer's and the refinement's working square (pixels)
LINES_CHAMFER = 1.0     # weight of the chamfer term (fraction of the image)
LINES_LR = 0.02         # Adam step on the raw parameters
PRESSURE = 0.95         # a traced stroke's pressure (sigmoid's range; the brush carries the width)
PRUNE_TOLERANCE = 0.002  # relative rise of the error a stroke must prevent to stay
HOPELESS = 1.5          # a first guess this many times the best one's error is not refined
MERGE_DEGREES = 40      # strokes whose ends meet and turn by less than this are joined
MERGE_TOLERANCE = 0.03  # relative rise of the error a merge may cost (one stroke fewer is worth it)


def to_raw(points, brush):
    """Inverse of ``runtime.activate``: raw parameters of points (K, n, 3) and brush (K,)."""
    xy = np.arctanh(np.clip(points[..., :2], -0.999, 0.999))
    p = np.clip(points[..., 2:], 1e-3, 1 - 1e-3)
    b = np.clip(brush, 1e-3, 1 - 1e-3)
    return (np.concatenate([xy, np.log(p / (1 - p))], -1).astype(F32), np.log(b / (1 - b)).astype(F32))


def loss_and_grad(raw_points, raw_brush, target, ink, size, pools=(2, 4)):
    """``runtime.refinement_loss`` at any working ``size``: image loss (+ pools) + chamfer + smoothness."""
    points, brush = R.activate(raw_points, raw_brush)
    xy, radius, state = R.stroke_samples(points, brush, size)
    stamped = [R.stamp(x, r, size) for x, r in zip(xy, radius)]
    alphas = np.stack([a for a, _ in stamped])
    loss, g_canvas = R.image_loss(R.ink_union(alphas), target, pools)
    g_alphas = R.ink_union_backward(alphas, g_canvas)
    g_xy, g_radius = np.zeros_like(xy), np.zeros_like(radius)
    for k, (_, winner) in enumerate(stamped):
        g_xy[k], g_radius[k] = R.stamp_backward(xy[k], radius[k], winner, g_alphas[k])
    distance, g_samples = R.chamfer(xy.reshape(-1, 2), ink, size)
    g_xy += F32(LINES_CHAMFER) * g_samples.reshape(xy.shape)
    g_points, g_brush = R.stroke_samples_backward(state, g_xy, g_radius)
    penalty, g_smooth = R.smoothness(points)
    g_points += F32(SMOOTHNESS / len(points)) * g_smooth
    loss += LINES_CHAMFER * distance + SMOOTHNESS * penalty / len(points)
    g_raw = np.concatenate([g_points[..., :2] * (1 - points[..., :2] ** 2),
                            g_points[..., 2:] * points[..., 2:] * (1 - points[..., 2:])], -1)
    return loss, g_raw, g_brush * brush * (1 - brush), alphas


def refine(points, brush, target, steps, size, deadline=None, lr=LINES_LR):
    """Adam on the raw parameters of (points, brush) against ``target`` (size, size); returns activated strokes."""
    if not len(points) or steps <= 0:
        return points, brush
    params = list(to_raw(points, brush))
    first, second = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    ink = R.ink_pixels(target)
    if len(ink) > 1500:                              # the chamfer's all-pairs table stays small
        ink = ink[np.random.default_rng(0).choice(len(ink), 1500, replace=False)]
    for step in range(1, steps + 1):
        if deadline is not None and time.perf_counter() > deadline:
            break
        _, *grads, _ = loss_and_grad(params[0], params[1], target, ink, size)
        R.adam_step(params, grads, first, second, step, lr)
    return R.activate(*params)


def error(alphas, target):
    """The painter's error of strokes' coverages against the target (MSE at full size and 4x pooled)."""
    return R.real_error(alphas, target)


def errors_without(alphas, target):
    """:func:`error` of the strokes without stroke k, for every k at once (K,): the ink union of the others
    from products before and after k (as ``runtime.ink_union_backward``), the losses batched."""
    rest = 1 - alphas
    before = np.concatenate([np.ones_like(rest[:1]), np.cumprod(rest[:-1], 0)])
    after = np.concatenate([np.cumprod(rest[::-1][:-1], 0)[::-1], np.ones_like(rest[:1])])
    diff = (1 - before * after) - target
    k, h, w = diff.shape
    pooled = diff[:, :h - h % 4, :w - w % 4].reshape(k, h // 4, 4, w // 4, 4).mean((2, 4))
    return (diff * diff).mean((1, 2), dtype=np.float64) + (pooled * pooled).mean((1, 2), dtype=np.float64)


def prune(points, brush, alphas, target, tolerance=PRUNE_TOLERANCE, most=None):
    """Drop strokes (the least useful first) whose removal raises the error by at most ``tolerance``
    (relative); then, while more than ``most`` remain, the least useful."""
    keep = list(range(len(points)))
    current = error(alphas[keep], target) if keep else float("inf")
    while len(keep) > 1:
        trials = errors_without(alphas[keep], target)
        best, k = float(trials.min()), keep[int(trials.argmin())]
        if best <= current * (1 + tolerance) + 1e-9 or (most is not None and len(keep) > most):
            keep.remove(k)
            current = best
        else:
            break
    return points[keep], brush[keep], alphas[keep]


def _ends(points):
    xy = points[..., :2]
    return ((xy[:, 0], xy[:, 0] - xy[:, 1]), (xy[:, -1], xy[:, -1] - xy[:, -2]))


def merge(points, brush, alphas, target, size, tolerance=MERGE_TOLERANCE):
    """Join pairs of strokes whose ends meet (within the wider brush's diameter) and continue each other's
    direction, when the joined stroke's error is at most ``tolerance`` (relative) above the two's."""
    current = error(alphas, target)
    changed = True
    while changed and len(points) > 1:
        changed = False
        dense = R.catmull_rom(points, 4)[0]
        radius = R.brush_radius(brush) * 2
        for a in range(len(points)):
            for b in range(a + 1, len(points)):
                for flip_a, flip_b in ((False, False), (False, True), (True, False), (True, True)):
                    pa = dense[a][::-1] if flip_a else dense[a]      # joined at pa's end and pb's start
                    pb = dense[b][::-1] if flip_b else dense[b]
                    gap = np.hypot(*(pa[-1, :2] - pb[0, :2]))
                    if gap > 2 * max(radius[a], radius[b]) + 2 / size:
                        continue
                    da, db = pa[-1, :2] - pa[-3, :2], pb[2, :2] - pb[0, :2]
                    na, nb = np.hypot(*da), np.hypot(*db)
                    if na == 0 or nb == 0 or da @ db / (na * nb) < math.cos(math.radians(MERGE_DEGREES)):
                        continue
                    joined = np.concatenate([pa, pb])
                    line = tracer.resample(joined[:, :2], N_POINTS)
                    pressure = np.interp(np.linspace(0, 1, N_POINTS), np.linspace(0, 1, len(joined)), joined[:, 2])
                    stroke = np.concatenate([line, pressure[:, None]], -1)[None].astype(F32)
                    width = (brush[a] + brush[b]) / 2
                    others = [k for k in range(len(points)) if k not in (a, b)]
                    new_alpha = R.render_alphas(stroke, [width], size)
                    trial = error(np.concatenate([alphas[others], new_alpha]), target)
                    if trial <= current * (1 + tolerance) + 1e-9:
                        points = np.concatenate([points[others], stroke])
                        brush = np.concatenate([brush[others], [width]]).astype(F32)
                        alphas = np.concatenate([alphas[others], new_alpha])
                        current, changed = trial, True
                        break
                if changed:
                    break
            if changed:
                break
    return points, brush, alphas


def traced(ink, size=WORK):
    """The tracer's strokes of an ink map already at the working size (the baseline, unrefined)."""
    points, brush = tracer.to_strokes(tracer.trace(ink), size)
    if len(points):
        points[..., 2] = PRESSURE
        brush = np.clip(((R_MIN + (R_MAX - R_MIN) * brush) / PRESSURE - R_MIN) / (R_MAX - R_MIN), 0, 1).astype(F32)
    return points, brush


def agent_guess(agent, ink64, strokes):
    """The recurrent agent's strokes (activated), drawn one at a time on the real painter's canvas."""
    raw_points, raw_brush = R.propose(agent, ink64, np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32), strokes,
                                      stop_early=True)
    return R.activate(raw_points, raw_brush)


def draw_lines(ink, strokes=8, agent=None, steps=12, time_limit=None, size=WORK):
    """Strokes (K, n, 3), (K,) of at most ``strokes`` for an ink map (size, size) and a summary: which first
    guess won (``"tracer"`` or ``"agent"``), each candidate's error and stroke count, seconds."""
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    ink = np.asarray(ink, F32)
    target = ink / max(float(ink.max()), 1e-6)
    candidates = {"tracer": traced(target, size)}
    if agent is not None:
        ink64 = R.to_square_area(target, SIZE) if target.shape[0] != SIZE else target
        candidates["agent"] = agent_guess(agent, ink64, strokes)
    results, start = {}, {}
    for name, (points, brush) in candidates.items():
        if not len(points):
            continue
        if len(points) > 2 * strokes:  # a noisy picture traces into hundreds of pieces: the longest only
            points, brush = points[:2 * strokes], brush[:2 * strokes]
        alphas = R.render_alphas(points, brush, size)
        if len(points) > strokes:      # too many first guesses: keep the most useful
            points, brush, alphas = prune(points, brush, alphas, target, most=strokes)
        start[name] = (error(alphas, target), points, brush)
    best_start = min((v[0] for v in start.values()), default=0.0)
    for name, (first_error, points, brush) in start.items():
        if first_error > HOPELESS * best_start:     # refinement will not make up for so bad a start
            continue
        points, brush = refine(points, brush, target, steps, size, deadline)
        points, brush = R.lift_pen(points, brush)
        alphas = R.render_alphas(points, brush, size)
        points, brush, alphas = merge(points, brush, alphas, target, size)
        points, brush, alphas = prune(points, brush, alphas, target)
        results[name] = (error(alphas, target), len(points), points, brush)
    if not results:
        return np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32), {"chosen": None, "seconds": 0.0}
    chosen = min(results, key=lambda k: (results[k][0] * (1 + 0.01 * results[k][1]), results[k][1]))
    summary = {"chosen": chosen, "seconds": round(time.perf_counter() - started, 4),
               "first_errors": {k: round(v[0], 6) for k, v in start.items()},
               "candidates": {k: {"error": round(v[0], 6), "strokes": v[1]} for k, v in results.items()}}
    return results[chosen][2], results[chosen][3], summary
