"""Sketch-rnn ``.npz`` archives: ``train``, ``valid`` and ``test`` object arrays of stroke-3 sketches.

The object arrays are pickles.  They are decoded by :class:`_PickledArrays`, an interpreter of the few
pickle instructions numpy writes for arrays, not by ``pickle`` (whose numpy hooks a forged file can
make read arbitrary memory).  Reading is bounded in bytes, points and decompression.
"""

import math
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..validate import open_regular, shown

MAX_NPZ_BYTES = 256 * 1024 * 1024  # uncompressed; the largest QuickDraw sketch-rnn set is about 50 MB
MAX_POINTS = 50_000_000  # points in all the sketches of one data set
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

