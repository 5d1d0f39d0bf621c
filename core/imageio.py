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
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import AtelierError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr", ".webp", ".tga"}
MAX_PIXELS = 16384 * 16384


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
    """The library that reads and writes images in this Python: "OpenImageIO", "OpenCV" or "Pillow"."""
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
    if not path.is_file():
        raise AtelierError(f"{path}: no such image file")
    codec = codec_name()
    image = {"OpenImageIO": _read_oiio, "OpenCV": _read_cv2, "Pillow": _read_pil}[codec](path)
    if image.ndim == 2:
        image = image[:, :, None]
    return convert_channels(np.ascontiguousarray(image, dtype=np.float32), channels)


def bits_per_channel(path):
    """8, 16 or 32 (half and float files): the depth ``path`` stores, from its header where the codec can."""
    path = Path(path)
    codec = codec_name()
    if codec == "OpenImageIO":
        oiio = _import_openimageio()
        source = oiio.ImageInput.open(str(path))
        if source is None:
            raise _not_readable(path, oiio.geterror().strip())
        pixel_type = str(source.spec().format)
        source.close()
        return {"uint8": 8, "int8": 8, "uint16": 16, "int16": 16}.get(pixel_type, 32)
    if codec == "OpenCV":
        import cv2
        data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        dtype = None if data is None else data.dtype
    else:
        from PIL import Image
        with Image.open(path) as picture:
            dtype = np.uint16 if picture.mode.startswith("I") else np.float32 if picture.mode == "F" else np.uint8
    return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(np.dtype(dtype) if dtype else None, 32)


def _not_readable(path, detail=""):
    return AtelierError(f"{path}: not an image this program can read{f' ({detail})' if detail else ''}; "
                        f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")


def _check_size(path, width, height):
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise AtelierError(f"{path}: image is {width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} "
                           "megapixels can be read")


def _read_oiio(path):
    oiio = _import_openimageio()
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    try:
        source = oiio.ImageInput.open(str(path), config)
    except UnicodeError:
        source = None
    if source is None:
        raise _not_readable(path, oiio.geterror().strip())
    try:
        spec = source.spec()
        _check_size(path, spec.width, spec.height)
        data = source.read_image(0, 0, 0, min(spec.nchannels, 4), "float")  # integers scaled to [0, 1]
    finally:
        source.close()
    if data is None or not hasattr(data, "shape"):
        raise _not_readable(path, oiio.geterror().strip() or "truncated or damaged")
    return data.reshape(spec.height, spec.width, -1)


def _read_cv2(path):
    import os
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must precede the first cv2 import
    import cv2
    data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if data is None:
        raise _not_readable(path)
    _check_size(path, data.shape[1], data.shape[0])
    image = _to_unit_float(path, data)
    if image.ndim == 3 and image.shape[2] >= 3:
        image = image[:, :, [2, 1, 0, 3][:image.shape[2]]]  # OpenCV's BGR(A) to RGB(A)
    return image


def _read_pil(path):
    from PIL import Image
    try:
        with Image.open(path) as picture:
            _check_size(path, *picture.size)
            if picture.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
                picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
            data = np.asarray(picture)
    except OSError as error:
        raise _not_readable(path, str(error)) from None
    return _to_unit_float(path, data.astype(np.uint16) if data.dtype == np.int32 else data)


def _to_unit_float(path, data):
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    if data.dtype == np.uint16:
        return data.astype(np.float32) / 65535.0
    if data.dtype in (np.float16, np.float32, np.float64):
        return data.astype(np.float32)
    raise AtelierError(f"{path}: unsupported pixel type {data.dtype}")


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
        raise AtelierError(f"{path}: cannot write '{path.suffix}' images; use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    if suffix != ".exr":
        image = np.clip(image, 0.0, 1.0)
    codec = codec_name()
    with atomic_path(path) as tmp:
        {"OpenImageIO": _write_oiio, "OpenCV": _write_cv2, "Pillow": _write_pil}[codec](path, tmp, image, bits)
    return path


def _write_oiio(path, tmp, image, bits):
    oiio = _import_openimageio()
    height, width, channels = image.shape
    pixel_type = "float" if path.suffix.lower() == ".exr" else ("uint16" if bits == 16 else "uint8")
    target = oiio.ImageOutput.create(str(tmp))
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    spec.attribute("oiio:UnassociatedAlpha", 1)
    if target is None or not target.open(str(tmp), spec) or not target.write_image(np.ascontiguousarray(image)):
        raise AtelierError(f"{path}: could not write image ({oiio.geterror().strip() or 'unsupported format'})")
    target.close()


def _write_cv2(path, tmp, image, bits):
    import cv2
    if image.shape[2] >= 3:
        image = image[:, :, [2, 1, 0, 3][:image.shape[2]]]
    if path.suffix.lower() == ".exr":
        data = np.ascontiguousarray(image)
    else:
        scale, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
        data = np.round(image * scale).astype(dtype)
    ok, encoded = cv2.imencode(path.suffix.lower(), data)
    if not ok:
        raise AtelierError(f"{path}: could not write image (unsupported format '{path.suffix}')")
    tmp.write_bytes(encoded.tobytes())


def _write_pil(path, tmp, image, bits):
    from PIL import Image
    if path.suffix.lower() == ".exr":
        raise AtelierError(f"{path}: writing EXR needs OpenImageIO (Blender's Python) or OpenCV")
    data = np.round(image * 255.0).astype(np.uint8)
    Image.fromarray(data[:, :, 0] if data.shape[2] == 1 else data).save(tmp, format=Image.registered_extensions()
                                                                         .get(path.suffix.lower()))
