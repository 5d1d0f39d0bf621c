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

Loaders never execute code from a file: the sketch-rnn ``.npz`` holds object arrays, i.e. pickles,
which are decoded by :class:`_PickledArrays`, an interpreter of the few pickle instructions numpy
writes for arrays, not by ``pickle`` (whose numpy hooks a forged file can make read arbitrary memory).
Every loader bounds what it reads (bytes, points, decompression) and answers damaged data with an
:class:`AtelierError` naming the file.
"""

import json
import math
import re
import struct
import zipfile
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..errors import AtelierError
from .data_splits import kanji_base, stroke3_key
from ..validate import file_size, open_regular, read_file, shown

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

RDP_BLOCK = 256  # longer strokes are simplified in blocks of this many points (their ends kept)


def rdp(points, epsilon):
    """Ramer-Douglas-Peucker: the subset of ``points`` within ``epsilon`` of the original polyline.

    All pending segments are split together, one level at a time, with a few array operations per
    level.  A stroke of more than :data:`RDP_BLOCK` points is first cut into blocks whose end points
    are kept, so there are at most that many levels and a level costs O(n): an 80,000-point stroke
    takes about 0.05 s (0.8 s for a zigzag that keeps every point), where the point-by-point
    recursion took 22 s.  Up to that length the
    result is exactly the classic algorithm's (the first farthest point splits a segment).
    """
    points = np.asarray(points, np.float64)
    count = len(points)
    if count < 3:
        return points
    keep = np.zeros(count, bool)
    bounds = np.unique(np.r_[np.arange(0, count - 1, RDP_BLOCK), count - 1])
    keep[bounds] = True
    firsts, lasts = bounds[:-1], bounds[1:]
    while len(firsts):
        active = lasts - firsts >= 2
        firsts, lasts = firsts[active], lasts[active]
        if not len(firsts):
            break
        inner = lasts - firsts - 1  # points strictly inside each segment
        starts = np.cumsum(inner) - inner
        segment = np.repeat(np.arange(len(firsts)), inner)
        index = np.arange(inner.sum()) - np.repeat(starts, inner) + np.repeat(firsts + 1, inner)
        chord = (points[lasts] - points[firsts])[segment]
        middle = points[index] - points[firsts][segment]
        length = np.hypot(chord[:, 0], chord[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(length > 0, np.abs(chord[:, 0] * middle[:, 1] - chord[:, 1] * middle[:, 0]) / length,
                                np.hypot(middle[:, 0], middle[:, 1]))
        farthest = np.maximum.reduceat(distance, starts)
        split = farthest > epsilon  # NaN never splits
        hits = np.flatnonzero(split[segment] & (distance == farthest[segment]))
        _, first_hit = np.unique(segment[hits], return_index=True)  # the first farthest point of each
        chosen = index[hits[first_hit]]
        keep[chosen] = True
        firsts, lasts = np.concatenate([firsts[split], chosen]), np.concatenate([chosen, lasts[split]])
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

MAX_NPZ_BYTES = 256 * 1024 * 1024  # uncompressed; the largest QuickDraw sketch-rnn set is about 50 MB
MAX_POINTS = 50_000_000  # points in all the sketches of one data set
MAX_DRAWINGS = 2_000_000
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
               OverflowError, NotImplementedError, RuntimeError, zlib.error, IndexError, KeyError)


def _literal(text, source):
    """The dict literal of a ``.npy`` header (str, int, bool, None, tuple, list, dict), parsed
    without ``eval`` or ``ast``: anything else, or nesting deeper than 4, is an error."""
    tokens = re.findall(r"""'[^'\\]*'|"[^"\\]*"|-?\d+|True|False|None|[{}()\[\],:]|\S""", text)
    position = 0

    def value(depth):
        nonlocal position
        if position >= len(tokens) or depth > 4:
            raise ValueError("header too deep or cut short")
        token = tokens[position]
        position += 1
        if token[0] in "'\"":
            return token[1:-1]
        if token.lstrip("-").isdigit():
            if len(token) > 20:
                raise ValueError("a number in the header is too large")
            return int(token)
        if token in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[token]
        closing = {"{": "}", "(": ")", "[": "]"}.get(token)
        if closing is None:
            raise ValueError(f"unexpected {token[:10]!r} in the header")
        items = []
        while position < len(tokens) and tokens[position] != closing:
            key = value(depth + 1)
            if token == "{":
                if position >= len(tokens) or tokens[position] != ":":
                    raise ValueError("expected ':' in the header")
                position += 1
                key = (key, value(depth + 1))
            items.append(key)
            if position < len(tokens) and tokens[position] == ",":
                position += 1
            elif position < len(tokens) and tokens[position] != closing:
                raise ValueError("expected ',' in the header")
        if position >= len(tokens):
            raise ValueError("header cut short")
        position += 1
        if token == "{":
            try:
                return dict(items)
            except TypeError:
                raise ValueError("a header key is not text") from None
        return tuple(items) if token == "(" else items

    result = value(0)
    if position != len(tokens):
        raise ValueError("text after the header")
    return result


_SIMPLE_DTYPE = re.compile(r"[<>|=]?[biuf][1248]\Z")


MAX_DIMENSION = 2 ** 31  # items along one axis of a .npy member


def _numeric_dtype(descr, source):
    if not isinstance(descr, str) or not _SIMPLE_DTYPE.match(descr):
        raise AtelierError(f"{source}: arrays of {str(descr)[:40]!r} are not stroke data (expected numbers)")
    return np.dtype(descr)


def _read_npy(data, source):
    """One ``.npy`` member -> a numeric array, or a list of numeric arrays (an object array).

    The header is parsed as a literal, never evaluated; object arrays (pickles) are decoded by
    :class:`_PickledArrays`, which understands the few instructions numpy writes for arrays and
    never imports or calls anything named by the file.
    """
    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        raise AtelierError(f"{source}: not a numpy array (no .npy magic)")
    major = data[6]
    if major == 1:
        (length,), start = struct.unpack_from("<H", data, 8), 10
    elif major in (2, 3) and len(data) >= 12:
        (length,), start = struct.unpack_from("<I", data, 8), 12
    else:
        raise AtelierError(f"{source}: not a numpy array (unsupported .npy version {major})")
    if length > 65536 or start + length > len(data):
        raise AtelierError(f"{source}: not a numpy array (bad header length {length})")
    try:
        header = _literal(data[start:start + length].decode("utf-8" if major == 3 else "latin-1"), source)
    except (ValueError, UnicodeDecodeError) as error:
        raise AtelierError(f"{source}: not a numpy array ({error})") from None
    if (not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}
            or not isinstance(header["fortran_order"], bool) or not isinstance(header["shape"], tuple)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in header["shape"])
            or len(header["shape"]) > 8):
        raise AtelierError(f"{source}: not a numpy array (malformed header)")
    shape, body = header["shape"], data[start + length:]
    if any(n > MAX_DIMENSION for n in shape):  # with a 0 elsewhere the count is 0, yet numpy cannot shape it
        raise AtelierError(f"{source}: not stroke data (an array of shape {shape} declared)")
    count = math.prod(shape)
    if header["descr"] in ("|O", "O", "<O", ">O"):
        return _PickledArrays(body, source).load(count)
    dtype = _numeric_dtype(header["descr"], source)
    if count * dtype.itemsize > len(body):
        raise AtelierError(f"{source}: truncated array ({count:,} items declared, {len(body):,} bytes present)")
    array = np.frombuffer(body, dtype=dtype, count=count).copy()  # writable, as np.load gives it
    return array.reshape(shape, order="F" if header["fortran_order"] else "C")


class _Marker:
    """A name a pickle may refer to; referring to any other name is refused."""

    def __init__(self, name):
        self.name = name


class _ArrayState:
    """An array being rebuilt: numpy's ``_reconstruct`` then ``__setstate__`` (BUILD), as data only."""

    def __init__(self):
        self.array = None


class _DtypeState:
    def __init__(self, descr):
        self.descr, self.order = descr, "|"


_RECONSTRUCT, _NDARRAY, _DTYPE, _SCALAR, _ENCODE, _FROMBUFFER = (
    _Marker(n) for n in ("reconstruct", "ndarray", "dtype", "scalar", "encode", "frombuffer"))
_GLOBALS = {
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER, ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _ENCODE,  # protocol 2 writes bytes as _codecs.encode(text, "latin1")
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT, ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DTYPE,
    ("numpy.core.multiarray", "scalar"): _SCALAR, ("numpy._core.multiarray", "scalar"): _SCALAR,
}


class _PickledArrays:
    """Decode the pickle that ``np.save`` writes for an object array of numeric arrays.

    This is not ``pickle``: a small interpreter of the pickle instructions numpy's arrays use
    (protocols 2 to 5).  Names are looked up in :data:`_GLOBALS` and become markers; "calling" a
    marker records data (a shape, a dtype string, the bytes); nothing from the file is ever imported,
    called or given to numpy's own unpickling (whose ``dtype.__setstate__`` trusts flags a file can
    forge).  Any other instruction or name is refused with an :class:`AtelierError`.
    """

    MAX_ITEMS = 20_000_000

    def __init__(self, data, source):
        self.data, self.source, self.at, self.items = data, source, 0, 0

    def fail(self, problem):
        return AtelierError(f"{self.source}: damaged array data ({problem})")

    def take(self, count):
        if count < 0 or self.at + count > len(self.data):
            raise self.fail("the data ends early")
        chunk = self.data[self.at:self.at + count]
        self.at += count
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self):
        end = self.data.find(b"\n", self.at, self.at + 256)
        if end < 0:
            raise self.fail("a text line is unterminated or too long")
        text = self.data[self.at:end]
        self.at = end + 1
        return text.decode("latin-1")

    def int_line(self):
        try:
            return int(self.line())
        except ValueError:
            raise self.fail("a malformed memo key") from None

    def load(self, count):
        value = self.run()
        if not isinstance(value, _ArrayState) or value.array is None:
            raise AtelierError(f"{self.source}: holds a {type(value).__name__}, not an array")
        items = value.array
        if not isinstance(items, list) or len(items) != count:
            raise self.fail("the object array's items do not match its header")
        return items

    def global_(self, module, name):
        marker = _GLOBALS.get((module, name))
        if marker is None:
            raise AtelierError(f"{self.source}: refused to load: it asks to run {module[:60]}.{name[:60]}, "
                               f"and a stroke data set only holds numpy arrays")
        return marker

    def run(self):  # noqa: C901 (one branch per instruction)
        stack, marks, memo = [], [], {}

        def pop_mark():
            if not marks:
                raise self.fail("no MARK")
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            return items

        def pop():
            if not stack:
                raise self.fail("stack underflow")
            return stack.pop()

        def count_items(n):
            self.items += n
            if self.items > self.MAX_ITEMS:
                raise self.fail(f"more than {self.MAX_ITEMS:,} items")

        while True:
            op = self.take(1)
            if op == b".":
                return pop()
            if op == b"\x80":  # PROTO
                if self.unpack("<B") > 5:
                    raise self.fail("unknown pickle protocol")
            elif op == b"\x95":  # FRAME: a length prefix only
                self.unpack("<Q")
            elif op == b"(":
                marks.append(len(stack))
            elif op in (b"c", b"\x93"):  # GLOBAL, STACK_GLOBAL
                if op == b"c":
                    module, name = self.line(), self.line()
                else:
                    name, module = pop(), pop()
                    if not isinstance(module, str) or not isinstance(name, str):
                        raise self.fail("STACK_GLOBAL of non-strings")
                stack.append(self.global_(module, name))
            elif op in (b"q", b"r", b"p", b"\x94"):  # BINPUT, LONG_BINPUT, PUT, MEMOIZE
                key = {b"q": lambda: self.unpack("<B"), b"r": lambda: self.unpack("<I"),
                       b"p": self.int_line, b"\x94": lambda: len(memo)}[op]()
                if not stack:
                    raise self.fail("stack underflow")
                if len(memo) > self.MAX_ITEMS:
                    raise self.fail("too many memo entries")
                memo[key] = stack[-1]
            elif op in (b"h", b"j", b"g"):  # BINGET, LONG_BINGET, GET
                key = {b"h": lambda: self.unpack("<B"), b"j": lambda: self.unpack("<I"), b"g": self.int_line}[op]()
                if key not in memo:
                    raise self.fail("reference to an unknown memo entry")
                stack.append(memo[key])
            elif op == b"K":
                stack.append(self.unpack("<B"))
            elif op == b"M":
                stack.append(self.unpack("<H"))
            elif op == b"J":
                stack.append(self.unpack("<i"))
            elif op in (b"\x8a", b"\x8b"):  # LONG1, LONG4
                size = self.unpack("<B") if op == b"\x8a" else self.unpack("<i")
                if not 0 <= size <= 16:
                    raise self.fail("an integer is too large")
                stack.append(int.from_bytes(self.take(size), "little", signed=True))
            elif op == b"G":
                stack.append(self.unpack(">d"))
            elif op in (b"I", b"L"):
                text = self.line().rstrip("L")
                if text in ("00", "01"):
                    stack.append(text == "01")
                else:
                    try:
                        stack.append(int(text))
                    except ValueError:
                        raise self.fail("a malformed integer") from None
            elif op == b"F":
                try:
                    stack.append(float(self.line()))
                except ValueError:
                    raise self.fail("a malformed number") from None
            elif op == b"N":
                stack.append(None)
            elif op in (b"\x88", b"\x89"):
                stack.append(op == b"\x88")
            elif op in (b"C", b"B", b"\x8e", b"\x96", b"U", b"T"):  # bytes; py2 strings are bytes here too
                size = {b"C": "<B", b"U": "<B", b"B": "<I", b"T": "<i", b"\x8e": "<Q", b"\x96": "<Q"}[op]
                stack.append(self.take(self.unpack(size)))
            elif op in (b"\x8c", b"X", b"\x8d"):  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                size = {b"\x8c": "<B", b"X": "<I", b"\x8d": "<Q"}[op]
                try:
                    stack.append(self.take(self.unpack(size)).decode("utf-8"))
                except UnicodeDecodeError:
                    raise self.fail("a string is not UTF-8") from None
            elif op == b")":
                stack.append(())
            elif op in (b"\x85", b"\x86", b"\x87"):
                n = {b"\x85": 1, b"\x86": 2, b"\x87": 3}[op]
                if len(stack) < n:
                    raise self.fail("stack underflow")
                items = tuple(stack[len(stack) - n:])
                del stack[len(stack) - n:]
                stack.append(items)
            elif op == b"t":
                stack.append(tuple(pop_mark()))
            elif op == b"]":
                stack.append([])
            elif op == b"l":
                stack.append(pop_mark())
            elif op in (b"a", b"e"):  # APPEND, APPENDS
                items = [pop()] if op == b"a" else pop_mark()
                target = pop() if stack else None
                if not isinstance(target, list):
                    raise self.fail("APPEND to something that is not a list")
                count_items(len(items))
                target.extend(items)
                stack.append(target)
            elif op == b"0":
                pop()
            elif op == b"1":
                pop_mark()
            elif op == b"2":
                if not stack:
                    raise self.fail("stack underflow")
                stack.append(stack[-1])
            elif op == b"R":
                arguments, function = pop(), pop()
                stack.append(self.call(function, arguments))
            elif op == b"b":
                state, target = pop(), pop()
                self.build(target, state)
                stack.append(target)
            else:
                raise self.fail(f"pickle instruction {op!r} is not used by numpy arrays")

    def call(self, function, arguments):
        if not isinstance(arguments, tuple):
            raise self.fail("call arguments are not a tuple")
        if (function is _ENCODE and len(arguments) == 2 and isinstance(arguments[0], str)
                and arguments[1] in ("latin1", "latin-1")):
            try:
                return arguments[0].encode("latin-1")
            except UnicodeEncodeError:
                raise self.fail("text that is not Latin-1 given as bytes") from None
        if function is _FROMBUFFER and len(arguments) == 4:  # protocol 5: (bytes, dtype, shape, order)
            array = _ArrayState()
            self.build(array, (1, arguments[2], arguments[1], arguments[3] == "F", arguments[0]))
            return array
        if function is _RECONSTRUCT and len(arguments) == 3 and arguments[0] is _NDARRAY:
            return _ArrayState()
        if function is _DTYPE and len(arguments) >= 1 and isinstance(arguments[0], (str, bytes)):
            descr = arguments[0].decode("latin-1") if isinstance(arguments[0], bytes) else arguments[0]
            return _DtypeState(descr[:8])
        if function is _SCALAR and len(arguments) == 2 and isinstance(arguments[0], _DtypeState):
            dtype = self.dtype(arguments[0])
            raw = arguments[1].encode("latin-1") if isinstance(arguments[1], str) else arguments[1]
            if dtype is None or not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
                raise self.fail("a malformed scalar")
            return np.frombuffer(raw, dtype)[0].item()
        name = function.name if isinstance(function, _Marker) else type(function).__name__
        raise self.fail(f"an unexpected call of {name}")

    def dtype(self, state):
        """The numpy dtype of a rebuilt dtype: numbers, or None for object; nothing else."""
        if state.descr in ("O8", "O4", "O"):
            return None
        if not re.fullmatch(r"[biuf][1248]", state.descr) or state.order not in "<>|=":
            raise AtelierError(f"{self.source}: arrays of {state.descr!r} are not stroke data (expected numbers)")
        return np.dtype((state.order if state.order in "<>" else "=") + state.descr)

    def build(self, target, state):
        if isinstance(target, _DtypeState):
            if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], (str, bytes)):
                raise self.fail("a malformed dtype")
            order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
            target.order = order[:1] or "|"
            return
        if not isinstance(target, _ArrayState) or target.array is not None:
            raise self.fail("state given to something that is not a new array")
        if not isinstance(state, tuple) or len(state) != 5:
            raise self.fail("a malformed array state")
        _version, shape, dtype_state, fortran, payload = state
        if (not isinstance(shape, tuple) or len(shape) > 8
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
                or not isinstance(dtype_state, _DtypeState)):
            raise self.fail("a malformed array shape or dtype")
        count, dtype = math.prod(shape), self.dtype(dtype_state)
        if dtype is None:  # an object array: its items are the list
            if not isinstance(payload, list) or len(payload) != count:
                raise self.fail("an object array whose items do not match its shape")
            target.array = payload
            return
        if isinstance(payload, str):
            payload = payload.encode("latin-1", "replace")
        if isinstance(payload, bytearray):
            payload = bytes(payload)
        if not isinstance(payload, bytes) or len(payload) != count * dtype.itemsize:
            raise self.fail(f"array data of the wrong size for shape {shape}")
        target.array = np.frombuffer(payload, dtype).copy().reshape(shape, order="F" if fortran else "C")


def _as_sketch(item, source, name, index):
    """One item of a data set -> a float32 N x 3 array, or an AtelierError saying what it is."""
    if isinstance(item, _ArrayState):
        item = item.array
    if isinstance(item, (list, tuple)):  # rows of numbers, as plain lists
        if not all(isinstance(row, (list, tuple)) and len(row) == 3
                   and all(type(v) in (int, float) for v in row) for row in item):
            raise AtelierError(f"{source}: '{name}' item {index} is not a stroke-3 sketch "
                               "(expected rows of 3 numbers)")
        try:
            item = np.array(item, np.float64).reshape(-1, 3)
        except OverflowError:
            raise AtelierError(f"{source}: '{name}' item {index} holds a number too large") from None
    if not isinstance(item, np.ndarray) or item.ndim != 2 or item.shape[1] != 3 or item.dtype.kind not in "biuf":
        shape = getattr(item, "shape", None)
        raise AtelierError(f"{source}: '{name}' item {index} is not a stroke-3 sketch "
                           f"(shape {shape}, {getattr(item, 'dtype', type(item).__name__)}); expected N x 3 numbers")
    return item


def load_npz(path):
    """A sketch-rnn ``.npz`` -> ``{"train": [...], "valid": [...], "test": [...]}`` of stroke-3 arrays.

    Reading is bounded: the archive's members may hold at most :data:`MAX_NPZ_BYTES` uncompressed
    (stored or deflated only, read in a stream that stops there), and :data:`MAX_POINTS` points.
    """
    path = Path(path)
    source = shown(path)
    with open_regular(path, ".npz archive") as handle:
        try:
            archive = zipfile.ZipFile(handle)
            infos = archive.infolist()
        except _ZIP_ERRORS as error:
            raise AtelierError(f"{source}: not a readable .npz archive ({type(error).__name__}: {error})") from None
        declared = sum(info.file_size for info in infos)
        if declared > MAX_NPZ_BYTES:
            raise AtelierError(f"{source}: the archive declares {declared:,} bytes of arrays; "
                               f"at most {MAX_NPZ_BYTES:,} are read")
        splits, points, converted = {}, 0, {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            label = f"{source} [{shown(name)}]"
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise AtelierError(f"{label}: compression method {info.compress_type} is not used by numpy")
            try:
                with archive.open(info) as member:
                    data = member.read(info.file_size)
                    if member.read(1):
                        raise AtelierError(f"{label}: holds more than its declared size")
            except _ZIP_ERRORS as error:
                raise AtelierError(f"{label}: damaged archive member ({type(error).__name__}: {error})") from None
            array = _read_npy(data, label)
            if isinstance(array, list):
                items = array
            elif array.ndim == 2:
                items = [array]
            elif array.ndim == 3:
                items = list(array)
            else:
                raise AtelierError(f"{source}: '{shown(name)}' is a {array.ndim}-dimensional array "
                                   f"{array.shape}; expected stroke-3 sketches")
            sketches = []
            for index, item in enumerate(items):
                key = id(item)
                if key not in converted:  # an item the pickle refers to many times is converted once
                    sketch = _as_sketch(item, source, shown(name), index)
                    points += len(sketch)
                    if points > MAX_POINTS:
                        raise AtelierError(f"{source}: holds more than {MAX_POINTS:,} points")
                    converted[key] = (item, np.asarray(sketch, np.float32))
                sketches.append(converted[key][1])
            splits[name] = sketches
    if not splits:
        raise AtelierError(f"{source}: the archive holds no arrays")
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


MAX_SVG_BYTES = 8 * 1024 * 1024
MAX_SVG_POINTS = 1_000_000  # a kanji has a few hundred


class _Tokens:
    """The commands and numbers of a path's ``d``, read lazily (a long path is never a long list)."""

    def __init__(self, d):
        self.found, self.pending = _TOKEN.finditer(d), []

    def peek(self):
        if not self.pending:
            match = next(self.found, None)
            if match is None:
                return None
            self.pending.append((match.group(1) or None, match.group(2) or None))
        return self.pending[-1]

    def take(self):
        token = self.peek()
        if token is not None:
            self.pending.pop()
        return token

    def push(self, token):
        self.pending.append(token)


def parse_svg_path(d, samples=8, max_points=MAX_SVG_POINTS):
    """An SVG path's ``d`` -> polylines (one per subpath); curves sampled with ``samples`` points.

    Supports every command: M L H V C S Q T A Z, absolute and relative.  Numbers must be finite, and
    a path of more than ``max_points`` points is refused (ValueError).  Points are plain floats until
    a subpath ends (a million line-tos take about a second).
    """
    tokens = _Tokens(d)
    polylines, line, points = [], [], 0
    x = y = start_x = start_y = 0.0
    last_control, command = None, None
    finite = np.isfinite

    def numbers(count):
        values = []
        for _ in range(count):
            token = tokens.take()
            if token is None or token[1] is None:
                if token is not None:
                    tokens.push(token)
                raise ValueError("missing numbers")
            value = float(token[1])
            if value in (np.inf, -np.inf):
                raise ValueError(f"the number {token[1][:20]} is too large")
            values.append(value)
        return values

    def flag():  # arc flags may touch what follows: "a5 5 0 015 5" is 0, 1, 5 5
        token = tokens.take()
        text = None if token is None else token[1]
        if text is None or text[0] not in "01":
            raise ValueError("an arc flag must be 0 or 1")
        if len(text) > 1:
            tokens.push((None, text[1:]))
        return text[0] == "1"

    def finish(line):
        nonlocal points
        if len(line) > 1:
            points += len(line)
            if points > max_points:
                raise ValueError(f"more than {max_points:,} points")
            array = np.array(line, float)
            if not finite(array).all():
                raise ValueError("coordinates overflow")
            polylines.append(array)

    def extend(array):
        line.extend(map(tuple, np.asarray(array, float).tolist()))

    while tokens.peek() is not None:
        if len(line) + points > max_points:
            raise ValueError(f"more than {max_points:,} points")
        if tokens.peek()[0]:
            command = tokens.take()[0]
            if command in "Zz":
                if line:
                    line.append((start_x, start_y))
                x, y, command = start_x, start_y, None
                continue
        elif command is None:
            raise ValueError("numbers before a command")
        relative, kind = command.islower(), command.upper()
        base_x, base_y = (x, y) if relative else (0.0, 0.0)
        if kind == "M":
            finish(line)
            dx, dy = numbers(2)
            x = start_x = base_x + dx
            y = start_y = base_y + dy
            line = [(x, y)]
            command = "l" if relative else "L"  # further pairs are line-tos
            continue
        if not line:
            line = [(x, y)]
        if kind == "L":
            dx, dy = numbers(2)
            x, y, last_control = base_x + dx, base_y + dy, None
            line.append((x, y))
        elif kind == "H":
            x, last_control = numbers(1)[0] + base_x, None
            line.append((x, y))
        elif kind == "V":
            y, last_control = numbers(1)[0] + base_y, None
            line.append((x, y))
        elif kind in "CSQT":
            count = {"C": 3, "S": 2, "Q": 2, "T": 1}[kind]
            values = numbers(2 * count)
            given = [np.array([base_x + values[2 * k], base_y + values[2 * k + 1]]) for k in range(count)]
            position = np.array([x, y])
            if kind in "ST":
                given = [2 * position - last_control if last_control is not None else position.copy()] + given
            extend(_bezier([position] + given, samples))
            (x, y), last_control = given[-1].tolist(), given[-2]
        elif kind == "A":
            radii, rotation, large_arc, sweep = np.array(numbers(2)), numbers(1)[0], flag(), flag()
            dx, dy = numbers(2)
            target = np.array([base_x + dx, base_y + dy])
            extend(_arc(np.array([x, y]), target, radii, rotation, large_arc, sweep, samples))
            (x, y), last_control = target.tolist(), None
    finish(line)
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


def _element_polylines(element, tag, samples, max_points=MAX_SVG_POINTS):
    if tag == "path" and element.get("d"):
        return parse_svg_path(element.get("d"), samples, max_points)
    if tag in ("polyline", "polygon") and element.get("points"):
        values = np.array([float(v) for v in re.findall(_NUMBER, element.get("points"))])
        if len(values) > 2 * max_points:
            raise ValueError(f"more than {max_points:,} points")
        points = values[: len(values) // 2 * 2].reshape(-1, 2)
        return [np.vstack([points, points[:1]]) if tag == "polygon" else points]
    if tag == "line":
        return [np.array([[float(element.get(k, 0)) for k in pair] for pair in (("x1", "y1"), ("x2", "y2"))])]
    return []


def load_svg(path, samples=8):
    """Polylines from an SVG file's ``path``, ``polyline``, ``polygon`` and ``line`` elements (document order).

    Each element's ``transform`` and its groups' are applied; what ``defs``, masks and the like hold
    is not drawn (``use`` references are not followed).  The file may be at most
    :data:`MAX_SVG_BYTES` and hold :data:`MAX_SVG_POINTS` points; groups may nest to any depth.
    """
    path = Path(path)
    source = shown(path)
    data = read_file(path, MAX_SVG_BYTES, "SVG file")
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, LookupError, ValueError, UnicodeError, RecursionError) as error:
        raise AtelierError(f"{source}: not a readable SVG file ({type(error).__name__}: {error})") from None
    polylines, points = [], 0
    pending = [(root, np.eye(3))]  # depth first, in document order, without recursion
    while pending:
        element, parent = pending.pop()
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        if tag in _NOT_DRAWN:
            continue
        try:
            matrix = parent @ parse_svg_transform(element.get("transform"))
            for line in _element_polylines(element, tag, samples, MAX_SVG_POINTS - points):
                line = line @ matrix[:2, :2].T + matrix[:2, 2]
                if not np.all(np.isfinite(line)):
                    raise ValueError("coordinates overflow")
                points += len(line)
                polylines.append(line)
        except (ValueError, IndexError, OverflowError) as error:
            raise AtelierError(f"{source}: malformed <{tag[:40]}> element ({error})") from None
        if points > MAX_SVG_POINTS:
            raise AtelierError(f"{source}: more than {MAX_SVG_POINTS:,} points")
        pending.extend((child, matrix) for child in reversed(element))
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


def _assignment(count, seed=0, fractions=(0.9, 0.05)):
    """The split ("train", "valid", "test") of each of ``count`` items: a fixed-seed permutation cut 90/5/5."""
    order = np.random.default_rng(seed).permutation(count)
    first, second = int(count * fractions[0]), int(count * sum(fractions))
    where = np.empty(count, object)
    where[order[:first]], where[order[first:second]], where[order[second:]] = "train", "valid", "test"
    return list(where)


def _split(sketches, seed=0, fractions=(0.9, 0.05), keys=None, unique=True):
    """90/5/5 with a fixed seed; with ``keys`` (one per sketch) no key is in two splits, nor twice in one
    when ``unique`` (``data_splits.disjoint``: training keeps its items, the held-out parts lose theirs)."""
    from .data_splits import disjoint
    if keys is None:   # in the permutation's order, as before
        order = np.random.default_rng(seed).permutation(len(sketches))
        first, second = int(len(order) * fractions[0]), int(len(order) * sum(fractions))
        return {"train": [sketches[i] for i in order[:first]],
                "valid": [sketches[i] for i in order[first:second]],
                "test": [sketches[i] for i in order[second:]]}
    where = _assignment(len(sketches), seed, fractions)
    return {split: [sketches[i] for i in chosen] for split, chosen in disjoint(keys, where, unique=unique).items()}


BUILTIN = ("kanji", "hershey")   # split with no test item equal to a training one (data_splits.py)


def _reporting(items, progress, stage):
    """``items``, telling ``progress`` how far it got (so Esc or Ctrl-C stop a long read)."""
    if progress:
        progress.stage(stage, len(items))
    for done, item in enumerate(items):
        if progress and done % 32 == 0:
            progress.update(done)
        yield item


def load_dataset(source, epsilon=2.0, limit=None, progress=None):
    """Any supported source -> ``({"train", "valid", "test"}, info)`` of stroke-3 lists.

    ``source``: a sketch-rnn ``.npz`` (its own splits), a QuickDraw ``.ndjson``, an ``.svg`` file or a
    folder of them (one drawing per file), or a builtin name: ``kanji`` (kanjivg), ``hershey``.
    Sources without splits are split 90/5/5 with a fixed seed; the builtin sets so that no held-out item
    equals a training one (Hershey: one item per distinct glyph, by content; kanji: by base character,
    variant files with it).  Drawings from vector sources are
    scaled to 255 and simplified with RDP(``epsilon``) as in QuickDraw.  ``progress`` sees the files
    read from folders and builtin sets (thousands of SVGs: minutes on a busy machine).
    """
    info = {"source": str(source), "skipped_lines": 0}
    path = Path(source)
    keys = None
    if str(source) == "kanji":
        files = kanjivg_files()[:limit]
        drawings = [load_svg(file, samples=6) for file in _reporting(files, progress, "reading KanjiVG")]
        keys = [kanji_base(file) for file in files]   # variant files share their base character's split
    elif str(source) == "hershey":
        drawings = hershey_polylines()[:limit]
    elif path.suffix == ".npz":
        return load_npz(path), info
    elif path.suffix == ".ndjson":
        sketches, info["skipped_lines"] = load_ndjson(path, epsilon, limit)
        return _split(sketches), info
    elif path.suffix == ".svg":
        drawings = [load_svg(path)]
    elif path.is_dir():
        files = sorted(path.glob("*.svg"))
        if not files:
            raise AtelierError(f"{path}: the folder holds no .svg files")
        drawings = [load_svg(file) for file in _reporting(files[:limit], progress, "reading drawings")]
    elif not path.exists() and str(source) not in BUILTIN:
        raise AtelierError(f"{source}: no such file, folder or builtin data set ({', '.join(BUILTIN)})")
    else:
        raise AtelierError(f"{path}: unsupported stroke data (use .npz, .ndjson, .svg or a folder of .svg)")
    sketches = [polylines_to_stroke3(simplify_polylines(d, epsilon)) for d in drawings]
    if str(source) == "hershey":   # fonts share glyphs: one item per content (the preprocessed strokes, hashed)
        keys = [stroke3_key(s) for s in sketches]
    return _split(sketches, keys=keys, unique=str(source) == "hershey"), info
