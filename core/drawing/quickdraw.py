"""QuickDraw ``.ndjson`` files: one drawing a line, raw or simplified, as stroke-3 sketches."""

import json
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..validate import file_size, open_regular, shown
from .pen import polylines_to_stroke3
from .simplify import simplify_polylines

MAX_DRAWINGS = 2_000_000  # in one file, also when a --limit is given
MAX_LINE_BYTES = 16 * 1024 * 1024  # one drawing; QuickDraw's longest raw drawings are well under 2 MB
MAX_NDJSON_BYTES = 2 << 30  # read whole; a larger file is read with a limit (its first drawings)


def _drawing_polylines(drawing):
    """QuickDraw's ``drawing`` ([[xs, ys(, ts)], ...]) -> (polylines, raw?); ValueError if malformed."""
    if not isinstance(drawing, list) or not drawing:
        raise ValueError("no strokes")
    polylines, raw = [], False
    for stroke in drawing:
        if not isinstance(stroke, list) or len(stroke) < 2:
            raise ValueError("a stroke is not [xs, ys]")
        xs, ys = stroke[0], stroke[1]
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("a stroke's xs and ys differ")
        if not all(type(v) in (int, float) for v in xs) or not all(type(v) in (int, float) for v in ys):
            raise ValueError("a coordinate is not a number")
        points = np.column_stack([np.array(xs, np.float64), np.array(ys, np.float64)])  # OverflowError: huge ints
        if not np.all(np.isfinite(points)) or (len(points) and np.abs(points).max() > 1e9):
            raise ValueError("a coordinate is not finite or too large")
        raw = raw or len(stroke) > 2 or (len(points) > 0 and np.abs(points).max() > 255)
        polylines.append(points)
    return polylines, raw


def load_ndjson(path, epsilon=2.0, limit=None):
    """QuickDraw ``.ndjson`` (raw or simplified) -> ``(sketches, skipped_lines)``.

    Raw drawings (with a time row, or coordinates outside 0..255) are scaled and simplified with RDP
    as the QuickDraw team did; malformed lines (bad JSON, nesting too deep, numbers that are not
    finite, lines over :data:`MAX_LINE_BYTES`) are skipped and counted.  The file is read a line at a
    time, and reading stops after ``limit`` drawings; without a limit, at most :data:`MAX_NDJSON_BYTES`.
    """
    path = Path(path)
    sketches, skipped = [], 0
    with open_regular(path, "QuickDraw .ndjson file") as handle:
        size = file_size(handle)
        if limit is None and size > MAX_NDJSON_BYTES:
            raise AtelierError(f"{shown(path)}: the file is {size:,} bytes; read at most {MAX_NDJSON_BYTES:,} "
                               "or give a limit (--limit N drawings)")
        while limit is None or len(sketches) < limit:
            try:
                line = handle.readline(MAX_LINE_BYTES + 1)
            except OSError as error:
                raise AtelierError(f"{shown(path)}: cannot read ({error.strerror or error})") from None
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith(b"\n"):  # skip the rest of the overlong line
                    line = handle.readline(MAX_LINE_BYTES)
                skipped += 1
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8", errors="replace"))
                polylines, raw = _drawing_polylines(record["drawing"] if isinstance(record, dict) else None)
            except (ValueError, KeyError, TypeError, IndexError, OverflowError, RecursionError):
                skipped += 1
                continue
            sketches.append(polylines_to_stroke3(simplify_polylines(polylines, epsilon) if raw else polylines))
            if len(sketches) > MAX_DRAWINGS:
                raise AtelierError(f"{shown(path)}: more than {MAX_DRAWINGS:,} drawings; use --limit")
    return sketches, skipped

