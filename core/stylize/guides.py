"""Guide channels for few-shot patch-based video stylisation (Texler et al. 2020, §3).

The network sees, per pixel, the (pre-filtered) frame colour and a *temporal guide*: the
Gaussian-mixture colour image of Jamriška et al. 2019 that is painted once on a reference
frame and carried along with the motion, so the same surface point keeps the same guide
colour in every frame.  Motion comes from Blender's exact Vector pass when available
(``frames.read_motion``) and from OpenCV DIS optical flow otherwise.

Flow convention everywhere here: ``f[t]`` at pixel ``x`` points to where the same point is in
the neighbouring frame (``previous[t]``: t-1, ``following[t]``: t+1), x right, y down.
"""

import numpy as np


def _cv2():
    """OpenCV (its DIS flow, remap and blur): a wheel of the extension, so only the worker imports it."""
    import cv2
    return cv2


def optical_flow(frames):
    """DIS optical flow (OpenCV, 'medium' preset) -> ``(previous, following)``, as from ``read_motion``."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(np.round(f * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames]
    previous = np.zeros((*frames.shape[:3], 2), np.float32)
    following = np.zeros_like(previous)
    for t in range(1, len(frames)):
        previous[t] = dis.calc(grey[t], grey[t - 1], None)
        following[t - 1] = dis.calc(grey[t - 1], grey[t], None)
    return previous, following


def warp(image, flow):
    """Backward warp: ``out(x) = image(x + flow(x))``, bilinear, border pixels repeated."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def advected_coordinates(previous, following, reference):
    """Per frame, the reference-frame position of every pixel (N x H x W x 2), by chaining flows.

    Coordinates, not guide colours, are carried: resampling a smooth coordinate field again
    and again does not blur, so the guide stays sharp far from the reference frame.
    """
    n, h, w = previous.shape[:3]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    coordinates = np.empty((n, h, w, 2), np.float32)
    coordinates[reference] = np.stack([gx, gy], axis=-1)
    for t in range(reference + 1, n):
        coordinates[t] = warp(coordinates[t - 1], previous[t])
    for t in range(reference - 1, -1, -1):
        coordinates[t] = warp(coordinates[t + 1], following[t])
    return coordinates


def gaussian_mixture(coordinates, size, seed=0, spacing=24.0):
    """The Gaussian-mixture guide G (Jamriška et al. 2019): blobs of random colour at random places.

    ``G(p) = Σ_i c_i·w_i(p) / Σ_i w_i(p)`` with ``w_i(p) = exp(-|p - μ_i|² / 2σ²)``, evaluated at the
    advected reference positions ``p``; about one blob per ``spacing``² pixels, σ = spacing / 2.
    A blob farther than 6σ weighs e⁻¹⁸ of one nearby, so each point sums only the blobs of the
    3x3 cells (of side 6σ) around its own: the cost per pixel stays the same on a 4K frame
    (about 80 blobs instead of 14,000), and the result differs from the full sum by < 1e-6.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    count = max(4, int(round(h * w / spacing ** 2)))
    centres = rng.uniform([0, 0], [w, h], size=(count, 2)).astype(np.float32)
    colours = rng.uniform(0, 1, size=(count, 3)).astype(np.float32)
    sigma = spacing / 2
    points = coordinates.reshape(-1, 2)
    point_cells = np.floor(points / (6 * sigma)).astype(np.int64)
    blob_cells = np.floor(centres / (6 * sigma)).astype(np.int64)
    keys = point_cells[:, 1] * 1_000_003 + point_cells[:, 0]
    order = np.argsort(keys, kind="stable")
    starts = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1]])
    out = np.empty((len(points), 3), np.float32)
    for begin, end in zip(starts, np.r_[starts[1:], len(order)]):  # one cell of points at a time
        members = order[begin:end]
        near = (np.abs(blob_cells - point_cells[members[0]]) <= 1).all(axis=1)
        w_i = np.exp(-((points[members, None, :] - centres[None, near]) ** 2).sum(axis=2) / (2 * sigma ** 2))
        out[members] = (w_i @ colours[near]) / (w_i.sum(axis=1, keepdims=True) + 1e-12)
    return out.reshape(*coordinates.shape[:-1], 3)


def temporal_bilateral(frames, previous, following, sigma_colour=0.1, radius=1):
    """Temporal bilateral pre-filter: average each frame with its motion-compensated neighbours.

    ``Î_t = Σ_s w_s·W_s→t(I_s) / Σ_s w_s``, ``w_s = exp(-|I_t - W_s→t(I_s)|² / 2σ_c²)``: noise and
    flicker average out while occlusions and lighting changes (large differences) are kept.
    """
    n = len(frames)
    out = np.empty_like(frames)
    for t in range(n):
        total, weight = frames[t].copy(), np.ones(frames.shape[1:3] + (1,), np.float32)
        for step, flows in ((-1, previous), (1, following)):
            flow, s = np.zeros_like(flows[t]), t
            for _ in range(radius):
                if not 0 <= s + step < n:
                    break
                flow = flow + warp(flows[s], flow)  # compose t -> s -> s+step
                s += step
                moved = warp(frames[s], flow)
                w_s = np.exp(-((moved - frames[t]) ** 2).sum(axis=2, keepdims=True) / (2 * sigma_colour ** 2))
                total += w_s * moved
                weight += w_s
        out[t] = total / weight
    return out


def edge_guide(frames, sigma=1.0):
    """The edge guide G_edge of Jamriška et al. 2019: a difference of Gaussians of the luminance,
    mapped to [0, 1] around 0.5, so the network finds where a painter puts outlines without
    spending its first layers on it."""
    cv2 = _cv2()
    out = np.empty(frames.shape[:3] + (1,), np.float32)
    for t, frame in enumerate(frames):
        luminance = frame @ np.float32([0.299, 0.587, 0.114])
        dog = cv2.GaussianBlur(luminance, (0, 0), sigma) - cv2.GaussianBlur(luminance, (0, 0), 2 * sigma)
        out[t, ..., 0] = np.clip(0.5 + 4.0 * dog, 0.0, 1.0)
    return out


def build_inputs(frames, motion=None, reference=0, guide="gaussian", seed=0, prefilter=False):
    """Network input per frame, N x H x W x C in [0, 1]: colour (3), edge guide (1) [+ temporal guide (3)].

    ``motion`` is ``(previous, following)`` from Blender's Vector pass, or None for optical flow.
    ``prefilter`` applies the temporal bilateral filter to the colour first (for noisy footage).
    """
    if guide != "none" or prefilter:
        previous, following = motion if motion is not None else optical_flow(frames)
    colour = temporal_bilateral(frames, previous, following) if prefilter else frames
    channels = [colour, edge_guide(colour)]
    if guide != "none":
        coordinates = advected_coordinates(previous, following, reference)
        channels.append(gaussian_mixture(coordinates, frames.shape[1:3], seed))
    return np.concatenate(channels, axis=-1)
