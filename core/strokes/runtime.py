"""Image to Strokes in numpy alone: the agent, the real painter, its gradients and the refinement.

Blender's own Python has numpy but no torch, so this module is what ``atelier strokes paint``
runs there (``--runtime numpy``, or ``auto`` when torch is missing).  It reproduces, operation
for operation, the torch inference path of StrokeNet (Zheng, Jiang & Huang, ICLR 2019):

* the agent (``agent.Agent``): conv3x3 + ReLU pairs and 2x2 average pooling (VGG-like, with
  CoordConv's two coordinate channels, Liu et al. 2018), a linear layer and three heads; each
  convolution is an im2col gather followed by one matrix product (BLAS does the work);
* the real painting program (``painter.py``): centripetal Catmull-Rom splines (Yuksel et al. 2011,
  Barry-Goldman pyramid) and the capsule coverage of the stamps joined along them,
  ``c = clamp(min(r - d + 1/2, 2 r), 0, 1)`` maximised over the spline's segments;
* its backward pass, derived by hand: every pixel's gradient flows through its winning segment
  only (the derivative of the maximum, as the torch code takes it), then through the spline
  (knots included) and the activations;
* the inference refinement (``agent.refine``): Adam on the raw stroke parameters, minimising
  ``image_loss`` at full resolution and pools (2, 4, 8) + CHAMFER x chamfer + SMOOTHNESS x
  smoothness / K; then ``lift_pen``, ``prune`` and the recurrent agent's ``propose`` rounds,
  as ``agent.draw``.

Arrays are float32, as the torch code's tensors, so both runtimes draw the same strokes up to
rounding.  Imports: numpy, the standard library and numpy-only ``core`` modules; nothing here
may import torch or OpenCV (tests/test_strokes_runtime.py runs it with both blocked).
"""

import math

import numpy as np

from ..errors import AtelierError
from ..modelfile import read_model
from .constants import (AGENT_KIND, ALPHA, CHAMFER, FAINT, N_POINTS, PRUNE_TOLERANCE, REFINE_LR, REFINE_POOLS,
                        SIZE, SMOOTHNESS, brush_radius, samples_per_segment)

F32 = np.float32


# --------------------------------------------------------------------------------------------
# The agent


class Agent:
    """The agent CNN (``agent.Agent``) on numpy arrays: ``raw(x)`` for x (B, C, 64, 64).

    Activations are kept channels-last (B, H, W, C) so that a 3x3 convolution is one gather of
    the nine shifted views into (B H W, 9 C) columns (im2col) and one (9 C, O) matrix product.
    """

    WIDTHS = (32, 64, 128, 128)        # the torch Agent's default width 32: 64 -> 32 -> 16 -> 8 -> 4

    def __init__(self, tensors, hyper, name="agent"):
        self.recurrent = bool(hyper.get("recurrent", False))
        self.coordinates = bool(hyper.get("coordinates", False))
        inputs = (2 if self.recurrent else 1) + 2 * self.coordinates
        expected, index, c = {}, 0, inputs
        for out in self.WIDTHS:                       # the names nn.Sequential gives the layers
            for _ in range(2):
                expected[f"features.{index}.weight"], expected[f"features.{index}.bias"] = (out, c, 3, 3), (out,)
                index, c = index + 2, out
            index += 1                                  # the AvgPool2d
        index += 1                                      # the Flatten
        expected[f"features.{index}.weight"], expected[f"features.{index}.bias"] = (256, c * 16), (256,)
        for head, out in (("positions", 2 * N_POINTS), ("pressures", N_POINTS), ("brush", 1)):
            expected[f"{head}.weight"], expected[f"{head}.bias"] = (out, 256), (out,)
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        if found != expected:
            wrong = sorted(set(found.items()) ^ set(expected.items()))[:3]
            raise AtelierError(f"{name}: agent weights do not match this Atelier's agent (differing: {wrong})")
        t = {k: np.asarray(v, F32) for k, v in tensors.items()}
        names = [k[:-len(".weight")] for k in expected if k.startswith("features.") and k.endswith(".weight")]
        # (O, C, 3, 3) -> (3, 3, C, O) -> (9 C, O): row (ky 3 + kx) C + c, the order of the im2col columns
        self.convs = [(t[f"{n}.weight"].transpose(2, 3, 1, 0).reshape(-1, t[f"{n}.weight"].shape[0]),
                       t[f"{n}.bias"]) for n in names[:-1]]
        # torch flattens (C, 4, 4); the activations here are (4, 4, C): permute the columns once
        w = t[f"{names[-1]}.weight"]
        self.linear = (w.reshape(256, c, 4, 4).transpose(0, 2, 3, 1).reshape(256, -1).T.copy(),
                       t[f"{names[-1]}.bias"])
        # the three heads as one matrix product: positions (2n), pressures (n), brush (1)
        self.heads = (np.concatenate([t[f"{h}.weight"] for h in ("positions", "pressures", "brush")]).T.copy(),
                      np.concatenate([t[f"{h}.bias"] for h in ("positions", "pressures", "brush")]))

    def raw(self, x):
        """Pre-activation strokes: x (B, C, H, W) -> raw points (B, n, 3), raw brush (B,)."""
        x = np.asarray(x, F32).transpose(0, 2, 3, 1)
        if self.coordinates:                            # CoordConv: each pixel's x and y in [-1, 1]
            axis = np.linspace(-1, 1, x.shape[2], dtype=F32)
            grid = np.stack(np.meshgrid(axis, axis, indexing="xy"), -1)      # (H, W, 2): x, y
            x = np.concatenate([x, np.broadcast_to(grid, x.shape[:3] + (2,))], -1)
        for layer, (w, b) in enumerate(self.convs):
            x = conv3x3_relu(x, w, b)
            if layer % 2:                               # after each pair: 2x2 average pooling
                bsz, h, wd, c = x.shape
                x = x.reshape(bsz, h // 2, 2, wd // 2, 2, c).mean((2, 4), dtype=F32)
        h = np.maximum(x.reshape(len(x), -1) @ self.linear[0] + self.linear[1], 0)
        out = h @ self.heads[0] + self.heads[1]
        positions, pressures, brush = out[:, :2 * N_POINTS], out[:, 2 * N_POINTS:3 * N_POINTS], out[:, -1]
        return np.concatenate([positions.reshape(-1, N_POINTS, 2), pressures[..., None]], -1), brush


def conv3x3_relu(x, w, b):
    """ReLU(3x3 convolution, zero padding 1) of channels-last x (B, H, W, C) with w (9 C, O), b (O,)."""
    bsz, h, wd, c = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    columns = np.empty((bsz, h, wd, 9, c), F32)
    for k in range(9):                                  # im2col: the nine shifted views, side by side
        dy, dx = divmod(k, 3)
        columns[:, :, :, k] = padded[:, dy:dy + h, dx:dx + wd]
    out = columns.reshape(bsz * h * wd, 9 * c) @ w
    out += b
    return np.maximum(out, 0, out=out).reshape(bsz, h, wd, -1)


def load_agent(path):
    """(numpy :class:`Agent`, hyperparameters) of an agent file (kind :data:`~.constants.AGENT_KIND`)."""
    tensors, meta = read_model(path, AGENT_KIND)
    hyper = meta.get("hyperparameters", {})
    return Agent(tensors, hyper, str(path)), hyper


def sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(F32)


def activate(raw_points, raw_brush):
    """tanh for positions, sigmoid for pressures and brush (``agent.activate``)."""
    return (np.concatenate([np.tanh(raw_points[..., :2]), sigmoid(raw_points[..., 2:])], -1).astype(F32),
            sigmoid(raw_brush))


# --------------------------------------------------------------------------------------------
# The real painter: spline


def catmull_rom(points, samples):
    """Dense samples (..., (n - 1) samples + 1, d) of the centripetal Catmull-Rom spline through ``points``
    (..., n, d) (``painter.catmull_rom``); returns them and what :func:`catmull_rom_backward` needs.

    Knot spacing ``d_i = (|P_{i+1} - P_i|_xy^2 + 1e-8)^(ALPHA / 2) + 1e-4``, phantom end points
    reflected.  With t = t1 + d2 u the Barry-Goldman pyramid reads, segment by segment:
    ``A1 = P1 + (d2 u / d1)(P1 - P0)``, ``A2 = (1 - u) P1 + u P2``, ``A3 = P2 + (d2 (1 - u) / d3)(P2 - P3)``,
    ``B1 = A2 + w1 (A1 - A2)`` with ``w1 = d2 (1 - u) / (d1 + d2)``, ``B2 = A2 + w2 (A3 - A2)`` with
    ``w2 = d2 u / (d2 + d3)`` and ``C = (1 - u) B1 + u B2``: the same function as the pyramid written
    with t0..t3 (so the same derivatives), in terms that differentiate simply.
    """
    points = np.asarray(points, F32)
    n = points.shape[-2]
    padded = np.concatenate([2 * points[..., :1, :] - points[..., 1:2, :], points,
                             2 * points[..., -1:, :] - points[..., -2:-1, :]], -2)
    p0, p1, p2, p3 = (padded[..., k:k + n - 1, None, :] for k in range(4))     # (..., n - 1, 1, d)
    deltas = [b[..., 0, :2] - a[..., 0, :2] for a, b in ((p0, p1), (p1, p2), (p2, p3))]
    q = [(delta ** 2).sum(-1) + F32(1e-8) for delta in deltas]
    d1, d2, d3 = ((v ** F32(ALPHA / 2) + F32(1e-4))[..., None] for v in q)        # (..., n - 1, 1)
    u = np.linspace(0, 1, samples + 1, dtype=F32)[:-1]                            # (s,)
    r1, r3 = d2 * u / d1, d2 * (1 - u) / d3                                       # (..., n - 1, s)
    w1, w2 = d2 * (1 - u) / (d1 + d2), d2 * u / (d2 + d3)
    a1 = p1 + r1[..., None] * (p1 - p0)
    a2 = (1 - u)[:, None] * p1 + u[:, None] * p2
    a3 = p2 + r3[..., None] * (p2 - p3)
    b1 = a2 + w1[..., None] * (a1 - a2)
    b2 = a2 + w2[..., None] * (a3 - a2)
    curve = b1 + u[:, None] * (b2 - b1)                                           # (..., n - 1, s, d)
    dense = np.concatenate([curve.reshape(points.shape[:-2] + (-1, points.shape[-1])), points[..., -1:, :]], -2)
    cache = (points, samples, u, (p0, p1, p2, p3), deltas, q, (d1, d2, d3), (r1, r3, w1, w2), (a1, a2, a3))
    return dense, cache


def catmull_rom_backward(cache, grad):
    """Gradient with respect to the control points (..., n, d) of :func:`catmull_rom`, given that of its samples."""
    points, samples, u, (p0, p1, p2, p3), deltas, q, (d1, d2, d3), (r1, r3, w1, w2), (a1, a2, a3) = cache
    n, dim = points.shape[-2:]
    g_last = grad[..., -1, :]
    g = grad[..., :-1, :].reshape(points.shape[:-2] + (n - 1, samples, dim))
    # C = (1 - u) B1 + u B2
    gb1, gb2 = (1 - u)[:, None] * g, u[:, None] * g
    # B2 = A2 + w2 (A3 - A2), B1 = A2 + w1 (A1 - A2)
    gw2, gw1 = (gb2 * (a3 - a2)).sum(-1), (gb1 * (a1 - a2)).sum(-1)
    ga3, ga1 = w2[..., None] * gb2, w1[..., None] * gb1
    ga2 = (1 - w2)[..., None] * gb2 + (1 - w1)[..., None] * gb1
    # A3 = P2 + r3 (P2 - P3), A2 = (1 - u) P1 + u P2, A1 = P1 + r1 (P1 - P0)
    gr3, gr1 = (ga3 * (p2 - p3)).sum(-1), (ga1 * (p1 - p0)).sum(-1)
    gp0 = -r1[..., None] * ga1
    gp1 = (1 + r1)[..., None] * ga1 + (1 - u)[:, None] * ga2
    gp2 = (1 + r3)[..., None] * ga3 + u[:, None] * ga2
    gp3 = -r3[..., None] * ga3
    # knots: r1 = d2 u / d1, r3 = d2 (1 - u) / d3, w1 = d2 (1 - u) / (d1 + d2), w2 = d2 u / (d2 + d3)
    d12, d23 = d1 + d2, d2 + d3
    gd1 = (-gr1 * r1 / d1 - gw1 * w1 / d12).sum(-1)
    gd2 = (gr1 * u / d1 + gr3 * (1 - u) / d3 + gw1 * ((1 - u) / d12 - w1 / d12) + gw2 * (u / d23 - w2 / d23)).sum(-1)
    gd3 = (-gr3 * r3 / d3 - gw2 * w2 / d23).sum(-1)
    gp = [v.sum(-2) for v in (gp0, gp1, gp2, gp3)]                                # (..., n - 1, d)
    # d = q^(ALPHA / 2) + 1e-4 with q = |delta|^2 + 1e-8: dd/d delta = ALPHA q^(ALPHA / 2 - 1) delta
    for k, gd in enumerate((gd1, gd2, gd3)):
        g_delta = (gd * F32(ALPHA) * q[k] ** F32(ALPHA / 2 - 1))[..., None] * deltas[k]
        gp[k + 1][..., :2] += g_delta
        gp[k][..., :2] -= g_delta
    g_padded = np.zeros(points.shape[:-2] + (n + 2, dim), F32)
    for k in range(4):
        g_padded[..., k:k + n - 1, :] += gp[k]
    g_points = g_padded[..., 1:n + 1, :].copy()
    g_points[..., 0, :] += 2 * g_padded[..., 0, :]               # phantom first point 2 P_0 - P_1
    g_points[..., 1, :] -= g_padded[..., 0, :]
    g_points[..., -1, :] += 2 * g_padded[..., -1, :] + g_last    # phantom last point 2 P_n - P_{n-1}
    g_points[..., -2, :] -= g_padded[..., -1, :]
    return g_points


def stroke_samples(points, brush, size):
    """Spline samples of strokes (K, n, 3), (K,): pixel positions (K, m, 2) and pixel radii (K, m)
    (``painter.stroke_samples``), and what :func:`stroke_samples_backward` needs."""
    dense, cache = catmull_rom(points, samples_per_segment(size))
    xy = (dense[..., :2] + 1) * F32(size / 2)
    pressure = np.clip(dense[..., 2], 0, 1)
    scale = (brush_radius(np.asarray(brush, F32)) * F32(size))[..., None]
    return xy, scale * pressure, (cache, dense, scale, pressure, size)


def stroke_samples_backward(state, g_xy, g_radius):
    """Gradients (K, n, 3), (K,) of the control points and brush, given those of the samples' xy and radii."""
    cache, dense, scale, pressure, size = state
    g_dense = np.zeros_like(dense)
    g_dense[..., :2] = g_xy * F32(size / 2)
    inside = (dense[..., 2] >= 0) & (dense[..., 2] <= 1)        # torch's clamp passes the gradient at its ends
    g_dense[..., 2] = g_radius * scale * inside
    g_brush = (g_radius * pressure).sum(-1) * F32(size) * F32(brush_radius(1.0) - brush_radius(0.0))
    return catmull_rom_backward(cache, g_dense), g_brush


# --------------------------------------------------------------------------------------------
# The real painter: coverage


def segment_coverage(px, py, ax, ay, bx, by, ra, rb):
    """Coverage of pixel centres (px, py) by the capsule a-b of radii ra-rb (all broadcast together).

    t = clamp((p - a).(b - a) / |b - a|^2, 0, 1) is the nearest point of the segment, d the distance
    to it, r = ra + t (rb - ra) the radius there; coverage clamp(min(r - d + 1/2, 2 r), 0, 1): a
    one-pixel linear ramp at the edge (box-filter anti-aliasing), at most the width of a line
    thinner than a pixel.
    """
    abx, aby, apx, apy = bx - ax, by - ay, px - ax, py - ay
    t = _clip01((apx * abx + apy * aby) / (abx * abx + aby * aby + F32(1e-9)))
    ex, ey = apx - t * abx, apy - t * aby
    d = np.sqrt(ex * ex + ey * ey + F32(1e-9))
    r = ra + t * (rb - ra)
    return _clip01(np.minimum(r - d + F32(0.5), 2 * r))


def _clip01(x):
    """clamp(x, 0, 1) in place (np.clip's own overhead is most of the cost on the painter's small arrays)."""
    return np.minimum(np.maximum(x, 0, out=x), 1, out=x)


def segment_coverage_backward(px, py, ax, ay, bx, by, ra, rb, grad):
    """Gradients of :func:`segment_coverage` (one pixel, one segment per entry, all (N,)) with respect to
    ax, ay, bx, by, ra, rb, given that of the coverage.  torch's rules at the kinks: clamp passes the
    gradient at its bounds, minimum splits it evenly on a tie."""
    abx, aby, apx, apy = bx - ax, by - ay, px - ax, py - ay
    den = abx * abx + aby * aby + F32(1e-9)
    num = apx * abx + apy * aby
    t_raw = num / den
    t = np.clip(t_raw, 0, 1)
    ex, ey = apx - t * abx, apy - t * aby
    d = np.sqrt(ex * ex + ey * ey + F32(1e-9))
    r = ra + t * (rb - ra)
    edge, thin = r - d + F32(0.5), 2 * r
    m = np.minimum(edge, thin)
    gm = grad * ((m >= 0) & (m <= 1))
    g_edge = gm * np.where(edge < thin, F32(1), np.where(edge == thin, F32(0.5), F32(0)))
    g_thin = gm - g_edge
    g_r, g_d = g_edge + 2 * g_thin, -g_edge
    gex, gey = g_d * ex / d, g_d * ey / d
    g_t = -(gex * abx + gey * aby) + g_r * (rb - ra)
    g_ra, g_rb = g_r * (1 - t), g_r * t
    g_t_raw = g_t * ((t_raw >= 0) & (t_raw <= 1))
    g_num, g_den = g_t_raw / den, -g_t_raw * num / (den * den)
    g_apx, g_apy = gex + g_num * abx, gey + g_num * aby
    g_abx = -gex * t + g_num * apx + 2 * g_den * abx
    g_aby = -gey * t + g_num * apy + 2 * g_den * aby
    return -g_apx - g_abx, -g_apy - g_aby, g_abx, g_aby, g_ra, g_rb


def _windows(xy, radius, size, starts, ends):
    """Pixel rectangles (x0, y0, x1, y1), one a row, outside which the samples ``start .. end`` (inclusive) of
    ``xy`` (m, 2), radii ``radius`` (m,), leave no ink: their bounding box grown by the largest radius + 2."""
    lo = np.minimum(np.minimum.reduceat(xy, starts), xy[ends])
    hi = np.maximum(np.maximum.reduceat(xy, starts), xy[ends])
    reach = (np.maximum(np.maximum.reduceat(radius, starts), radius[ends]) + 2)[:, None]
    return np.concatenate([np.clip(np.floor(lo - reach), 0, size), np.clip(np.ceil(hi + reach), 0, size)],
                          1).astype(int).tolist()


def stamp(xy, radius, size, piece=8):
    """Coverage (size, size) of one chain of stamps (``painter.stamp``): samples xy (m, 2), radii (m,).

    The maximum over the segments is taken ``piece`` segments at a time, each in the bounding box
    of its capsules (outside it the coverage is 0): at 64 px a stroke touches a few hundred pixels,
    not 4096.  Also returns each pixel's winning segment (the first of the largest, as torch's max),
    which is where its gradient goes (:func:`stamp_backward`).
    """
    value = np.zeros((size, size), F32)
    winner = np.zeros((size, size), np.intp)
    if len(xy) < 2:                                     # one sample: a dot
        xy, radius = np.concatenate([xy, xy]), np.concatenate([radius, radius])
    starts = np.arange(0, len(xy) - 1, piece)
    ends = np.minimum(starts + piece, len(xy) - 1)
    for start, end, (x0, y0, x1, y1) in zip(starts.tolist(), ends.tolist(), _windows(xy, radius, size, starts, ends)):
        if x1 <= x0 or y1 <= y0:
            continue
        part, r = xy[start:end + 1], radius[start:end + 1]
        px = (np.arange(x0, x1, dtype=F32) + F32(0.5))[None, :, None]
        py = (np.arange(y0, y1, dtype=F32) + F32(0.5))[:, None, None]
        c = segment_coverage(px, py, part[:-1, 0], part[:-1, 1], part[1:, 0], part[1:, 1], r[:-1], r[1:])
        index, best = c.argmax(-1), c.max(-1)
        window, won = value[y0:y1, x0:x1], winner[y0:y1, x0:x1]
        better = best > window                  # strictly: an earlier segment keeps a tie, as in torch
        window[better], won[better] = best[better], index[better] + start
    return value, winner


def stamp_backward(xy, radius, winner, grad):
    """Gradients (m, 2), (m,) of samples and radii of :func:`stamp`, given the coverage's (size, size):
    every pixel's through its winning segment only."""
    size = len(grad)
    g_xy, g_r = np.zeros_like(xy), np.zeros_like(radius)
    if len(xy) < 2:
        return g_xy, g_r
    (x0, y0, x1, y1), = _windows(xy, radius, size, [0], [len(xy) - 1])   # no ink, so no gradient, outside it
    if x1 <= x0 or y1 <= y0:
        return g_xy, g_r
    py, px = np.mgrid[y0:y1, x0:x1].astype(F32) + F32(0.5)
    g, k = grad[y0:y1, x0:x1].ravel(), winner[y0:y1, x0:x1].ravel()
    gax, gay, gbx, gby, gra, grb = segment_coverage_backward(
        px.ravel(), py.ravel(), xy[k, 0], xy[k, 1], xy[k + 1, 0], xy[k + 1, 1], radius[k], radius[k + 1], g)
    m = len(xy)
    for column, ga, gb in ((0, gax, gbx), (1, gay, gby)):
        g_xy[:, column] = np.bincount(k, ga, m) + np.bincount(k + 1, gb, m)
    g_r[:] = np.bincount(k, gra, m) + np.bincount(k + 1, grb, m)
    return g_xy, g_r


def render_alphas(points, brush, size=SIZE):
    """Ink coverage (K, size, size) of strokes (K, n, 3), (K,) (``painter.render_alpha``)."""
    points, brush = np.asarray(points, F32), np.asarray(brush, F32)
    if not len(points):
        return np.zeros((0, size, size), F32)
    xy, radius, _ = stroke_samples(points, brush, size)
    return np.stack([stamp(x, r, size)[0] for x, r in zip(xy, radius)])


def ink_union(alphas):
    """Ink map of black strokes drawn over one another: 1 - prod(1 - alpha)."""
    return (1 - np.prod(1 - alphas, axis=0)).astype(F32)


def ink_union_backward(alphas, grad):
    """d(ink union)/d alpha_k = prod_{j != k} (1 - alpha_j), from products before and after k (no division:
    alpha can be 1)."""
    rest = 1 - alphas
    before = np.concatenate([np.ones_like(rest[:1]), np.cumprod(rest[:-1], 0)])
    after = np.concatenate([np.cumprod(rest[::-1][:-1], 0)[::-1], np.ones_like(rest[:1])])
    return grad * before * after


def composite(alphas, colours, paper=1.0):
    """Lay strokes in order on paper: canvas <- canvas (1 - alpha) + colour alpha.  (K,H,W),(K,3) -> (H,W,3)."""
    canvas = np.full(alphas.shape[1:] + (3,), paper, F32)
    for alpha, colour in zip(alphas, np.asarray(colours, F32)):
        canvas = canvas * (1 - alpha[..., None]) + colour * alpha[..., None]
    return canvas


def render(points, brush, size=SIZE, colours=None):
    """Strokes (K, n, 3), brush (K,) [, colours (K, 3)] -> RGB image (size, size, 3) in [0, 1], white paper
    (``painter.render``)."""
    points = np.asarray(points, F32)
    colours = np.zeros((len(points), 3), F32) if colours is None else np.asarray(colours, F32)
    return composite(render_alphas(points, brush, size), colours)


# --------------------------------------------------------------------------------------------
# Losses of the refinement, each with its gradient


def _pool(image, k):
    h, w = image.shape[0] // k, image.shape[1] // k      # avg_pool2d drops a remainder
    return image[:h * k, :w * k].reshape(h, k, w, k).mean((1, 3), dtype=F32)


def image_loss(canvas, target, pools=(4,)):
    """MSE at full resolution plus MSE of k x k average-pooled images (``agent.image_loss``), and its
    gradient with respect to the canvas (pooling is linear: the pooled difference, spread back)."""
    diff = canvas - target
    loss, grad = float((diff * diff).mean(dtype=np.float64)), 2 * diff / F32(diff.size)
    for k in pools:
        pooled = _pool(diff, k)
        loss += float((pooled * pooled).mean(dtype=np.float64))
        spread = np.repeat(np.repeat(2 * pooled / F32(pooled.size * k * k), k, 0), k, 1)
        grad[:spread.shape[0], :spread.shape[1]] += spread
    return loss, grad


def ink_pixels(target):
    """Centres (x, y) (I, 2) of the target's ink pixels (over half its darkest ink)."""
    rows, cols = np.nonzero(target > 0.5 * target.max())
    return np.stack([cols, rows], -1).astype(F32) + F32(0.5)


def chamfer(xy, ink, size=SIZE):
    """Symmetric chamfer distance (fraction of the image) between spline samples xy (S, 2) and ink pixels
    (I, 2) (``agent.chamfer``) and its gradient with respect to xy: every ink pixel pulls its nearest
    sample and every sample moves towards its nearest ink pixel, along the unit vector between them."""
    if not len(ink):
        return 0.0, np.zeros_like(xy)
    dx, dy = xy[None, :, 0] - ink[:, None, 0], xy[None, :, 1] - ink[:, None, 1]     # (I, S)
    d2 = dx * dx + dy * dy
    nearest_sample, nearest_ink = d2.argmin(1), d2.argmin(0)
    grad = np.zeros_like(xy)
    loss = 0.0
    for i, j, count in ((np.arange(len(ink)), nearest_sample, len(ink)), (nearest_ink, np.arange(len(xy)), len(xy))):
        d = np.sqrt(d2[i, j])
        loss += float(d.mean(dtype=np.float64))
        # d|s - p|/ds = (s - p) / |s - p|, 0 where they coincide (as torch.cdist's gradient)
        unit = np.where(d > 0, 1 / np.maximum(d, F32(1e-30)), 0) / F32(count * size)
        grad[:, 0] += np.bincount(j, dx[i, j] * unit, len(xy))
        grad[:, 1] += np.bincount(j, dy[i, j] * unit, len(xy))
    return loss / size, grad


def smoothness(points):
    """The neighbouring-point penalty sum_i |P_i - P_{i+1}|^2 (positions), batch mean; and its gradient."""
    step = points[:, 1:, :2] - points[:, :-1, :2]
    grad = np.zeros_like(points)
    g = 2 * step / F32(len(points))
    grad[:, 1:, :2] += g
    grad[:, :-1, :2] -= g
    return float((step * step).sum((1, 2), dtype=np.float64).mean()), grad


def refinement_loss(raw_points, raw_brush, target, ink=None):
    """Loss of ``agent.refine`` on raw strokes (K, n, 3), (K,) and its gradients with respect to both:

    L = image_loss(ink_union(render_alpha(strokes)), target, pools 2, 4, 8)
        + CHAMFER chamfer(samples, ink) + SMOOTHNESS smoothness(points) / K

    Backward, by hand: image loss -> canvas -> every stroke's alpha (:func:`ink_union_backward`) ->
    samples and radii through each pixel's winning segment (:func:`stamp_backward`) -> control points
    and brush (:func:`stroke_samples_backward`, the spline's knots included) -> the activations.
    """
    ink = ink_pixels(target) if ink is None else ink
    points, brush = activate(raw_points, raw_brush)
    xy, radius, state = stroke_samples(points, brush, SIZE)
    stamped = [stamp(x, r, SIZE) for x, r in zip(xy, radius)]
    alphas = np.stack([alpha for alpha, _ in stamped])
    loss, g_canvas = image_loss(ink_union(alphas), target, REFINE_POOLS)
    g_alphas = ink_union_backward(alphas, g_canvas)
    g_xy, g_radius = np.zeros_like(xy), np.zeros_like(radius)
    for k, (_, winner) in enumerate(stamped):
        g_xy[k], g_radius[k] = stamp_backward(xy[k], radius[k], winner, g_alphas[k])
    distance, g_samples = chamfer(xy.reshape(-1, 2), ink)
    g_xy += F32(CHAMFER) * g_samples.reshape(xy.shape)
    g_points, g_brush = stroke_samples_backward(state, g_xy, g_radius)
    penalty, g_smooth = smoothness(points)
    g_points += F32(SMOOTHNESS / len(points)) * g_smooth
    loss += CHAMFER * distance + SMOOTHNESS * penalty / len(points)
    # activations: tanh' = 1 - tanh^2, sigmoid' = s (1 - s)
    g_raw = np.concatenate([g_points[..., :2] * (1 - points[..., :2] ** 2),
                            g_points[..., 2:] * points[..., 2:] * (1 - points[..., 2:])], -1)
    return loss, g_raw, g_brush * brush * (1 - brush)


def adam_step(params, grads, first, second, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam update (Kingma & Ba 2015) of every array in ``params``, in place, in torch's form:
    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g²,  p -= lr / (1 - b1^t) · m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    for p, g, m, v in zip(params, grads, first, second):
        m *= F32(beta1)
        m += F32(1 - beta1) * g
        v *= F32(beta2)
        v += F32(1 - beta2) * g * g
        p -= F32(lr / (1 - beta1 ** step)) * m / (np.sqrt(v) / F32(math.sqrt(1 - beta2 ** step)) + F32(eps))


def refine(raw_points, raw_brush, target, iterations, lr=REFINE_LR, progress=None):
    """Inference refinement (``agent.refine``): Adam (Kingma & Ba 2015; torch's defaults: betas 0.9, 0.999,
    eps 1e-8) on the raw stroke parameters through the real painter and :func:`refinement_loss`."""
    params = [np.array(raw_points, F32), np.array(raw_brush, F32)]
    first, second = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    ink = ink_pixels(target)
    if progress:
        progress.stage("refining strokes", iterations)
    for step in range(1, iterations + 1):
        loss, *grads = refinement_loss(params[0], params[1], target, ink)
        adam_step(params, grads, first, second, step, lr)
        if progress:
            progress.update(step, loss=loss)
    return params[0], params[1]


# --------------------------------------------------------------------------------------------
# Drawing: the agent's proposals, pen lifting, pruning (as agent.draw)


def real_error(alphas, target):
    """Image loss (full resolution + 4x pooled) of the ink union of per-stroke ``alphas`` (``agent.real_error``)."""
    canvas = ink_union(alphas) if len(alphas) else np.zeros_like(target)
    return image_loss(canvas, target)[0]


def lift_pen(points, brush):
    """Pressure 0 where the brush radius is under FAINT pixels at the working size (``agent.lift_pen``)."""
    faint = brush_radius(brush)[:, None] * F32(SIZE) * points[..., 2] < FAINT
    points = points.copy()
    points[..., 2][faint] = 0
    return points, brush


def distance_to(mask):
    """Euclidean distance (H, W) from every pixel to the nearest True pixel of ``mask`` (inf if none):
    exact, as two 1-d passes (rows, then columns: Felzenszwalb & Huttenlocher's separation), each a
    brute-force minimum that numpy broadcasts (64^3 values at the agents' size)."""
    h, w = mask.shape
    far = float(h * h + w * w + 1)
    cols, rows = np.arange(w), np.arange(h)
    along = np.where(mask[:, None, :], np.abs(cols[:, None] - cols[None, :])[None], far).min(-1)   # (H, W)
    d2 = (along[None] ** 2 + ((rows[:, None] - rows[None, :]) ** 2)[:, :, None]).min(1)
    return np.where(d2 < far, np.sqrt(d2), np.inf)


def ink_chamfer(alphas, target):
    """Symmetric chamfer distance (pixels) between the painted ink (alpha union > 1/2) and the target's ink
    (``agent.ink_chamfer``), from distance maps instead of all pairs."""
    if not len(alphas):
        return float("inf")
    drawn, wanted = ink_union(alphas) > 0.5, target > 0.5 * target.max()
    if not drawn.any() or not wanted.any():
        return float("inf")
    return float(distance_to(drawn)[wanted].mean() + distance_to(wanted)[drawn].mean()) / 2


def prune(alphas, target):
    """Indices of the strokes to keep, dropping (last first) those whose removal does not raise the real
    error (``agent.prune``); strokes are painted once, their unions recombined."""
    keep = list(range(len(alphas)))
    error = real_error(alphas, target)
    for k in reversed(range(len(alphas))):
        rest = [i for i in keep if i != k]
        if rest:
            without = real_error(alphas[rest], target)
            if without <= error * PRUNE_TOLERANCE:
                keep, error = rest, without
    return keep


def propose(agent, target, raw_points, raw_brush, count, stop_early):
    """The recurrent agent adds up to ``count`` strokes, each seeing the real painter's canvas of those so far;
    with ``stop_early`` it stops when a stroke no longer brings the ink closer to the target's
    (``agent.propose``)."""
    points, brush = activate(raw_points, raw_brush)
    alphas = render_alphas(points, brush)
    error = ink_chamfer(alphas, target)
    for _ in range(count):
        canvas = ink_union(alphas) if len(alphas) else np.zeros_like(target)
        p, b = agent.raw(np.stack([target, canvas])[None])
        new_alphas = np.concatenate([alphas, render_alphas(*activate(p, b))])
        new_error = ink_chamfer(new_alphas, target)
        if stop_early and len(alphas) and new_error >= error:
            break
        raw_points, raw_brush = np.concatenate([raw_points, p]), np.concatenate([raw_brush, b])
        alphas, error = new_alphas, new_error
    return raw_points, raw_brush


def draw(agent, recurrent, target, strokes=8, refine_steps=0, rounds=1, progress=None):
    """Strokes (K, n, 3), (K,) for one ink image (64, 64) (``agent.draw``).

    Without refinement a recurrent drawing stops when a stroke no longer helps.  With it, all
    ``strokes`` are drawn and refined together, hairlines lifted, strokes that do not help pruned;
    each further round (recurrent agents) lets the agent fill the freed places and refines again,
    stopping when the real painter's error no longer drops.
    """
    target = np.asarray(target, F32)
    if not recurrent:
        raw_points, raw_brush = agent.raw(target[None, None])
    else:
        raw_points, raw_brush = propose(agent, target, np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32), strokes,
                                        stop_early=not refine_steps)
    if not refine_steps:
        return activate(raw_points, raw_brush)
    best, best_error = None, float("inf")
    for _ in range(rounds):
        raw_points, raw_brush = refine(raw_points, raw_brush, target, refine_steps, progress=progress)
        points, brush = lift_pen(*activate(raw_points, raw_brush))
        alphas = render_alphas(points, brush)
        keep = prune(alphas, target)
        error = real_error(alphas[keep], target)
        if error >= best_error:
            break
        best, best_error = (points[keep], brush[keep]), error
        if not recurrent or len(keep) == strokes:
            break
        raw_points, raw_brush = propose(agent, target, raw_points[keep], raw_brush[keep], strokes - len(keep), False)
    return best


# --------------------------------------------------------------------------------------------
# Exports and resizing (numpy for both runtimes)


def grease_pencil_strokes(points, brush, colours=None, samples=4):
    """Per-point positions (m, 2) in [-1, 1], radii (m,) as a fraction of the image size, and colour, per stroke.

    The spline is resampled ``samples`` times per segment so the grease-pencil curve follows
    the painted one; radius = r(b) * pressure, as the painter stamps it.  Where the pen is lifted
    (pressure 0) at a stroke's ends, those points are left out; a stroke never touching the paper is dropped.
    """
    points = np.asarray(points, F32)
    brush = np.asarray(brush, F32)
    dense = catmull_rom(points, samples)[0] if len(points) else np.zeros((0, 0, 3), F32)
    colours = np.zeros((len(points), 3), F32) if colours is None else np.asarray(colours, F32)
    strokes = []
    for d, b, c in zip(dense, brush, colours):
        radii = brush_radius(b) * d[:, 2].clip(0, 1)
        drawn = np.flatnonzero(radii > 0)
        if len(drawn):
            span = slice(drawn[0], drawn[-1] + 1)
            strokes.append({"positions": d[span, :2], "radii": radii[span], "colour": c})
    return strokes


def smooth_path(xy):
    """SVG path data of one smooth curve through the points ``xy`` (N, 2): Catmull-Rom, written as
    cubic Béziers (the control points of segment i are P_i + (P_i+1 - P_i-1)/6 and
    P_i+1 - (P_i+2 - P_i)/6), so an editor shows one path whose nodes are the stroke's points."""
    xy = np.asarray(xy, np.float64)
    words = [f"M{xy[0, 0]:.2f},{xy[0, 1]:.2f}"]
    if len(xy) == 1:
        return words[0] + "h0"
    padded = np.concatenate([xy[:1], xy, xy[-1:]])
    for i in range(1, len(padded) - 2):
        c1 = padded[i] + (padded[i + 1] - padded[i - 1]) / 6
        c2 = padded[i + 1] - (padded[i + 2] - padded[i]) / 6
        end = padded[i + 1]
        words.append(f"C{c1[0]:.2f},{c1[1]:.2f} {c2[0]:.2f},{c2[1]:.2f} {end[0]:.2f},{end[1]:.2f}")
    return " ".join(words)


def to_svg(points, brush, size=256, colours=None, samples=1, crop=None):
    """SVG text of the strokes on a ``size`` square (or its ``crop = (x, y, w, h)``): one ``<path>`` per
    stroke, in drawing order, a smooth curve through its points with its colour and mean width; the
    width at each point (the brush pressure) is kept in ``data-widths``."""
    body = []
    for stroke in grease_pencil_strokes(points, brush, colours, samples):
        xy = (stroke["positions"] + 1) * (size / 2)
        width = 2 * stroke["radii"] * size
        colour = "#" + "".join(f"{int(round(255 * v)):02x}" for v in np.clip(stroke["colour"], 0, 1))
        widths = " ".join(f"{w:.2f}" for w in width)
        body.append(f'<path d="{smooth_path(xy)}" stroke="{colour}" stroke-width="{float(np.mean(width)):.2f}" '
                    f'stroke-linecap="round" stroke-linejoin="round" fill="none" data-widths="{widths}"/>')
    x, y, w, h = crop or (0, 0, size, size)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="{x} {y} {w} {h}">\n'
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n")


def area_weights(n_in, n_out, first=0, count=None):
    """(n_out, count) weights of an area-average resize of n_in pixels to n_out, for input pixels
    first .. first + count: output pixel o averages the input over [o s, (o + 1) s), s = n_in / n_out,
    each input pixel weighted by its overlap (OpenCV's INTER_AREA, shrinking and enlarging)."""
    count = n_in - first if count is None else count
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    j = np.arange(first, first + count)[None]
    overlap = np.clip(np.minimum(lo + scale, j + 1) - np.maximum(lo, j), 0, None)
    return (overlap / scale).astype(F32)


def to_square_area(image, size):
    """Pad (H, W[, C]) centred to a square of zeros and area-resize it to ``size``: the padding is never
    built, only the weights of the picture's own rows and columns."""
    image = np.asarray(image, F32)
    h, w = image.shape[:2]
    side = max(h, w)
    rows = area_weights(side, size, (side - h) // 2, h)
    cols = area_weights(side, size, (side - w) // 2, w)
    out = np.tensordot(rows, image, axes=(1, 0))                 # (size, W[, C])
    out = np.tensordot(cols, out, axes=(1, 1))                   # (size, size[, C]), columns first
    return np.swapaxes(out, 0, 1).astype(F32)


def resize_bilinear(image, height, width):
    """Bilinear resize of (H, W[, C]) with pixel centres aligned (OpenCV's INTER_LINEAR), edges clamped."""
    image = np.asarray(image, F32)

    def taps(n_in, n_out):
        at = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        i0 = np.minimum(np.floor(at).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), (at - i0).astype(F32)

    y0, y1, fy = taps(image.shape[0], height)
    x0, x1, fx = taps(image.shape[1], width)
    fy = fy.reshape((-1,) + (1,) * (image.ndim - 1))
    rows = image[y0] * (1 - fy) + image[y1] * fy
    fx = fx.reshape((1, -1) + (1,) * (image.ndim - 2))
    return (rows[:, x0] * (1 - fx) + rows[:, x1] * fx).astype(F32)
