"""The real (non-neural) painting program of StrokeNet (Zheng, Jiang & Huang, ICLR 2019, section 3.1).

Paper: https://openreview.net/forum?id=HJxwDiActX (no arXiv version).  The spline is the centripetal
Catmull-Rom of Yuksel, Schaefer & Keyser, "Parameterization and applications of Catmull-Rom curves", 2011.

A stroke is ``n = 16`` control points ``(x, y, p)`` (position in [-1, 1], y down; pressure
in [0, 1]), a brush value ``b`` in [0, 1] and a colour.  The program draws the centripetal
Catmull-Rom spline through the points, samples it densely and stamps a round,
anti-aliased brush of radius ``r(b) * p`` at every sample.  Consecutive stamps are joined
exactly (the capsule between two samples, radius interpolated linearly), which is the limit
of stamping infinitely densely, so no beading appears whatever the sampling rate.

Everything is batched torch (the same code is differentiable, which the agent uses to refine
its strokes); :func:`render` is the numpy entry point.  ``runtime.py`` has the same painter (and its
gradients) in numpy alone for Blender's own Python; the exports (:func:`grease_pencil_strokes`,
:func:`to_svg`) live there, one implementation for both.  Canvases are *ink* maps: 0 = paper,
1 = full ink; :func:`composite` lays coloured strokes on white paper with the blending rule
``canvas <- canvas * (1 - alpha) + colour * alpha``.
"""

import numpy as np
import torch

from .constants import ALPHA, N_POINTS, R_MAX, R_MIN, SIZE, brush_radius, samples_per_segment  # noqa: F401 (re-exported)
from .runtime import grease_pencil_strokes, to_svg  # noqa: F401 (numpy exports, shared with the numpy runtime)


def catmull_rom(points, samples_per_segment):
    """Dense samples of the centripetal Catmull-Rom spline through ``points`` (..., n, d).

    The knot spacing uses the xy distance to the power ALPHA (the first two columns); any
    further columns (pressure) ride along.  End tangents come from reflected phantom points.
    Barry-Goldman pyramid: returns (..., (n - 1) * samples_per_segment + 1, d)::

        t_{k+1} = t_k + |P_{k+1} - P_k|^alpha        (alpha = 0.5: centripetal)
        A_k = ((t_{k+1} - t) P_k + (t - t_k) P_{k+1}) / (t_{k+1} - t_k)              k = 0, 1, 2
        B_k = ((t_{k+2} - t) A_k + (t - t_k) A_{k+1}) / (t_{k+2} - t_k)              k = 0, 1
        C   = ((t_2 - t) B_0 + (t - t_1) B_1) / (t_2 - t_1),   t in [t_1, t_2)
    """
    first = 2 * points[..., :1, :] - points[..., 1:2, :]
    last = 2 * points[..., -1:, :] - points[..., -2:-1, :]
    padded = torch.cat([first, points, last], dim=-2)
    p0, p1, p2, p3 = (padded[..., k:k + points.shape[-2] - 1, :] for k in range(4))

    def knot(a, b):
        return ((b[..., :2] - a[..., :2]).pow(2).sum(-1, keepdim=True) + 1e-8).pow(ALPHA / 2) + 1e-4

    t0 = torch.zeros_like(p0[..., :1])
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    u = torch.linspace(0, 1, samples_per_segment + 1, dtype=points.dtype, device=points.device)[:-1]
    t = t1.unsqueeze(-2) + (t2 - t1).unsqueeze(-2) * u[:, None]        # (..., seg, s, 1)
    p0, p1, p2, p3, t0, t1, t2, t3 = (v.unsqueeze(-2) for v in (p0, p1, p2, p3, t0, t1, t2, t3))
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    curve = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)
    curve = curve.flatten(-3, -2)
    return torch.cat([curve, points[..., -1:, :]], dim=-2)


def stroke_samples(points, brush, size):
    """Dense spline samples of strokes: (..., m, 2) pixel positions and (..., m) pixel radii."""
    dense = catmull_rom(points, samples_per_segment(size))
    xy = (dense[..., :2] + 1) * (size / 2)
    radius = brush_radius(brush)[..., None] * size * dense[..., 2].clamp(0, 1)
    return xy, radius


def segment_coverage(pixel, a, b, ra, rb):
    """Coverage of pixels (P, 1, 2) by capsules a-b (..., P or 1, k, 2) of radii ra-rb (see :func:`stamp`)::

        s = clamp(((p - a) . (b - a)) / |b - a|^2, 0, 1),   d = |p - a - s (b - a)|,   r = r_a + s (r_b - r_a)
        coverage = clamp(min(r - d + 1/2, 2 r), 0, 1)     (a half-pixel ramp at the edge, anti-aliasing)
    """
    abx, aby = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]     # x and y apart: half the memory traffic of 2-vectors
    apx, apy = pixel[..., 0] - a[..., 0], pixel[..., 1] - a[..., 1]
    t = ((apx * abx + apy * aby) / (abx.square() + aby.square() + 1e-9)).clamp(0, 1)
    d = ((apx - t * abx).square() + (apy - t * aby).square() + 1e-9).sqrt()
    r = ra + t * (rb - ra)
    return torch.minimum(r - d + 0.5, 2 * r).clamp(0, 1)   # a line thinner than a pixel covers at most its width


def stamp(xy, radius, size, chunk=64, window=None):
    """Anti-aliased coverage (..., size, size) of round stamps joined along the polyline ``xy``.

    Coverage of a pixel = clamp(min(r - d + 1/2, 2 r), 0, 1) with ``d`` the distance from the pixel
    centre to the nearest point of the sample chain (a one-pixel linear ramp at the edge:
    box-filter anti-aliasing; a line thinner than a pixel covers at most its width, so pressure 0
    lifts the pen), maximised over all pairs of consecutive samples.  ``window = (x0,
    y0, w, h)`` computes only that rectangle of pixels (returns (..., h, w)): large strokes stay fast.
    When a gradient is needed, the maximum is found without one and only the winning segment of
    each pixel is recomputed with it: the same value and gradient as differentiating the maximum,
    at a fraction of the cost.
    """
    x0, y0, w, h = window or (0, 0, size, size)
    py, px = torch.meshgrid(torch.arange(y0, y0 + h, dtype=xy.dtype, device=xy.device) + 0.5,
                            torch.arange(x0, x0 + w, dtype=xy.dtype, device=xy.device) + 0.5, indexing="ij")
    pixel = torch.stack([px, py], -1).reshape(-1, 1, 2)                  # (P, 1, 2)
    a, b, ra, rb = xy[..., :-1, :], xy[..., 1:, :], radius[..., :-1], radius[..., 1:]
    with torch.no_grad():
        best = value = None
        for start in range(0, a.shape[-2], chunk):
            part = slice(start, start + chunk)
            c = segment_coverage(pixel, a[..., None, part, :], b[..., None, part, :], ra[..., None, part],
                                 rb[..., None, part])
            c, index = c.max(-1)
            if best is None:
                best, value = index, c
            else:
                better = c > value
                best, value = torch.where(better, index + start, best), torch.maximum(c, value)
    if torch.is_grad_enabled() and (xy.requires_grad or radius.requires_grad):
        def pick(v):   # v (..., k[, 2]) -> the winning segment of every pixel (..., P, 1[, 2])
            if v.dim() == xy.dim():
                return torch.gather(v, -2, best[..., None].expand(*best.shape, 2)).unsqueeze(-2)
            return torch.gather(v, -1, best).unsqueeze(-1)
        value = segment_coverage(pixel, pick(a), pick(b), pick(ra), pick(rb))[..., 0]
    return value.unflatten(-1, (h, w))


def stamp_cropped(xy, radius, size, piece=8):
    """:func:`stamp` of one polyline (m, 2), ``piece`` samples at a time, each computed in its own bounding box."""
    out = torch.zeros(size, size, dtype=xy.dtype)
    for start in range(0, max(len(xy) - 1, 1), piece):
        part, r = xy[start:start + piece + 1], radius[start:start + piece + 1]
        reach = float(r.max()) + 2
        lo = (part.amin(0) - reach).floor().clamp(0, size).int().tolist()
        hi = (part.amax(0) + reach).ceil().clamp(0, size).int().tolist()
        if hi[0] > lo[0] and hi[1] > lo[1]:
            window = out[lo[1]:hi[1], lo[0]:hi[0]]
            window.copy_(torch.maximum(window, stamp(part, r, size, window=(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]))))
    return out


def render_alpha(points, brush, size):
    """Ink coverage (B, size, size) of a batch of strokes: points (B, n, 3), brush (B,), torch."""
    xy, radius = stroke_samples(points, brush, size)
    return stamp(xy, radius, size)


def composite(alphas, colours, paper=1.0):
    """Lay strokes in order on paper: canvas <- canvas (1 - alpha) + colour alpha.  (K,H,W),(K,3) -> (H,W,3)."""
    canvas = torch.full(alphas.shape[1:] + (3,), paper, dtype=alphas.dtype, device=alphas.device)
    for alpha, colour in zip(alphas, colours):
        canvas = canvas * (1 - alpha[..., None]) + colour * alpha[..., None]
    return canvas


def ink_union(alphas):
    """Ink map of black strokes drawn over one another: 1 - prod(1 - alpha)."""
    return 1 - torch.prod(1 - alphas, dim=0)


def render(points, brush, size=SIZE, colours=None):
    """numpy: strokes (K, n, 3), brush (K,) [, colours (K, 3)] -> RGB image (size, size, 3) in [0, 1], white paper."""
    points = torch.as_tensor(np.asarray(points, np.float32))
    brush = torch.as_tensor(np.asarray(brush, np.float32))
    colours = torch.zeros(len(points), 3) if colours is None else torch.as_tensor(np.asarray(colours, np.float32))
    with torch.no_grad():
        xy, radius = stroke_samples(points, brush, size)
        alphas = torch.stack([stamp_cropped(x, r, size) for x, r in zip(xy, radius)]) if len(points) \
            else torch.zeros(0, size, size)
        return composite(alphas, colours).numpy()


def render_polylines(polylines, radius, size):
    """Ink map (size, size) of polylines (list of (m, 2) arrays in [-1, 1]) at a fixed pen radius (fraction)."""
    ink = torch.zeros(size, size)
    for line in polylines:
        xy = (torch.as_tensor(np.asarray(line, np.float32)) + 1) * (size / 2)
        if len(xy) == 1:
            xy = torch.cat([xy, xy])
        ink = torch.maximum(ink, stamp_cropped(xy, torch.full((len(xy),), radius * size), size))
    return ink.numpy()
