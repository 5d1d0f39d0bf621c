"""Read named channels (e.g. Blender's ``ViewLayer.Vector.X``) from a multilayer OpenEXR file.

OpenCV reads only plain RGB(A) EXRs, and Blender's Python has no OpenEXR module, so this
is a small reader of the OpenEXR 2 layout: single- or multi-part (Blender 5 writes one part
per pass), scanlines, NONE / ZIPS / ZIP compression, HALF, FLOAT or UINT channels.

Every size in the file is checked before it is used: attribute sizes against the header, the
data window against :data:`MAX_PIXELS` and against what the file's bytes can hold, each chunk's
rows and bytes against the data window, and each chunk inflates to exactly its rows' size and no
further.  Every row must come from exactly one chunk; rows the chunk table does not cover are an
error, never uninitialised memory.
"""

import struct
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..imageio import MAX_PIXELS
from ..validate import inflate, read_file, shown

_MAGIC = 20000630
_COMPRESSIONS = {0: ("NONE", 1), 2: ("ZIPS", 1), 3: ("ZIP", 16)}  # name, scanlines per chunk
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_MAX_FILE_BYTES = 4 << 30
_MAX_PARTS = 1024
_MAX_CHANNELS = 1024
_ZLIB_RATIO = 1100  # deflate never inflates more than 1032x


class _Malformed(Exception):
    """A structural problem in the header, turned into an AtelierError naming the file."""


def _cstring(raw, at, limit=256):
    end = raw.find(b"\0", at, min(len(raw), at + limit + 1))
    if end < 0:
        raise _Malformed(f"unterminated name at byte {at}")
    return raw[at:end], end + 1


def _unpack(fmt, raw, at):
    if at < 0 or at + struct.calcsize(fmt) > len(raw):
        raise _Malformed(f"the file ends inside the header (byte {at})")
    return struct.unpack_from(fmt, raw, at)


def _headers(raw, path):
    """Return ``(list of part attribute dicts, offset after the headers, multipart?)``."""
    if len(raw) < 8 or struct.unpack_from("<i", raw, 0)[0] != _MAGIC:
        raise AtelierError(f"{shown(path)}: not an OpenEXR file")
    flags = struct.unpack_from("<i", raw, 4)[0]
    if flags & 0xFF != 2:
        raise AtelierError(f"{shown(path)}: OpenEXR version {flags & 0xFF} is not supported (expected 2)")
    if flags & 0x0A00:  # tiled or deep
        raise AtelierError(f"{shown(path)}: tiled or deep EXR is not supported; save scanline EXR")
    multipart, parts, at = bool(flags & 0x1000), [], 8
    while True:
        attributes = {}
        while _unpack("<B", raw, at)[0] != 0:
            name, at = _cstring(raw, at)
            _type, at = _cstring(raw, at)
            (size,) = _unpack("<i", raw, at)
            if size < 0 or at + 4 + size > len(raw):
                raise _Malformed(f"attribute {name.decode('latin-1')!r} has size {size}")
            attributes[name.decode("latin-1")] = raw[at + 4:at + 4 + size]
            at += 4 + size
        parts.append(attributes)
        at += 1
        if len(parts) > _MAX_PARTS:
            raise _Malformed(f"more than {_MAX_PARTS} parts")
        if not multipart or _unpack("<B", raw, at)[0] == 0:
            return parts, at + multipart, multipart


def _channels(blob):
    channels, at = [], 0
    while _unpack("<B", blob, at)[0] != 0:
        name, at = _cstring(blob, at)
        pixel_type, _linear, x_sampling, y_sampling = _unpack("<iB3xii", blob, at)
        if pixel_type not in _PIXEL_TYPES:
            raise _Malformed(f"channel pixel type {pixel_type}")
        if (x_sampling, y_sampling) != (1, 1):
            raise _Malformed("subsampled channels")
        try:
            channels.append((name.decode("utf-8"), _PIXEL_TYPES[pixel_type]))
        except UnicodeDecodeError:
            raise _Malformed("a channel name is not UTF-8") from None
        at += 16
        if len(channels) > _MAX_CHANNELS:
            raise _Malformed(f"more than {_MAX_CHANNELS} channels")
    if not channels:
        raise _Malformed("a part has no channels")
    if len({name for name, _ in channels}) != len(channels):
        raise _Malformed("a channel name appears twice")
    return sorted(channels)


def _attribute(attributes, name, size):
    value = attributes.get(name)
    if value is None:
        raise _Malformed(f"no {name} attribute")
    if len(value) != size:
        raise _Malformed(f"{name} attribute has {len(value)} bytes, expected {size}")
    return value


def _unzip(data, size, path):
    """Undo EXR's ZIP filter: zlib (to exactly ``size`` bytes), then a byte-delta predictor over
    two interleaved halves."""
    t = np.frombuffer(inflate(data, size, path, "EXR chunk"), np.uint8)
    t = np.cumsum(t - np.uint8(128), dtype=np.uint8) + np.uint8(128)  # wraps modulo 256, as the format does
    out = np.empty_like(t)
    half = (len(t) + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _layout(attributes):
    (compression,) = _attribute(attributes, "compression", 1)
    x0, y0, x1, y1 = struct.unpack("<iiii", _attribute(attributes, "dataWindow", 16))
    if compression not in _COMPRESSIONS:
        return compression, None
    channels = _channels(attributes.get("channels") or b"\0")
    if x1 < x0 or y1 < y0:
        raise _Malformed(f"empty data window ({x0}, {y0}) - ({x1}, {y1})")
    return compression, (channels, _COMPRESSIONS[compression][1], x0, y0, x1, y1)


def read_exr_channels(path, names=None):
    """Return ``{channel name: float32 H x W array}`` (row 0 at the top) for ``names`` (default all)."""
    path = Path(path)
    raw = read_file(path, _MAX_FILE_BYTES, "EXR file")
    try:
        parts, at, multipart = _headers(raw, path)
        layouts = []
        for attributes in parts:
            compression, layout = _layout(attributes)
            if layout is None:
                raise AtelierError(f"{shown(path)}: EXR compression {compression} is not supported; "
                                   "save with ZIP, ZIPS or no compression")
            layouts.append(layout)
    except (_Malformed, KeyError, ValueError, IndexError, struct.error) as error:
        raise AtelierError(f"{shown(path)}: malformed or unsupported EXR header ({error})") from None
    available = [name for layout in layouts for name, _ in layout[0]]
    missing = set(names or ()) - set(available)
    if missing:
        raise AtelierError(f"{shown(path)}: EXR has no channel {', '.join(sorted(missing))} "
                           f"(has {', '.join(available)})")
    wanted = set(available if names is None else names)
    if len(set(available)) != len(available):
        raise AtelierError(f"{shown(path)}: malformed EXR header (a channel name appears in two parts)")
    # every chunk's bytes lie in the file and no two chunks share bytes, so the file's size bounds
    # what the chunks can hold: at most the zlib ratio times the file
    total = sum((x1 - x0 + 1) * (y1 - y0 + 1) * sum(d.itemsize for _, d in channels)
                for channels, _, x0, y0, x1, y1 in layouts)
    pixels = max((x1 - x0 + 1) * (y1 - y0 + 1) for _, _, x0, y0, x1, y1 in layouts)
    if pixels > MAX_PIXELS or total > _ZLIB_RATIO * len(raw):
        width, height = max(((x1 - x0 + 1, y1 - y0 + 1) for _, _, x0, y0, x1, y1 in layouts),
                            key=lambda size: size[0] * size[1])
        raise AtelierError(f"{shown(path)}: EXR data window is {width}x{height} pixels"
                           + (f"; at most {MAX_PIXELS // 1_000_000} megapixels can be read" if pixels > MAX_PIXELS
                              else f", more than its {len(raw):,} bytes can hold; it is damaged or truncated"))
    tables = []
    for channels, lines_per_chunk, x0, y0, x1, y1 in layouts:
        chunks = (y1 - y0 + lines_per_chunk) // lines_per_chunk
        if at + 8 * chunks > len(raw):
            raise AtelierError(f"{shown(path)}: truncated EXR (the file ends inside its chunk table)")
        tables.append(struct.unpack_from(f"<{chunks}Q", raw, at))
        at += 8 * chunks
    chunks, spans = [], []  # first every chunk is checked, then (their bytes all distinct) decoded
    for part, ((channels, lines_per_chunk, x0, y0, x1, y1), offsets) in enumerate(zip(layouts, tables)):
        if not any(name in wanted for name, _ in channels):
            continue
        height = y1 - y0 + 1
        line_bytes = sum(dtype.itemsize for _, dtype in channels) * (x1 - x0 + 1)
        covered = np.zeros(height, bool)
        head = 8 + 4 * multipart
        for offset in offsets:
            if offset < at or offset + head > len(raw):
                raise AtelierError(f"{shown(path)}: malformed EXR (a chunk offset points outside the file)")
            if multipart and struct.unpack_from("<i", raw, offset)[0] != part:
                raise AtelierError(f"{shown(path)}: malformed EXR (a chunk names the wrong part)")
            y, size = struct.unpack_from("<ii", raw, offset + 4 * multipart)
            first = y - y0
            if not 0 <= first < height or first % lines_per_chunk or covered[first]:
                raise AtelierError(f"{shown(path)}: malformed EXR (chunk at row {y} is outside the data window, "
                                   "misaligned or repeated)")
            rows = min(lines_per_chunk, height - first)
            if not 0 <= size <= rows * line_bytes or offset + head + size > len(raw):
                raise AtelierError(f"{shown(path)}: malformed or truncated EXR (chunk at row {y} declares {size} "
                                   f"bytes; its rows hold {rows * line_bytes})")
            covered[first:first + rows] = True
            spans.append((offset, offset + head + size))
            chunks.append((part, first, rows, raw[offset + head:offset + head + size], rows * line_bytes))
        if not covered.all():
            raise AtelierError(f"{shown(path)}: truncated EXR (no chunk holds row {int(np.argmin(covered)) + y0})")
    spans.sort()
    if any(second[0] < first[1] for first, second in zip(spans, spans[1:])):
        raise AtelierError(f"{shown(path)}: malformed EXR (two chunks share the same bytes)")
    out = {}
    for channels, _, x0, y0, x1, y1 in layouts:
        for name, _ in channels:
            if name in wanted:
                out[name] = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.float32)
    for part, first, rows, data, expected in chunks:
        channels, _, x0, _, x1, _ = layouts[part]
        width = x1 - x0 + 1
        if len(data) < expected:
            data = _unzip(data, expected, path)
        at_row = 0
        for row in range(first, first + rows):
            for name, dtype in channels:
                if name in out:
                    out[name][row] = np.frombuffer(data, dtype, width, at_row)
                at_row += dtype.itemsize * width
    return {name: out[name] for name in (names or out)}
