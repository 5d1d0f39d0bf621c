"""Blender images <-> numpy arrays (``core.imageio`` conventions: float32, row 0 at the top).

Blender stores row 0 at the bottom; this is the one place that flips.
"""

from pathlib import Path

import bpy
import numpy as np

from ..core.errors import AtelierError


def image_to_array(image):
    """Pixels of ``image`` as ``H x W x 4`` float32, top row first."""
    width, height = image.size
    if width == 0 or height == 0:
        raise AtelierError(f"image '{image.name}': has no pixels (missing file {image.filepath!r}?)")
    pixels = np.empty(width * height * image.channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    array = pixels.reshape(height, width, image.channels)[::-1]
    if image.channels != 4:
        from ..core.imageio import convert_channels
        array = convert_channels(array, 4)
    return np.ascontiguousarray(array)


def array_to_image(name, array, float_buffer=False, pack=True):
    """A NEW image datablock holding ``array`` (H x W x C, top row first); never replaces one."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if channels != 4:
        rgb = np.repeat(array[:, :, :1], 3, axis=2) if channels == 1 else array[:, :, :3]
        array = np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2)
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    image.pixels.foreach_set(np.ascontiguousarray(array[::-1]).ravel())
    if pack:
        image.pack()
    return image


def image_file_for_worker(image, directory):
    """A file path holding ``image``'s current pixels, for the worker to read.

    An unmodified image backed by a file on disk is used in place; anything else
    (generated, packed, painted over) is written as a PNG/EXR into ``directory``, a folder the
    caller owns and removes (the operator's temporary folder).  The user's image datablock is
    never changed.
    """
    path = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
    if image.source == "FILE" and path and path.is_file() and not image.is_dirty and not image.packed_file:
        return path
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix, file_format = (".exr", "OPEN_EXR") if image.is_float else (".png", "PNG")
    target = directory / (bpy.path.clean_name(image.name) + suffix)
    copy = array_to_image("atelier-export", image_to_array(image), float_buffer=image.is_float, pack=False)
    try:
        copy.filepath_raw = str(target)
        copy.file_format = file_format
        copy.save()
    finally:
        bpy.data.images.remove(copy)
    return target


def load_image_copy(path, name=None, pack=True):
    """Load an image file as a NEW datablock (never reusing one that has the same path)."""
    path = Path(path)
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as error:
        raise AtelierError(f"{path}: cannot load image ({error})") from None
    if name:
        image.name = name
    if pack:
        image.pack()
    return image
