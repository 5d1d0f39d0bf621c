"""Image files <-> float32 numpy arrays, with orientation handled here once.

Arrays are ``H x W x C`` float32 in [0, 1] (EXR: linear floats, unclamped), row 0 at the
TOP of the picture, channels RGB or RGBA (greyscale files come back with C = 1 unless
``channels`` asks otherwise).  Blender images store row 0 at the bottom: ``addon/images.py``
flips them, nowhere else does.
"""

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import AtelierError

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must precede the first cv2 import
import cv2  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr", ".webp", ".tga"}
MAX_PIXELS = 16384 * 16384


def read_image(path, channels=None):
    """Read ``path``; ``channels`` = 1, 3 or 4 converts (grey <-> RGB, alpha dropped or added as 1)."""
    path = Path(path)
    if not path.is_file():
        raise AtelierError(f"{path}: no such image file")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if data is None:
        raise AtelierError(f"{path}: not an image this program can read "
                           f"(supported: {', '.join(sorted(IMAGE_SUFFIXES))})")
    if data.dtype == np.uint8:
        image = data.astype(np.float32) / 255.0
    elif data.dtype == np.uint16:
        image = data.astype(np.float32) / 65535.0
    elif data.dtype in (np.float16, np.float32, np.float64):
        image = data.astype(np.float32)
    else:
        raise AtelierError(f"{path}: unsupported pixel type {data.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    elif image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV's BGR to RGB
    elif image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    return convert_channels(np.ascontiguousarray(image), channels)


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
    if image.shape[2] == 3:
        image = image[:, :, ::-1]
    elif image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    if path.suffix.lower() == ".exr":
        data = np.ascontiguousarray(image)
    else:
        scale, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
        data = np.round(np.clip(image, 0.0, 1.0) * scale).astype(dtype)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), data):
            raise AtelierError(f"{path}: could not write image (unsupported format '{path.suffix}')")
    return path
