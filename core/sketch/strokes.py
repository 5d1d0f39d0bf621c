"""Pen-stroke data for Sketch-RNN: formats, loaders, simplification, normalisation, augmentation.

Formats (Ha & Eck, "A Neural Representation of Sketch Drawings", 2017, section 3.1):

* **stroke-3**: an ``(N, 3)`` array of rows ``(dx, dy, p)``: the pen moves by ``(dx, dy)`` from the
  previous point and ``p = 1`` when it is lifted after this point.  The first row is the offset of the
  first point from the drawing's origin (here the centre of its bounding box).  ``y`` points down, as
  in SVG and QuickDraw.
* **stroke-5**: rows ``(dx, dy, p1, p2, p3)``, one-hot pen state: touching, lifted after this point,
  sketch finished.  Padded to ``max_len`` with ``(0, 0, 0, 0, 1)``.
* **polylines**: a list of ``(K, 2)`` arrays of absolute points, one per stroke (what SVG, kanjivg,
  Hershey fonts and grease pencil give).

Loaders never execute code from a file: the sketch-rnn ``.npz`` (object arrays, i.e. pickles) is
read through :class:`NumpyOnlyUnpickler`, which rebuilds numpy arrays and refuses everything else.
"""

import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..errors import AtelierError

OFFSET_LIMIT = 1000.0  # the reference clamps raw offsets here; larger ones are data errors


# --------------------------------------------------------------------------- formats

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


# --------------------------------------------------------------------------- preprocessing

def rdp(points, epsilon):
    """Ramer-Douglas-Peucker: the subset of ``points`` within ``epsilon`` of the original polyline."""
    points = np.asarray(points, np.float64)
    if len(points) < 3:
        return points
    keep = np.zeros(len(points), bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        chord = points[last] - points[first]
        middle = points[first + 1:last] - points[first]
        length = np.hypot(*chord)
        distance = (np.abs(chord[0] * middle[:, 1] - chord[1] * middle[:, 0]) / length if length > 0
                    else np.hypot(middle[:, 0], middle[:, 1]))
        index = int(np.argmax(distance))
        if distance[index] > epsilon:
            split = first + 1 + index
            keep[split] = True
            stack += [(first, split), (split, last)]
    return points[keep]


def _fit(points, size):
    """Corner and scale that map ``points`` so their longer side is ``size``."""
    low, extent = points.min(0), (points.max(0) - points.min(0)).max()
    return low, (size / extent if extent > 0 else 1.0)


def simplify_polylines(polylines, epsilon=2.0, size=255.0):
    """Scale a drawing so its longer side is ``size`` and simplify each stroke with RDP (the QuickDraw recipe)."""
    lines = [np.asarray(line, np.float64).reshape(-1, 2) for line in polylines if len(line)]
    if not lines:
        return []
    low, scale = _fit(np.concatenate(lines), size)
    return [rdp((line - low) * scale, epsilon) for line in lines]


def normalizing_scale(sketches):
    """The standard deviation of all offsets (dx and dy together): the reference's scale factor."""
    offsets = np.concatenate([s[:, :2].ravel() for s in sketches]) if sketches else np.zeros(0)
    scale = float(np.std(offsets)) if len(offsets) else 1.0
    return scale if scale > 1e-8 else 1.0


def augment(stroke3, rng, scale_factor=0.15, drop_probability=0.10):
    """The reference's augmentation: random x/y scaling, and merging some points inside a stroke.

    A point is dropped (its offset merged into the next kept point's) with ``drop_probability`` when
    it is at least the third point of a pen-down run, so stroke shapes survive.
    """
    stroke3 = np.array(stroke3, np.float32)
    scale = rng.uniform(1 - scale_factor, 1 + scale_factor, size=2).astype(np.float32)
    stroke3[:, :2] *= scale
    if drop_probability <= 0 or len(stroke3) < 4:
        return stroke3
    pen_down = stroke3[:, 2] < 0.5
    previous_down = np.concatenate([[False], pen_down[:-1]])
    run = np.zeros(len(stroke3), int)  # how many pen-down points precede this one in its stroke
    for i in range(1, len(stroke3)):
        run[i] = run[i - 1] + 1 if pen_down[i] and previous_down[i] else 0
    drop = pen_down & previous_down & (run > 2) & (rng.random(len(stroke3)) < drop_probability)
    drop[-1] = False
    keep = np.flatnonzero(~drop)
    merged = np.add.reduceat(stroke3[:, :2], np.concatenate([[0], keep[:-1] + 1]))  # sum dropped into next kept
    return np.column_stack([merged, stroke3[keep, 2]]).astype(np.float32)


def clean(sketches, max_len):
    """Drop sketches that cannot be learned from; returns ``(kept, counts)``.

    Empty sketches and single points are dropped, as are sketches longer than ``max_len``.
    Offsets are clamped to +-``OFFSET_LIMIT`` (the reference does the same) and non-finite rows
    make a sketch invalid.
    """
    kept, counts = [], {"empty": 0, "single_point": 0, "too_long": 0, "not_finite": 0, "clamped": 0}
    for sketch in sketches:
        sketch = np.asarray(sketch, np.float32)
        if sketch.ndim != 2 or sketch.shape[1] != 3 or len(sketch) == 0:
            counts["empty"] += 1
        elif len(sketch) < 2:
            counts["single_point"] += 1
        elif len(sketch) > max_len:
            counts["too_long"] += 1
        elif not np.all(np.isfinite(sketch)):
            counts["not_finite"] += 1
        else:
            if np.abs(sketch[:, :2]).max() > OFFSET_LIMIT:
                counts["clamped"] += 1
                sketch = sketch.copy()
                sketch[:, :2] = np.clip(sketch[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT)
            sketch[:, 2] = sketch[:, 2] > 0.5
            sketch[-1, 2] = 1
            kept.append(sketch)
    return kept, counts


# --------------------------------------------------------------------------- sketch-rnn .npz

class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (what ``np.save`` writes for object arrays) and nothing else.

    A pickle names the callables it wants run; ordinary ones name numpy's array reconstruction
    only.  Any other name (``os.system``, ``builtins.eval``...) means the file is not a stroke
    data set, and it is refused before anything runs.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def __init__(self, file, source):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise AtelierError(f"{self.source}: refused to load: it asks to run {module}.{name}, "
                           f"and a stroke data set only holds numpy arrays")


def _read_npy(data, source):
    """One ``.npy`` member: plain arrays are read directly, object arrays through the safe unpickler."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read_header[version](stream)
    except ValueError as error:
        raise AtelierError(f"{source}: not a numpy array ({error})") from None
    if dtype.hasobject:
        try:
            array = NumpyOnlyUnpickler(stream, source).load()
        except AtelierError:
            raise
        except Exception as error:
            raise AtelierError(f"{source}: damaged array data ({type(error).__name__}: {error})") from None
        if not isinstance(array, np.ndarray):
            raise AtelierError(f"{source}: holds a {type(array).__name__}, not an array")
        return array
    count = int(np.prod(shape)) if shape else 1
    array = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
    if array.size != count:
        raise AtelierError(f"{source}: truncated array")
    return array.reshape(shape, order="F" if fortran else "C")


def load_npz(path):
    """A sketch-rnn ``.npz`` -> ``{"train": [...], "valid": [...], "test": [...]}`` of stroke-3 arrays."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise AtelierError(f"{path}: not a readable .npz archive ({error})") from None
    splits = {}
    with archive:
        for member in archive.namelist():
            name = member[:-4] if member.endswith(".npy") else member
            array = _read_npy(archive.read(member), f"{path} [{name}]")
            sketches = list(array) if array.dtype.hasobject else ([array] if array.ndim == 2 else list(array))
            for index, sketch in enumerate(sketches):
                sketch = np.asarray(sketch)
                if sketch.ndim != 2 or sketch.shape[1] != 3 or sketch.dtype.kind not in "iuf":
                    raise AtelierError(f"{path}: '{name}' item {index} is not a stroke-3 sketch "
                                       f"(shape {sketch.shape}, dtype {sketch.dtype}); expected N x 3 numbers")
            splits[name] = [np.asarray(s, np.float32) for s in sketches]
    if not splits:
        raise AtelierError(f"{path}: the archive holds no arrays")
    return splits


def save_npz(path, splits):
    """Write ``{"train": [...], ...}`` in the sketch-rnn layout (object arrays of int16/float stroke-3)."""
    from ..atomic import atomic_path
    arrays = {}
    for name, sketches in splits.items():
        array = np.empty(len(sketches), dtype=object)
        array[:] = [np.asarray(s) for s in sketches]
        arrays[name] = array
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


# --------------------------------------------------------------------------- QuickDraw .ndjson

def load_ndjson(path, epsilon=2.0):
    """QuickDraw ``.ndjson`` (raw or simplified) -> ``(sketches, skipped_lines)``.

    Raw drawings (with a time row, or coordinates outside 0..255) are scaled and simplified with RDP
    as the QuickDraw team did; malformed lines are skipped and counted.
    """
    path = Path(path)
    sketches, skipped = [], 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise AtelierError(f"{path}: cannot read ({error.strerror or error})") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            drawing = json.loads(line)["drawing"]
            polylines = [np.column_stack([np.asarray(s[0], float), np.asarray(s[1], float)]) for s in drawing]
            raw = any(len(s) > 2 for s in drawing) or any(np.abs(p).max() > 255 for p in polylines if len(p))
        except (ValueError, KeyError, TypeError, IndexError):
            skipped += 1
            continue
        sketches.append(polylines_to_stroke3(simplify_polylines(polylines, epsilon) if raw else polylines))
    return sketches, skipped


# --------------------------------------------------------------------------- SVG

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtZzAa])|({_NUMBER})")


def _bezier(points, samples):
    """Points along a Bézier curve of any degree (de Casteljau through the Bernstein form)."""
    points = np.asarray(points, float)
    t = np.linspace(0, 1, samples + 1)[1:, None]
    degree = len(points) - 1
    from math import comb
    return sum(comb(degree, k) * t ** k * (1 - t) ** (degree - k) * points[k] for k in range(degree + 1))


def _arc(start, end, radii, rotation, large_arc, sweep, samples):
    """Points along an SVG elliptical arc, ``samples`` per quarter turn (SVG 1.1 F.6.5-F.6.6:
    endpoint to centre parameterisation, radii scaled up when too small to reach the end)."""
    rx, ry = np.abs(radii)
    if rx == 0 or ry == 0 or np.allclose(start, end):
        return [end.copy()]
    cos, sin = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    rotate = np.array([[cos, -sin], [sin, cos]])
    x1, y1 = rotate.T @ ((start - end) / 2)
    reach = (x1 / rx) ** 2 + (y1 / ry) ** 2
    if reach > 1:
        rx, ry = rx * np.sqrt(reach), ry * np.sqrt(reach)
    square = ((rx * ry) ** 2 - (rx * y1) ** 2 - (ry * x1) ** 2) / ((rx * y1) ** 2 + (ry * x1) ** 2)
    centre = np.sqrt(max(square, 0.0)) * (-1 if large_arc == sweep else 1) * np.array([rx * y1 / ry, -ry * x1 / rx])
    theta = np.arctan2((y1 - centre[1]) / ry, (x1 - centre[0]) / rx)
    delta = (np.arctan2((-y1 - centre[1]) / ry, (-x1 - centre[0]) / rx) - theta) % (2 * np.pi)
    if not sweep and delta > 0:
        delta -= 2 * np.pi
    angles = theta + delta * np.linspace(0, 1, max(2, int(np.ceil(samples * abs(delta) / (np.pi / 2)))) + 1)[1:]
    points = (rotate @ np.stack([rx * np.cos(angles), ry * np.sin(angles)])).T + rotate @ centre + (start + end) / 2
    points[-1] = end  # exactly where the next command starts
    return list(points)


def parse_svg_path(d, samples=8):
    """An SVG path's ``d`` -> polylines (one per subpath); curves sampled with ``samples`` points.

    Supports every command: M L H V C S Q T A Z, absolute and relative.
    """
    tokens = [(c, n or None) for c, n in _TOKEN.findall(d)]
    polylines, line = [], []
    position = start = np.zeros(2)
    last_control, command, i = None, None, 0

    def numbers(count):
        nonlocal i
        values = [tokens[i + k][1] for k in range(count)]
        if any(v is None for v in values):
            raise ValueError("missing numbers")
        i += count
        return np.array(values, float)

    def flag():  # arc flags may touch what follows: "a5 5 0 015 5" is 0, 1, 5 5
        text = tokens[i][1]
        if text is None or text[0] not in "01":
            raise ValueError("an arc flag must be 0 or 1")
        if len(text) > 1:
            tokens[i:i + 1] = [(None, text[0]), (None, text[1:])]
        return numbers(1)[0] == 1

    while i < len(tokens):
        if tokens[i][0]:
            command = tokens[i][0]
            i += 1
            if command in "Zz":
                if line:
                    line.append(start.copy())
                position, command = start.copy(), None
                continue
        elif command is None:
            raise ValueError("numbers before a command")
        relative, kind = command.islower(), command.upper()
        base = position if relative else np.zeros(2)
        if kind == "M":
            if len(line) > 1:
                polylines.append(np.array(line))
            position = start = base + numbers(2)
            line = [position.copy()]
            command = "l" if relative else "L"  # further pairs are line-tos
            continue
        if not line:
            line = [position.copy()]
        if kind in "LHV":
            if kind == "L":
                target = base + numbers(2)
            elif kind == "H":
                target = np.array([numbers(1)[0] + (position[0] if relative else 0), position[1]])
            else:
                target = np.array([position[0], numbers(1)[0] + (position[1] if relative else 0)])
            line.append(target)
            position, last_control = target, None
        elif kind in "CSQT":
            count = {"C": 3, "S": 2, "Q": 2, "T": 1}[kind]
            given = [base + p for p in numbers(2 * count).reshape(count, 2)]
            if kind in "ST":
                reflected = 2 * position - last_control if last_control is not None else position.copy()
                given = [reflected] + given
            line.extend(_bezier([position] + given, samples))
            position, last_control = given[-1], given[-2]
        elif kind == "A":
            radii, rotation, large_arc, sweep = numbers(2), numbers(1)[0], flag(), flag()
            target = base + numbers(2)
            line.extend(_arc(position, target, radii, rotation, large_arc, sweep, samples))
            position, last_control = target, None
    if len(line) > 1:
        polylines.append(np.array(line))
    return polylines


_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_NOT_DRAWN = {"defs", "clipPath", "mask", "marker", "pattern", "symbol", "title", "desc", "metadata"}


def parse_svg_transform(text):
    """An SVG ``transform`` attribute -> its 3 x 3 affine matrix (the list applies right to left)."""
    matrix = np.eye(3)
    for name, arguments in _TRANSFORM.findall(text or ""):
        v = [float(x) for x in re.findall(_NUMBER, arguments)]
        if name == "matrix":
            a, b, c, d, e, f = v
            step = [[a, c, e], [b, d, f]]
        elif name == "translate":
            step = [[1, 0, v[0]], [0, 1, v[1] if len(v) > 1 else 0]]
        elif name == "scale":
            step = [[v[0], 0, 0], [0, v[1] if len(v) > 1 else v[0], 0]]
        elif name == "rotate":
            cos, sin = np.cos(np.radians(v[0])), np.sin(np.radians(v[0]))
            cx, cy = v[1:3] if len(v) > 2 else (0.0, 0.0)  # about (cx, cy): translate, rotate, translate back
            step = [[cos, -sin, cx - cos * cx + sin * cy], [sin, cos, cy - sin * cx - cos * cy]]
        elif name == "skewX":
            step = [[1, np.tan(np.radians(v[0])), 0], [0, 1, 0]]
        else:
            step = [[1, 0, 0], [np.tan(np.radians(v[0])), 1, 0]]
        matrix = matrix @ np.vstack([step, [0, 0, 1]])
    return matrix


def _element_polylines(element, tag, samples):
    if tag == "path" and element.get("d"):
        return parse_svg_path(element.get("d"), samples)
    if tag in ("polyline", "polygon") and element.get("points"):
        values = np.array([float(v) for v in re.findall(_NUMBER, element.get("points"))])
        points = values[: len(values) // 2 * 2].reshape(-1, 2)
        return [np.vstack([points, points[:1]]) if tag == "polygon" else points]
    if tag == "line":
        return [np.array([[float(element.get(k, 0)) for k in pair] for pair in (("x1", "y1"), ("x2", "y2"))])]
    return []


def load_svg(path, samples=8):
    """Polylines from an SVG file's ``path``, ``polyline``, ``polygon`` and ``line`` elements (document order).

    Each element's ``transform`` and its groups' are applied; what ``defs``, masks and the like hold
    is not drawn (``use`` references are not followed).
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise AtelierError(f"{path}: not a readable SVG file ({error})") from None
    polylines = []

    def walk(element, parent):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in _NOT_DRAWN:
            return
        try:
            matrix = parent @ parse_svg_transform(element.get("transform"))
            polylines.extend(line @ matrix[:2, :2].T + matrix[:2, 2] for line in _element_polylines(element, tag, samples))
        except (ValueError, IndexError) as error:
            raise AtelierError(f"{path}: malformed <{tag}> element ({error})") from None
        for child in element:
            walk(child, matrix)

    walk(root, np.eye(3))
    return polylines


# --------------------------------------------------------------------------- builtin data sets

def kanjivg_files():
    """The SVG files of the PyPI ``kanjivg`` package (one kanji each, strokes in writing order)."""
    import importlib.util
    spec = importlib.util.find_spec("kanji")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not folder.is_dir():
        raise AtelierError("kanji: the 'kanjivg' package is not installed (pip install kanjivg)")
    return sorted(folder.glob("*.svg"))


def hershey_polylines(fonts=None):
    """Every glyph of the Hershey single-line fonts (PyPI ``Hershey-Fonts``) as polylines."""
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:
        raise AtelierError("hershey: the 'Hershey-Fonts' package is not installed (pip install Hershey-Fonts)") from None
    font = HersheyFonts()
    drawings = []
    for name in fonts or font.default_font_names:
        font.load_default_font(name)
        for glyph in font.all_glyphs.values():
            lines = [np.array(line, float) for line in glyph.strokes if len(line) > 1]
            if lines:
                drawings.append(lines)
    return drawings


def grease_pencil_to_stroke3(strokes, epsilon=2.0, size=255.0):
    """Grease-pencil points (a list of ``(K, 3)`` arrays) -> ``(stroke3, placement)``.

    The drawing's plane is spanned by the two axes along which it spreads most (front view: x, z);
    its vertical axis is flipped so ``y`` points down as in the training data.  It is scaled and
    simplified as the training data was (:func:`simplify_polylines`).  ``placement`` maps model
    points back into the drawing's space (:func:`stroke3_to_grease_pencil`).
    """
    lines = [np.asarray(s, np.float64).reshape(-1, 3) for s in strokes if len(s)]
    if not lines:
        raise AtelierError("the drawing has no strokes")
    points = np.concatenate(lines)
    depth_axis, first, second = np.argsort(np.ptp(points, axis=0))
    first, second = sorted((first, second))
    flat = [np.column_stack([line[:, first], -line[:, second]]) for line in lines]
    low, scale = _fit(np.concatenate(flat), size)
    simplified = [rdp((line - low) * scale, epsilon) for line in flat]
    model_points = np.concatenate(simplified)
    placement = {"axes": (int(first), int(second), int(depth_axis)), "depth": float(points[:, depth_axis].mean()),
                 "low": low, "scale": scale, "centre": (model_points.min(0) + model_points.max(0)) / 2}
    return polylines_to_stroke3(simplified), placement


def stroke3_to_grease_pencil(stroke3, placement, start=(0.0, 0.0)):
    """Model-space stroke-3 -> ``(K, 3)`` polylines in the space the ``placement`` came from.

    ``start``: where the pen is before the first row, relative to the drawing's centre (the sum of
    a prefix's offsets when continuing it).
    """
    first, second, depth_axis = placement["axes"]
    result = []
    for line in stroke3_to_polylines(stroke3):
        flat = (line + np.asarray(start) + placement["centre"]) / placement["scale"] + placement["low"]
        points = np.full((len(line), 3), placement["depth"])
        points[:, first], points[:, second] = flat[:, 0], -flat[:, 1]
        result.append(points.astype(np.float32))
    return result


def _split(sketches, seed=0, fractions=(0.9, 0.05)):
    order = np.random.default_rng(seed).permutation(len(sketches))
    first, second = int(len(order) * fractions[0]), int(len(order) * sum(fractions))
    return {"train": [sketches[i] for i in order[:first]],
            "valid": [sketches[i] for i in order[first:second]],
            "test": [sketches[i] for i in order[second:]]}


BUILTIN = ("kanji", "hershey")


def load_dataset(source, epsilon=2.0, limit=None):
    """Any supported source -> ``({"train", "valid", "test"}, info)`` of stroke-3 lists.

    ``source``: a sketch-rnn ``.npz`` (its own splits), a QuickDraw ``.ndjson``, an ``.svg`` file or a
    folder of them (one drawing per file), or a builtin name: ``kanji`` (kanjivg), ``hershey``.
    Sources without splits are split 90/5/5 with a fixed seed.  Drawings from vector sources are
    scaled to 255 and simplified with RDP(``epsilon``) as in QuickDraw.
    """
    info = {"source": str(source), "skipped_lines": 0}
    path = Path(source)
    if str(source) == "kanji":
        drawings = [load_svg(file, samples=6) for file in kanjivg_files()[:limit]]
    elif str(source) == "hershey":
        drawings = hershey_polylines()[:limit]
    elif path.suffix == ".npz":
        return load_npz(path), info
    elif path.suffix == ".ndjson":
        sketches, info["skipped_lines"] = load_ndjson(path, epsilon)
        return _split(sketches[:limit]), info
    elif path.suffix == ".svg":
        drawings = [load_svg(path)]
    elif path.is_dir():
        files = sorted(path.glob("*.svg"))
        if not files:
            raise AtelierError(f"{path}: the folder holds no .svg files")
        drawings = [load_svg(file) for file in files[:limit]]
    elif not path.exists() and str(source) not in BUILTIN:
        raise AtelierError(f"{source}: no such file, folder or builtin data set ({', '.join(BUILTIN)})")
    else:
        raise AtelierError(f"{path}: unsupported stroke data (use .npz, .ndjson, .svg or a folder of .svg)")
    sketches = [polylines_to_stroke3(simplify_polylines(d, epsilon)) for d in drawings]
    return _split(sketches), info
