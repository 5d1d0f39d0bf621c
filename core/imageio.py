"""Image files <-> float32 numpy arrays, with orientation handled here once.

Arrays are ``H x W x C`` float32 in [0, 1] (EXR: linear floats, unclamped), row 0 at the
TOP of the picture, channels RGB or RGBA (greyscale files come back with C = 1 unless
``channels`` asks otherwise).  Blender images store row 0 at the bottom: ``addon/images.py``
flips them, nowhere else does.

The codec is OpenImageIO, the library Blender itself reads images with: it ships inside Blender
(and inside the ``bpy`` wheel), so the same code runs in Blender's own Python, in the worker
under that Python, and in the development venv.  A Python that has no OpenImageIO (a separate
"Python with torch" on a workstation) falls back to OpenCV, then Pillow.  Alpha is read and
written *unassociated* (straight), as PNG stores it.
"""

import importlib
import importlib.util
import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import AtelierError
from .validate import check_regular, library_name, read_file, shown

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr", ".webp", ".tga"}
# 64 megapixels: read as float RGBA that is 1 GiB, so even the largest image fits a 2 GiB process
MAX_PIXELS = 8192 * 8192
MAX_FILE_BYTES = 512 << 20  # the OpenCV and Pillow fallbacks read files whole; a 64 Mpx 16-bit RGBA TIFF
# The most pixels a byte of these formats can hold: deflate inflates at most 1032x, and a 1-bit PNG
# has 8 pixels a byte (8256); JPEG needs at least a bit or so per 8x8 block, TGA a byte per 128-pixel
# run.  A header that declares more than this in a small file is damaged: refused before decoding.
_MAX_PIXELS_PER_BYTE = {"png": 8300, "jpeg": 8300, "targa": 8300}


def blender_site_packages():
    """The site-packages that Blender bundles (OpenImageIO, oslquery, ...) when this Python has
    the ``bpy`` module installed but not on its path; found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        return None
    for folder in sorted(Path(spec.origin).parent.glob("*/python/lib/python3*/site-packages")):
        if (folder / "OpenImageIO").exists():
            return folder
    return None


def _import_openimageio():
    try:
        return importlib.import_module("OpenImageIO")
    except ImportError:
        pass
    folder = blender_site_packages()
    if folder is None:
        return None
    sys.path.append(str(folder))
    try:
        return importlib.import_module("OpenImageIO")
    except ImportError:
        sys.path.remove(str(folder))
        return None


def codec_name():
    """The library that reads and writes images in this Python: "OpenImageIO", "OpenCV" or "Pillow".

    ``ATELIER_IMAGE_CODEC`` (one of those names) picks one that is installed (tests, the fuzzer).
    """
    forced = os.environ.get("ATELIER_IMAGE_CODEC")
    if forced in ("OpenImageIO", "OpenCV", "Pillow"):
        return forced
    if _import_openimageio() is not None:
        return "OpenImageIO"
    for module, name in (("cv2", "OpenCV"), ("PIL", "Pillow")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise AtelierError("no image library: run Atelier inside Blender (which bundles OpenImageIO), "
                       "or install opencv-python-headless or Pillow into this Python")


def read_image(path, channels=None):
    """Read ``path``; ``channels`` = 1, 3 or 4 converts (grey <-> RGB, alpha dropped or added as 1)."""
    path = Path(path)
    if not os.path.lexists(path):
        raise AtelierError(f"{shown(path)}: no such image file")
    check_regular(path, "image file")
    codec = codec_name()
    image = {"OpenImageIO": _read_oiio, "OpenCV": _read_cv2, "Pillow": _read_pil}[codec](path, channels)
    if image.ndim == 2:
        image = image[:, :, None]
    return convert_channels(np.ascontiguousarray(image, dtype=np.float32), channels)


def bits_per_channel(path):
    """8, 16 or 32 (half and float files): the depth ``path`` stores, from its header where the codec can."""
    path = Path(path)
    check_regular(path, "image file")
    codec = codec_name()
    if codec == "OpenImageIO":
        oiio = _import_openimageio()
        with library_name(path) as name:
            source = _open_oiio(oiio, path, name)
            pixel_type = str(source.spec().format)
            source.close()
        return {"uint8": 8, "int8": 8, "uint16": 16, "int16": 16}.get(pixel_type, 32)
    if codec == "OpenCV":
        cv2 = _import_cv2()
        data = _encoded_bytes(path)
        _check_size(path, *_peek_size(path, data))
        data = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        dtype = None if data is None else data.dtype
    else:
        from PIL import Image
        with _open_pil(path) as picture:
            dtype = np.uint16 if picture.mode.startswith("I") else np.float32 if picture.mode == "F" else np.uint8
    return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(np.dtype(dtype) if dtype else None, 32)


def _not_readable(path, detail=""):
    detail = " ".join(str(detail).split())[:300]
    return AtelierError(f"{shown(path)}: not an image this program can read{f' ({detail})' if detail else ''}; "
                        f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")


def _check_size(path, width, height, file_bytes=None, per_byte=None):
    """Refuse an image before decoding it: no pixels, more than MAX_PIXELS, or more than its file can hold."""
    if width is None:
        return
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise AtelierError(f"{shown(path)}: image is {width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} "
                           "megapixels can be read")
    if per_byte and file_bytes is not None and width * height > max(file_bytes, 1) * per_byte:
        raise AtelierError(f"{shown(path)}: declares {width}x{height} pixels in a {file_bytes:,}-byte file; "
                           "it is damaged or truncated")


def _open_oiio(oiio, path, name, config=None):
    try:
        source = oiio.ImageInput.open(name, config) if config is not None else oiio.ImageInput.open(name)
    except (UnicodeError, RuntimeError, ValueError) as error:
        raise _not_readable(path, str(error)) from None
    if source is None:
        raise _not_readable(path, oiio.geterror())
    return source


def _read_oiio(path, wanted=None):
    oiio = _import_openimageio()
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    file_bytes = check_regular(path, "image file")
    with library_name(path) as name:
        source = _open_oiio(oiio, path, name, config)
        try:
            spec = source.spec()
            if spec.depth > 1 or spec.deep:
                raise _not_readable(path, "volume and deep images are not supported")
            if not 1 <= spec.nchannels <= 1024:
                raise _not_readable(path, f"{spec.nchannels} channels")
            _check_size(path, spec.width, spec.height, file_bytes,
                        _MAX_PIXELS_PER_BYTE.get(source.format_name()))
            channels = min(spec.nchannels, 4)
            if wanted == 3 and channels == 4 or wanted == 1 and channels == 2:
                channels -= 1  # the alpha would be dropped anyway: never decoded into memory
            try:
                data = source.read_image(0, 0, 0, channels, "float")  # integers scaled to [0, 1]
            except (RuntimeError, ValueError) as error:
                raise _not_readable(path, str(error)) from None
            problem = oiio.geterror() if data is None else ""
        finally:
            source.close()
    if data is None or not hasattr(data, "shape") or data.size != spec.width * spec.height * channels:
        raise _not_readable(path, problem or "truncated or damaged")
    return data.reshape(spec.height, spec.width, channels)


def _import_cv2():
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # both must precede the first cv2 import
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
    import cv2
    return cv2


def _encoded_bytes(path):
    return np.frombuffer(read_file(path, MAX_FILE_BYTES, "image file"), np.uint8)


def _peek_size(path, data):
    """(width, height) from a PNG, JPEG or BMP header without decoding, else (None, None): OpenCV
    allocates before it checks, so the size is checked here first (its own limit covers the rest)."""
    raw = data[:1 << 16].tobytes()
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        _check_size(path, width, height, len(data), _MAX_PIXELS_PER_BYTE["png"])
        return width, height
    if raw[:2] == b"BM" and len(raw) >= 26:
        width, height = struct.unpack("<ii", raw[18:26])
        return abs(width), abs(height)
    if raw[:2] == b"\xff\xd8":
        at = 2
        while at + 9 <= len(raw) and raw[at] == 0xFF:
            marker, length = raw[at + 1], struct.unpack(">H", raw[at + 2:at + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", raw[at + 5:at + 9])
                _check_size(path, width, height, len(data), _MAX_PIXELS_PER_BYTE["jpeg"])
                return width, height
            at += 2 + length
    return None, None


def _read_cv2(path, wanted=None):
    cv2 = _import_cv2()
    data = _encoded_bytes(path)
    _check_size(path, *_peek_size(path, data))
    try:
        data = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as error:
        raise _not_readable(path, " ".join(str(error).split())[-200:]) from None
    if data is None:
        raise _not_readable(path)
    _check_size(path, data.shape[1], data.shape[0])
    if data.ndim == 3 and data.shape[2] > 4:
        data = np.ascontiguousarray(data[:, :, :4])
    if data.ndim == 3 and data.shape[2] in (3, 4):  # OpenCV's BGR(A) to RGB(A), in place, before floats
        code = cv2.COLOR_BGR2RGB if data.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        data = cv2.cvtColor(data, code, dst=data)
    if wanted == 3 and data.ndim == 3 and data.shape[2] == 4:
        data = data[:, :, :3]  # the alpha would be dropped anyway: never converted to floats
    return _to_unit_float(path, data)


def _pil_errors():
    from PIL import Image
    return (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError, KeyError,
            zlib.error, Image.DecompressionBombError)


class _open_pil:
    """``Image.open`` on an already checked file object, with Pillow's many exceptions mapped."""

    def __init__(self, path):
        from PIL import Image
        # Pillow reads chunks with read(length from the file): from a file that allocates the length
        # first (2 GiB for a damaged PNG), from memory it cannot
        self.path, self.handle = path, io.BytesIO(read_file(path, MAX_FILE_BYTES, "image file"))
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            self.picture = Image.open(self.handle)
        except _pil_errors() as error:
            self.handle.close()
            raise _not_readable(path, f"{type(error).__name__}: {error}") from None

    def __enter__(self):
        return self.picture

    def __exit__(self, kind, error, trace):
        self.picture.close()
        self.handle.close()
        if kind is not None and issubclass(kind, _pil_errors()) and not issubclass(kind, MemoryError):
            raise _not_readable(self.path, f"{kind.__name__}: {error}") from None


def _read_pil(path, wanted=None):
    with _open_pil(path) as picture:
        _check_size(path, *picture.size, check_regular(path, "image file"),
                    _MAX_PIXELS_PER_BYTE.get((picture.format or "").lower()))
        if picture.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        data = np.asarray(picture)
    if data.dtype == np.int32:
        data = np.clip(data, 0, 65535).astype(np.uint16)
    return _to_unit_float(path, data)


def _to_unit_float(path, data):
    if data.dtype == np.uint8:  # one float array allocated, not two
        return np.divide(data, 255.0, dtype=np.float32)
    if data.dtype == np.uint16:
        return np.divide(data, 65535.0, dtype=np.float32)
    if data.dtype in (np.float16, np.float32, np.float64):
        return data.astype(np.float32)
    raise AtelierError(f"{shown(path)}: unsupported pixel type {data.dtype}")


def convert_channels(image, channels):
    """Return ``image`` with ``channels`` channels (None keeps them)."""
    have = image.shape[2]
    if channels is None or channels == have:
        return image
    if channels == 1:
        rgb = image[:, :, :3] if have >= 3 else image[:, :, :1]
        return (rgb.mean(axis=2, keepdims=True) if rgb.shape[2] == 3 else rgb).astype(np.float32)
    colour = np.repeat(image[:, :, :1], 3, axis=2) if have in (1, 2) else image[:, :, :3]
    if channels == 3:
        return np.ascontiguousarray(colour)
    alpha = image[:, :, 3:4] if have == 4 else (image[:, :, 1:2] if have == 2 else np.ones_like(colour[:, :, :1]))
    return np.ascontiguousarray(np.concatenate([colour, alpha], axis=2))


def write_image(path, image, bits=8):
    """Write ``image`` (H x W [x C], float in [0, 1]) atomically; ``.exr`` keeps float values."""
    path = Path(path)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{path}: cannot write an image of shape {image.shape}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise AtelierError(f"{shown(path)}: cannot write '{shown(path.suffix)}' images; "
                           f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    if suffix != ".exr":
        image = np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0)
    codec = codec_name()
    with atomic_path(path) as tmp:
        {"OpenImageIO": _write_oiio, "OpenCV": _write_cv2, "Pillow": _write_pil}[codec](path, tmp, image, bits)
    return path


def _write_oiio(path, tmp, image, bits):
    oiio = _import_openimageio()
    height, width, channels = image.shape
    pixel_type = "float" if path.suffix.lower() == ".exr" else ("uint16" if bits == 16 else "uint8")
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    spec.attribute("oiio:UnassociatedAlpha", 1)
    with library_name(tmp, write=True) as name:
        target = oiio.ImageOutput.create(name)
        if target is None or not target.open(name, spec) or not target.write_image(np.ascontiguousarray(image)):
            raise AtelierError(f"{shown(path)}: could not write image "
                               f"({oiio.geterror().strip() or 'unsupported format'})")
        target.close()


def _write_cv2(path, tmp, image, bits):
    cv2 = _import_cv2()
    if image.shape[2] >= 3:
        image = image[:, :, [2, 1, 0, 3][:image.shape[2]]]
    if path.suffix.lower() == ".exr":
        data = np.ascontiguousarray(image)
    else:
        scale, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
        data = np.round(image * scale).astype(dtype)
    ok, encoded = cv2.imencode(path.suffix.lower(), data)
    if not ok:
        raise AtelierError(f"{shown(path)}: could not write image (unsupported format '{shown(path.suffix)}')")
    tmp.write_bytes(encoded.tobytes())


def _write_pil(path, tmp, image, bits):
    from PIL import Image
    if path.suffix.lower() == ".exr":
        raise AtelierError(f"{shown(path)}: writing EXR needs OpenImageIO (Blender's Python) or OpenCV")
    data = np.round(image * 255.0).astype(np.uint8)
    Image.fromarray(data[:, :, 0] if data.shape[2] == 1 else data).save(tmp, format=Image.registered_extensions()
                                                                         .get(path.suffix.lower()))
