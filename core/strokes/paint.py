"""Painterly strokes for shaded pictures and photos (numpy alone): K coloured strokes of any width fitted
through the real painter, where tracing a skeleton cannot work.

The canvas is the painter's composite: strokes laid in order on white paper,
``canvas <- canvas (1 - alpha_k) + colour_k alpha_k`` (``runtime.composite``).  Its backward pass,
written here, gives every stroke's coverage and colour their gradients; the coverage's flows on
through the runtime's hand-written painter gradients to the control points and the brush.  Adam then
minimises the picture's error (MSE at full size and 4x pooled), coarse to fine: the first strokes are
wide and fitted at half size, later ones narrower (the order is the painting order).  Each stroke is
laid where the canvas so far is furthest from the picture, the best of a few candidates with its
best colour (stroke-based rendering's greedy placement, Hertzmann 1998), and after each stage the
strokes whose removal would barely change the error are taken away and laid again where it is largest.

First guesses, for the bench's comparison at the same number of steps: ``"greedy"`` (error-weighted
places, coarse to fine), ``"random"`` (uniform places and widths) and ``"tracer"`` (the tracer's
strokes of the picture's ink, padded with random ones up to K).
"""

import numpy as np

from . import runtime as R
from . import tracer
from .constants import N_POINTS

F32 = np.float32
PAINT_SIZE = 64         # the working square (pixels)
PAINT_LR = 0.03
LENGTH = 2.0
TRACED_FIRST = True
CANDIDATES = 8          # candidate strokes tried for each one laid
REPLACED = 0.2          # at most this share of the strokes is moved after a stage,
WEAK = 0.1              # those whose removal costs under this share of the mean stroke's
# share of the strokes, share of the work (steps of all the strokes, or CPU budget), brush range,
# working size (fraction of the picture's)
STAGES = ((0.25, 0.2, (0.6, 1.0), 0.5), (0.25, 0.25, (0.3, 0.6), 1.0), (0.5, 0.55, (0.1, 0.35), 1.0))


def layers(alphas, colours, paper=1.0):
    """The canvas before each stroke and after the last (K + 1, H, W, 3) of ``runtime.composite``."""
    canvases = np.empty((len(alphas) + 1,) + alphas.shape[1:] + (3,), F32)
    canvases[0] = paper
    for i in range(len(alphas)):
        canvases[i + 1] = canvases[i] * (1 - alphas[i, ..., None]) + colours[i] * alphas[i, ..., None]
    return canvases


def composite_backward(alphas, colours, grad, paper=1.0):
    """Gradients of ``runtime.composite`` (alphas (K, H, W), colours (K, 3)) given that of the canvas (H, W, 3)."""
    k = len(alphas)
    canvases = layers(alphas, colours, paper)
    g_alpha, g_colour = np.zeros_like(alphas), np.zeros((k, 3), F32)
    g = grad.astype(F32)
    for i in reversed(range(k)):
        a = alphas[i, ..., None]
        g_alpha[i] = (g * (colours[i] - canvases[i])).sum(-1)
        g_colour[i] = (g * a).sum((0, 1))
        g = g * (1 - a)
    return canvases[-1], g_alpha, g_colour


def picture_loss(canvas, picture):
    """MSE at full size + MSE 4x pooled over the three channels, and its gradient."""
    diff = canvas - picture
    loss, grad = float((diff * diff).mean(dtype=np.float64)), 2 * diff / F32(diff.size)
    h, w = diff.shape[0] // 4 * 4, diff.shape[1] // 4 * 4
    pooled = diff[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean((1, 3))
    loss += float((pooled * pooled).mean(dtype=np.float64))
    spread = np.repeat(np.repeat(2 * pooled / F32(pooled.size * 16), 4, 0), 4, 1)
    grad[:h, :w] += spread
    return loss, grad


def _line_strokes(centres, angles, lengths, brush):
    """Straight strokes of N_POINTS points through ``centres`` (K, 2) in [-1, 1] at ``angles``, ``lengths``."""
    t = np.linspace(-0.5, 0.5, N_POINTS)[None, :, None]
    direction = np.stack([np.cos(angles), np.sin(angles)], -1)[:, None]
    xy = np.clip(centres[:, None] + t * lengths[:, None, None] * direction, -0.98, 0.98)
    points = np.concatenate([xy, np.full(xy.shape[:2] + (1,), 0.9)], -1)
    return points.astype(F32), np.asarray(brush, F32)


def _colour_at(picture, xy):
    size = picture.shape[0]
    px = np.clip(((xy + 1) * size / 2).astype(int), 0, size - 1)
    return picture[px[:, 1], px[:, 0]].astype(F32)


def _ink(picture):
    ink = 1 - picture.min(-1)
    return (ink - ink.min()) / max(float(np.ptp(ink)), 1e-6)


def first_guess(picture, count, kind, rng):
    """(points, brush, colours) of ``count`` strokes for an RGB picture (S, S, 3) in [0, 1]."""
    size = picture.shape[0]
    if kind == "greedy":
        error = np.abs(picture - 1).sum(-1) + 0.05
        # coarse to fine: wide strokes first, narrower later
        brush = np.geomspace(0.9, 0.15, count)
        grey = picture.mean(-1)
        gy, gx = np.gradient(grey)
        weights = (error / error.sum()).ravel()
        cells = rng.choice(size * size, count, p=weights)
        ys, xs = np.divmod(cells, size)
        centres = np.stack([(xs + rng.uniform(0, 1, count)) / size * 2 - 1,
                            (ys + rng.uniform(0, 1, count)) / size * 2 - 1], -1)
        angles = np.arctan2(gy[ys, xs], gx[ys, xs]) + np.pi / 2     # along the edges, across the gradient
        lengths = 2 * np.geomspace(0.5, 0.12, count)
    else:
        centres = rng.uniform(-0.9, 0.9, (count, 2))
        angles = rng.uniform(0, np.pi, count)
        lengths = rng.uniform(0.1, 0.6, count)
        brush = rng.uniform(0.15, 0.9, count)
    points, brush = _line_strokes(centres, angles, lengths, brush)
    if kind == "tracer":
        ink = _ink(picture)
        traced_points, traced_brush = tracer.to_strokes(tracer.trace(ink)[:count], size)
        if len(traced_points):
            traced_points[..., 2] = 0.9
            points = np.concatenate([traced_points, points[len(traced_points):]])
            brush = np.concatenate([traced_brush, brush[len(traced_points):]]).astype(F32)
    colours = _colour_at(picture, points[:, N_POINTS // 2, :2])
    return points, brush, colours


def fit(picture, points, brush, colours, steps, lr=PAINT_LR, until=None):
    """Adam on the strokes' raw parameters and colours against ``picture`` (S, S, 3); returns the strokes.
    ``until``: stop early once this process's CPU time (``time.process_time``) passes it."""
    import time
    from .lines import to_raw
    size = picture.shape[0]
    params = list(to_raw(points, brush)) + [np.asarray(colours, F32).copy()]
    first, second = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        if until is not None and time.process_time() > until:
            break
        pts, br = R.activate(params[0], params[1])
        xy, radius, state = R.stroke_samples(pts, br, size)
        stamped = [R.stamp(x, r, size) for x, r in zip(xy, radius)]
        alphas = np.stack([a for a, _ in stamped])
        canvas, *_ = composite_backward(alphas, params[2], np.zeros((size, size, 3), F32))
        _, g_canvas = picture_loss(canvas, picture)
        _, g_alphas, g_colours = composite_backward(alphas, params[2], g_canvas)
        g_xy, g_radius = np.zeros_like(xy), np.zeros_like(radius)
        for k, (_, winner) in enumerate(stamped):
            g_xy[k], g_radius[k] = R.stamp_backward(xy[k], radius[k], winner, g_alphas[k])
        g_points, g_brush = R.stroke_samples_backward(state, g_xy, g_radius)
        g_raw = np.concatenate([g_points[..., :2] * (1 - pts[..., :2] ** 2),
                                g_points[..., 2:] * pts[..., 2:] * (1 - pts[..., 2:])], -1)
        grads = [g_raw, g_brush * br * (1 - br), g_colours]
        R.adam_step(params, grads, first, second, step, lr)
        np.clip(params[2], 0, 1, out=params[2])
    points, brush = R.activate(params[0], params[1])
    return points, brush, params[2]


def downsampled(picture, size):
    """``picture`` (S, S, 3) averaged down to ``size`` pixels (S a multiple of ``size``)."""
    k = picture.shape[0] // size
    return picture.reshape(size, k, size, k, 3).mean((1, 3), dtype=F32) if k > 1 else picture


def best_colour_and_gain(alphas, canvas, picture):
    """For candidate strokes of coverage ``alphas`` (C, S, S) laid on ``canvas``: the colour (C, 3) that brings
    the canvas closest to ``picture`` (least squares, clipped to [0, 1]) and how much squared error it removes."""
    a = alphas[..., None]
    residual = canvas - picture
    # canvas + a (c - canvas) - picture = residual - a canvas + a c: least squares in c, one channel at a time
    offset = residual - a * canvas
    colours = np.clip(-(a * offset).sum((1, 2)) / np.maximum((a * a).sum((1, 2)), 1e-6), 0, 1).astype(F32)
    after = offset + a * colours[:, None, None]
    return colours, float((residual * residual).sum()) - (after * after).sum((1, 2, 3))


def _placed(picture, canvas, count, brush_range, rng, tries=CANDIDATES):
    """``count`` new strokes laid one by one on ``canvas``, each the best of ``tries`` candidates (with its best
    colour) centred where the canvas differs most from the picture and running along the picture's edges."""
    size = picture.shape[0]
    gy, gx = np.gradient(picture.mean(-1))
    canvas = canvas.copy()
    chosen = [(np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32), np.zeros((0, 3), F32))]
    for _ in range(count):
        error = ((picture - canvas) ** 2).sum(-1) + 1e-6
        cells = rng.choice(size * size, tries, p=(error / error.sum()).ravel())
        ys, xs = np.divmod(cells, size)
        centres = np.stack([(xs + rng.uniform(0, 1, tries)) / size * 2 - 1,
                            (ys + rng.uniform(0, 1, tries)) / size * 2 - 1], -1)
        angles = np.arctan2(gy[ys, xs], gx[ys, xs]) + np.pi / 2 + rng.normal(0, 0.3, tries)
        brush = rng.uniform(*brush_range, tries)
        lengths = LENGTH * (4 * R.brush_radius(brush) + 0.1) * rng.uniform(0.5, 1.5, tries)
        points, brush = _line_strokes(centres, angles, lengths, brush)
        alphas = R.render_alphas(points, brush, size)
        colours, gains = best_colour_and_gain(alphas, canvas, picture)
        best = int(np.argmax(gains))
        a = alphas[best, ..., None]
        canvas = canvas * (1 - a) + colours[best] * a
        chosen.append((points[best:best + 1], brush[best:best + 1], colours[best:best + 1]))
    return tuple(np.concatenate(parts).astype(F32) for parts in zip(*chosen))


def removal_costs(alphas, colours, picture, paper=1.0):
    """How much each stroke's removal would add to the squared error of the composite of all of them.

    The strokes after stroke k act on the canvas affinely, final = A_k T_k + S_k, where A_k is the canvas just
    after stroke k and T_k = prod_{j > k} (1 - alpha_j) what shows through them; A_k = B_k + alpha_k (colour_k
    - B_k) with B_k the canvas before it, so removing stroke k changes the final canvas by
    -alpha_k (colour_k - B_k) T_k."""
    k = len(alphas)
    canvases = layers(alphas, colours, paper)
    residual = canvases[-1] - picture
    through = np.ones(alphas.shape[1:] + (1,), F32)
    costs = np.zeros(k)
    for i in reversed(range(k)):
        change = alphas[i, ..., None] * (colours[i] - canvases[i]) * through
        costs[i] = float(((residual - change) ** 2 - residual ** 2).sum())
        through = through * (1 - alphas[i, ..., None])
    return costs


def replace_weak(picture, points, brush, colours, brush_range, rng, share=REPLACED):
    """Re-placement: the strokes whose removal costs least (at most ``share`` of them, and only those that pay
    for under ``WEAK`` of a mean stroke) are taken away and laid again on top, where the error is largest."""
    size = picture.shape[0]
    costs = removal_costs(R.render_alphas(points, brush, size), colours, picture)
    order = np.argsort(costs)[:int(share * len(costs))]
    weak = order[costs[order] < WEAK * max(float(costs.mean()), 1e-12)]
    if not len(weak):
        return points, brush, colours
    keep = np.setdiff1d(np.arange(len(points)), weak)
    points, brush, colours = points[keep], brush[keep], colours[keep]
    canvas = R.render(points, brush, size, colours)
    p, b, c = _placed(picture, canvas, len(weak), brush_range, rng)
    return np.concatenate([points, p]), np.concatenate([brush, b]), np.concatenate([colours, c])


def paint(picture, count, steps=60, kind="greedy", seed=0, budget=None):
    """Fitted strokes (points, brush, colours) of ``count`` strokes for an RGB picture (S, S, 3).

    ``greedy``: coarse to fine, in stages (``STAGES``: wide, middle, narrow strokes), each laying its strokes
    one by one where the canvas so far is furthest from the picture (the best of a few candidates), fitting
    all the strokes so far (the first stage at half size), then moving those that do not pay for themselves;
    the others start from all their strokes (random or traced) and are fitted the same ``steps``.
    ``steps``: the work of fitting all ``count`` strokes ``steps`` times, as the others do, shared by the
    stages as ``STAGES`` says; ``budget``: CPU seconds instead, shared the same way (the steps are then a cap)."""
    import time
    picture = np.asarray(picture, F32)[..., :3]
    rng = np.random.default_rng(seed)
    start = time.process_time()
    if kind != "greedy":
        points, brush, colours = first_guess(picture, count, kind, rng)
        return fit(picture, points, brush, colours, steps, until=None if budget is None else start + budget)
    size = picture.shape[0]
    points, brush, colours = np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32), np.zeros((0, 3), F32)
    placed, spent = 0, 0.0
    for i, (stroke_share, time_share, brush_range, scale) in enumerate(STAGES):
        last = i == len(STAGES) - 1
        new = count - placed if last else min(count - placed, max(1, int(round(stroke_share * count))))
        # a step costs about as much as the strokes it fits: a stage of fewer strokes takes more steps
        stage_steps = int(round(time_share * steps * count / (placed + new)))
        working = downsampled(picture, max(1, int(size * scale)))
        canvas = R.render(points, brush, len(working), colours) if len(points) else np.ones_like(working)
        p, b, c = _placed(working, canvas, new, brush_range, rng)
        if i == 0 and TRACED_FIRST:          # every first guess: the tracer's strokes lead the coarse stage
            tp, tb, tc = first_guess(picture, new, "tracer", rng)
            traced = min(len(tracer.trace(_ink(picture))), new)
            p[:traced], b[:traced], c[:traced] = tp[:traced], tb[:traced], tc[:traced]
        points, brush, colours = np.concatenate([points, p]), np.concatenate([brush, b]), np.concatenate([colours, c])
        spent += time_share
        until = None if budget is None else start + budget * spent
        points, brush, colours = fit(working, points, brush, colours, stage_steps, until=until)
        if not last:
            points, brush, colours = replace_weak(working, points, brush, colours, brush_range, rng)
        placed += new
    return points, brush, colours
