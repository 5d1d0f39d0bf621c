"""Shrinking images by area averaging, with numpy alone (OpenCV's INTER_AREA without OpenCV)."""

import numpy as np


def _area_weights(size, new_size):
    """(new_size, size) float64 matrix: output cell i averages input cells over [i·f, (i+1)·f),
    f = size / new_size, each weighted by the length it overlaps (a box filter; for an integer
    f, the plain mean of f cells)."""
    factor = size / new_size
    low = np.arange(new_size)[:, None] * factor
    cells = np.arange(size)[None, :]
    overlap = np.minimum(low + factor, cells + 1) - np.maximum(low, cells)
    return np.clip(overlap, 0, None) / factor


def area_resize(image, height, width):
    """(H, W[, C]) image -> (height, width[, C]) float32, each output pixel the area-weighted mean
    of the input pixels under it; for shrinking (height ≤ H, width ≤ W)."""
    image = np.asarray(image, np.float32)
    if height > image.shape[0] or width > image.shape[1]:
        raise ValueError(f"area_resize shrinks only: {image.shape[:2]} -> {(height, width)}")
    rows = np.tensordot(_area_weights(image.shape[0], height).astype(np.float32), image, axes=(1, 0))
    return np.tensordot(_area_weights(image.shape[1], width).astype(np.float32), rows, axes=(1, 1)).swapaxes(0, 1)
