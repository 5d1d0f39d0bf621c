"""The one model file format: safetensors tensors plus JSON metadata.

A model file is a standard ``.safetensors`` file (readable by the ``safetensors``
library and every tool that speaks it).  Its ``__metadata__`` holds one key,
``atelier``, whose value is a JSON document::

    {"kind": "nca", "format_version": 1, "hyperparameters": {...}, "training": {...}, ...}

The reader and writer are implemented here with numpy alone so that Blender's bundled
Python (which has numpy but not safetensors) reads models too.  Nothing is ever
unpickled.
"""

import json
import math
import struct
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import AtelierError
from .validate import file_size, open_regular, shown

FORMAT_VERSION = 1
MODEL_SUFFIX = ".safetensors"

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "U16": np.uint16, "BOOL": np.bool_,
}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024
_MAX_DIMENSIONS = 8
MAX_MODEL_BYTES = 1 << 30  # the largest shipped model is a few MB; checkpoints with optimiser state a few times more


def save_model(path, kind: str, tensors: dict, meta: dict | None = None):
    """Write ``tensors`` (name -> numpy array) and ``meta`` as a model of ``kind``, atomically."""
    document = {"kind": kind, "format_version": FORMAT_VERSION, **(meta or {})}
    header: dict[str, dict] = {"__metadata__": {"atelier": json.dumps(document, sort_keys=True)}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(np.asarray(tensors[name]))
        if array.dtype not in _DTYPE_NAMES:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} cannot be stored")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPE_NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # the spec aligns the data to 8 bytes
    write_bytes_atomic(path, struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(blobs))


def read_model(path, kind: str | None = None):
    """Return ``(tensors, meta)`` from a model file; ``kind`` (or a tuple of kinds) is checked.

    Every way a file can be wrong (missing, not a regular file, truncated, not safetensors, a
    header whose types, shapes or offsets do not fit the file, another kind, a newer format,
    non-finite numbers) raises :class:`AtelierError` naming the file.  The header is checked
    against the file's size before any tensor is allocated, so memory stays within the file's size.
    """
    path = Path(path)

    def fail(problem):
        return AtelierError(f"{shown(path)}: {problem}")

    with open_regular(path, "model file") as handle:
        size = file_size(handle)
        if size > MAX_MODEL_BYTES:
            raise fail(f"model file is {size:,} bytes; at most {MAX_MODEL_BYTES:,} are read")
        if size < 8:
            raise fail("not an Atelier model (file too short to be safetensors)")
        (header_size,) = struct.unpack("<Q", handle.read(8))
        if header_size > min(_MAX_HEADER, size - 8):
            raise fail("not an Atelier model, or truncated (bad safetensors header length)")
        raw_header = handle.read(header_size)
        if len(raw_header) != header_size:
            raise fail("truncated (the file ended inside its header)")
        header, meta = _parse_header(raw_header, fail)
        wanted = (kind,) if isinstance(kind, str) else kind
        if wanted and meta["kind"] not in wanted:
            raise fail(f"is a {meta['kind']!r} model, expected {' or '.join(map(repr, wanted))}")
        version = meta.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise fail(f"format_version is {version!r}; expected a whole number")
        if version > FORMAT_VERSION:
            raise fail(f"format version {version} is newer than this Atelier reads ({FORMAT_VERSION}); update Atelier")
        plan = _tensor_plan(header, size - 8 - header_size, fail)
        tensors = {}
        for name, dtype, shape, start, end in plan:
            array = np.empty(shape, dtype)
            handle.seek(8 + header_size + start)
            if end > start and handle.readinto(array.reshape(-1).view(np.uint8)) != end - start:
                raise fail(f"truncated (tensor {name!r} runs past the end of the file)")
            if dtype.kind == "b":
                array = array.view(np.uint8) != 0
            array = array.astype(dtype.newbyteorder("="), copy=False)
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise fail(f"tensor {name!r} holds NaN or infinite values")
            tensors[name] = array
    return tensors, meta


def _parse_header(raw_header, fail):
    """The safetensors header -> (tensor descriptions, Atelier metadata), every type checked."""
    no_metadata = "not an Atelier model (no Atelier metadata in a safetensors header)"
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except RecursionError:
        raise fail(f"{no_metadata}: the header is nested too deeply") from None
    except ValueError:
        raise fail(no_metadata) from None
    if not isinstance(header, dict):
        raise fail(f"{no_metadata}: the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("atelier"), str):
        raise fail(no_metadata)
    try:
        meta = json.loads(metadata["atelier"])
    except RecursionError:
        raise fail("the Atelier metadata is nested too deeply") from None
    except ValueError:
        raise fail(no_metadata) from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise fail("not an Atelier model (metadata has no kind)")
    if not isinstance(meta["kind"], str):
        raise fail(f"not an Atelier model (its kind is {type(meta['kind']).__name__}, not text)")
    return header, meta


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_plan(header, body_size, fail):
    """[(name, dtype, shape, start, end)] in file order, checked: known dtypes, whole non-negative
    shapes and offsets, sizes that match, inside the file and not overlapping."""
    plan = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise fail(f"tensor {name!r} has a malformed description")
        dtype_name, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
            raise fail(f"tensor {name!r} has an unknown dtype {str(dtype_name)[:20]!r}")
        if (not isinstance(shape, list) or len(shape) > _MAX_DIMENSIONS
                or not all(_whole(n) and 0 <= n <= body_size for n in shape)):
            raise fail(f"tensor {name!r} has a malformed shape (expected at most {_MAX_DIMENSIONS} "
                       "whole numbers, none negative)")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(n) for n in offsets):
            raise fail(f"tensor {name!r} has malformed data_offsets (expected two whole numbers)")
        start, end = offsets
        if not 0 <= start <= end:
            raise fail(f"tensor {name!r} has malformed data_offsets {start}, {end}")
        if end > body_size:
            raise fail(f"truncated (tensor {name!r} runs past the end of the file)")
        dtype = np.dtype(_DTYPES[dtype_name]).newbyteorder("<")
        count = math.prod(shape)
        if count * dtype.itemsize != end - start:
            raise fail(f"tensor {name!r}: size does not match its shape")
        plan.append((name, dtype, tuple(shape), start, end))
    plan.sort(key=lambda item: (item[3], item[4]))
    for (first, _, _, _, first_end), (second, _, _, second_start, _) in zip(plan, plan[1:]):
        if second_start < first_end:
            raise fail(f"tensors {first!r} and {second!r} overlap in the file")
    return plan
