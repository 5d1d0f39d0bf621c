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
import struct
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import AtelierError

FORMAT_VERSION = 1
MODEL_SUFFIX = ".safetensors"

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "U16": np.uint16, "BOOL": np.bool_,
}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def save_model(path, kind: str, tensors: dict, meta: dict | None = None):
    """Write ``tensors`` (name -> numpy array) and ``meta`` as a model of ``kind``, atomically."""
    document = {"kind": kind, "format_version": FORMAT_VERSION, **(meta or {})}
    header = {"__metadata__": {"atelier": json.dumps(document, sort_keys=True)}}
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

    Every way a file can be wrong (missing, truncated, not safetensors, another kind,
    a newer format, non-finite numbers) raises :class:`AtelierError` naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise AtelierError(f"{path}: cannot read model file ({error.strerror or error})") from None

    def fail(problem):
        return AtelierError(f"{path}: {problem}")

    if len(raw) < 8:
        raise fail("not an Atelier model (file too short to be safetensors)")
    (header_size,) = struct.unpack("<Q", raw[:8])
    if header_size > min(_MAX_HEADER, len(raw) - 8):
        raise fail("not an Atelier model, or truncated (bad safetensors header length)")
    try:
        header = json.loads(raw[8:8 + header_size].decode("utf-8"))
        meta = json.loads(header.pop("__metadata__", {})["atelier"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise fail("not an Atelier model (no Atelier metadata in a safetensors header)") from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise fail("not an Atelier model (metadata has no kind)")
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and meta["kind"] not in wanted:
        raise fail(f"is a {meta['kind']!r} model, expected {' or '.join(map(repr, wanted))}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise fail(f"format version {meta['format_version']} is newer than this Atelier reads "
                   f"({FORMAT_VERSION}); update Atelier")
    body = memoryview(raw)[8 + header_size:]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            start, end = info["data_offsets"]
            shape = tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise fail(f"tensor {name!r} has a malformed description") from None
        if end > len(body) or start > end:
            raise fail(f"truncated (tensor {name!r} runs past the end of the file)")
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != end - start:
            raise fail(f"tensor {name!r}: size does not match its shape")
        array = np.frombuffer(body[start:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise fail(f"tensor {name!r} holds NaN or infinite values")
        tensors[name] = array
    return tensors, meta
