"""Polylines <-> the pen formats of Sketch-RNN (Ha & Eck 2017, section 3.1).

* **stroke-3**: an ``(N, 3)`` array of rows ``(dx, dy, p)``: the pen moves by ``(dx, dy)`` from the
  previous point and ``p = 1`` when it is lifted after this point.  The first row is the offset of the
  first point from the drawing's origin (here the centre of its bounding box).  ``y`` points down, as
  in SVG and QuickDraw.
* **stroke-5**: rows ``(dx, dy, p1, p2, p3)``, one-hot pen state: touching, lifted after this point,
  sketch finished.  Padded to ``max_len`` with ``(0, 0, 0, 0, 1)``.
"""

import numpy as np


def polylines_to_stroke3(polylines):
    """Absolute polylines -> stroke-3, origin at the centre of the bounding box."""
    lines = [np.asarray(line, np.float64).reshape(-1, 2) for line in polylines]
    lines = [line for line in lines if len(line)]
    if not lines:
        return np.zeros((0, 3), np.float32)
    points = np.concatenate(lines)
    origin = (points.min(0) + points.max(0)) / 2
    lifts = np.concatenate([np.eye(1, len(line), len(line) - 1)[0] for line in lines])
    offsets = np.diff(np.concatenate([origin[None], points]), axis=0)
    return np.column_stack([offsets, lifts]).astype(np.float32)


def stroke3_to_polylines(stroke3):
    """stroke-3 -> absolute polylines (origin at 0, 0); the inverse of :func:`polylines_to_stroke3`."""
    stroke3 = np.asarray(stroke3, np.float64)
    if not len(stroke3):
        return []
    points = np.cumsum(stroke3[:, :2], axis=0)
    ends = np.flatnonzero(stroke3[:, 2] > 0.5) + 1
    return [line for line in np.split(points, ends) if len(line)]


def to_stroke5(stroke3, max_len):
    """stroke-3 -> stroke-5 padded to ``max_len`` rows (the reference's ``to_big_strokes``)."""
    stroke3 = np.asarray(stroke3, np.float32)
    length = len(stroke3)
    if length > max_len:
        raise ValueError(f"sketch of {length} points is longer than max_len={max_len}")
    result = np.zeros((max_len, 5), np.float32)
    result[:length, :2] = stroke3[:, :2]
    result[:length, 3] = stroke3[:, 2]
    result[:length, 2] = 1 - stroke3[:, 2]
    result[length:, 4] = 1
    return result


def to_stroke3(stroke5):
    """stroke-5 -> stroke-3, stopping at the first 'finished' row."""
    stroke5 = np.asarray(stroke5, np.float32)
    finished = np.flatnonzero(stroke5[:, 4] > 0.5)
    end = finished[0] if len(finished) else len(stroke5)
    return np.column_stack([stroke5[:end, :2], stroke5[:end, 3]]).astype(np.float32)

