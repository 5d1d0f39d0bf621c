"""Read named channels (e.g. Blender's ``ViewLayer.Vector.X``) from a multilayer OpenEXR file.

OpenCV reads only plain RGB(A) EXRs, and Blender's Python has no OpenEXR module, so this
is a small reader of the OpenEXR 2 layout: single- or multi-part (Blender 5 writes one part
per pass), scanlines, NONE / ZIPS / ZIP compression, HALF or FLOAT channels.
"""

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import AtelierError

_MAGIC = 20000630
_COMPRESSIONS = {0: ("NONE", 1), 2: ("ZIPS", 1), 3: ("ZIP", 16)}  # name, scanlines per chunk
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


def _headers(raw, path):
    """Return ``(list of part attribute dicts, offset after the headers, multipart?)``."""
    if len(raw) < 8 or struct.unpack_from("<i", raw, 0)[0] != _MAGIC:
        raise AtelierError(f"{path}: not an OpenEXR file")
    flags = struct.unpack_from("<i", raw, 4)[0]
    if flags & 0x0A00:  # tiled or deep
        raise AtelierError(f"{path}: tiled or deep EXR is not supported; save scanline EXR")
    multipart, parts, at = bool(flags & 0x1000), [], 8
    while True:
        attributes = {}
        while raw[at] != 0:
            name_end = raw.index(b"\0", at)
            type_end = raw.index(b"\0", name_end + 1)
            (size,) = struct.unpack_from("<i", raw, type_end + 1)
            attributes[raw[at:name_end].decode()] = raw[type_end + 5:type_end + 5 + size]
            at = type_end + 5 + size
        parts.append(attributes)
        at += 1
        if not multipart or raw[at] == 0:
            return parts, at + multipart, multipart


def _channels(blob):
    channels, at = [], 0
    while blob[at] != 0:
        end = blob.index(b"\0", at)
        pixel_type, = struct.unpack_from("<i", blob, end + 1)
        x_sampling, y_sampling = struct.unpack_from("<ii", blob, end + 9)
        if (x_sampling, y_sampling) != (1, 1):
            raise ValueError("subsampled channels")
        channels.append((blob[at:end].decode(), _PIXEL_TYPES[pixel_type]))
        at = end + 17
    return sorted(channels)


def _unzip(data):
    """Undo EXR's ZIP filter: zlib, then a byte-delta predictor over two interleaved halves."""
    t = np.frombuffer(zlib.decompress(data), np.uint8)
    t = np.cumsum(t.astype(np.int64) - 128, dtype=np.int64)
    t = ((t + 128) & 0xFF).astype(np.uint8)  # the first byte is kept as is: + 128 - 128
    out = np.empty_like(t)
    half = (len(t) + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def read_exr_channels(path, names=None):
    """Return ``{channel name: float32 H x W array}`` (row 0 at the top) for ``names`` (default all)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise AtelierError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        parts, at, multipart = _headers(raw, path)
        layouts = []
        for attributes in parts:
            compression = attributes["compression"][0]
            x0, y0, x1, y1 = struct.unpack("<iiii", attributes["dataWindow"])
            if compression not in _COMPRESSIONS:
                raise AtelierError(f"{path}: EXR compression {compression} is not supported; "
                                   "save with ZIP, ZIPS or no compression")
            layouts.append((_channels(attributes["channels"]), _COMPRESSIONS[compression][1], x0, y0, x1, y1))
    except (KeyError, ValueError, IndexError, struct.error) as error:
        raise AtelierError(f"{path}: malformed or unsupported EXR header ({error})") from None
    available = [name for layout in layouts for name, _ in layout[0]]
    missing = set(names or ()) - set(available)
    if missing:
        raise AtelierError(f"{path}: EXR has no channel {', '.join(sorted(missing))} "
                           f"(has {', '.join(available)})")
    out = {}
    for part, (channels, lines_per_chunk, x0, y0, x1, y1) in enumerate(layouts):
        width, height = x1 - x0 + 1, y1 - y0 + 1
        chunks = (height + lines_per_chunk - 1) // lines_per_chunk
        offsets = struct.unpack_from(f"<{chunks}Q", raw, at)
        at += 8 * chunks
        if not any(names is None or name in names for name, _ in channels):
            continue
        for name, _ in channels:
            out[name] = np.empty((height, width), np.float32)
        line_bytes = sum(dtype.itemsize for _, dtype in channels) * width
        for offset in offsets:
            offset += 4 * multipart  # a multi-part chunk starts with its part number
            y, size = struct.unpack_from("<ii", raw, offset)
            data = raw[offset + 8:offset + 8 + size]
            rows = min(lines_per_chunk, y1 - y + 1)
            if size < rows * line_bytes:
                data = _unzip(data)
            at_row = 0
            for row in range(rows):
                for name, dtype in channels:
                    out[name][y - y0 + row] = np.frombuffer(data, dtype, width, at_row)
                    at_row += dtype.itemsize * width
    return {name: out[name] for name in (names or out)}
