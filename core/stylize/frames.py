"""Load and check a frame sequence, its painted keyframes, masks and Blender motion vectors.

Every check runs before any training starts, and every error names the file and the problem.
"""

import re
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..imageio import bits_per_channel, read_image
from ..validate import memory_budget, shown
from .exr import read_exr_channels

FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".tga"}


def frame_files(directory):
    """The sequence's files in order (natural sort, so ``f2`` comes before ``f10``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AtelierError(f"{shown(directory)}: no such frame folder")
    try:
        files = [p for p in directory.iterdir() if p.suffix.lower() in FRAME_SUFFIXES | {".exr"}]
    except OSError as error:
        raise AtelierError(f"{shown(directory)}: cannot list the frame folder ({error.strerror or error})") from None
    if not files:
        raise AtelierError(f"{shown(directory)}: no frames (expected {', '.join(sorted(FRAME_SUFFIXES))} files)")
    files.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    numbers = [int(m.group(1)) for m in (re.search(r"(\d+)\D*$", p.name) for p in files) if m]
    if len(numbers) == len(files) and len(set(numbers)) == len(numbers):
        gaps, count = _gaps(numbers)
        if count:
            raise AtelierError(f"{shown(directory)}: {count:,} missing frame(s) {', '.join(map(str, gaps))}"
                               f"{' ...' if count > len(gaps) else ''} between {shown(files[0].name)} "
                               f"and {shown(files[-1].name)}")
    return files


def _gaps(numbers, shown_at_most=8):
    """(the first missing numbers, how many are missing) between the smallest and largest of
    ``numbers``: one pass over the sorted numbers, whatever the size of the gaps."""
    ordered, first, count = sorted(numbers), [], 0
    for low, high in zip(ordered, ordered[1:]):
        if high - low > 1:
            count += high - low - 1
            first.extend(range(low + 1, min(high, low + 1 + shown_at_most - len(first))))
    return first[:shown_at_most], count


def _check_memory(what, count, shape, arrays=1):
    """Refuse, before allocating, a sequence whose float32 arrays would not fit in memory."""
    needed = 4 * count * arrays * int(np.prod(shape, dtype=object))
    budget = memory_budget()
    if needed > budget:
        raise AtelierError(f"{what}: {count} frames of {shape[1]}x{shape[0]} need {needed / 2 ** 30:.1f} GiB "
                           f"in memory, more than the {budget / 2 ** 30:.1f} GiB this process may use; "
                           "use fewer or smaller frames")


def read_frame(path, size=None):
    """Read one 8-bit colour frame as float32 H x W x 3; alpha is dropped."""
    path = Path(path)
    if path.suffix.lower() == ".exr":
        raise AtelierError(f"{shown(path)}: EXR frames are not supported as colour frames; render PNG frames "
                           "(motion vectors in EXR go to --motion)")
    image = read_image(path)
    if bits_per_channel(path) != 8:
        raise AtelierError(f"{shown(path)}: 16-bit frames are not supported; save the sequence as 8-bit PNG")
    if size is not None and image.shape[:2] != size:
        raise AtelierError(f"{shown(path)}: frame is {image.shape[1]}x{image.shape[0]}, "
                           f"the sequence is {size[1]}x{size[0]}; all frames must have the same size")
    return np.ascontiguousarray(image[:, :, :3]) if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)


def iter_frames(directory):
    """``(path, frame)`` for each frame of ``directory`` in order, one in memory at a time: for work
    that streams a sequence too long to hold (sizes and gaps are checked as in :func:`read_frames`)."""
    files = frame_files(directory)
    size = None
    for path in files:
        frame = read_frame(path, size)
        size = frame.shape[:2]
        yield path, frame


def read_frames(directory):
    """All frames of ``directory`` as a float32 array N x H x W x 3, after checking sizes, gaps and
    that the whole sequence fits in memory (else :func:`iter_frames` streams it)."""
    files = frame_files(directory)
    first = read_frame(files[0])
    _check_memory(shown(directory), len(files), first.shape)
    frames = np.empty((len(files), *first.shape), np.float32)
    frames[0] = first
    for i, path in enumerate(files[1:], 1):
        frames[i] = read_frame(path, first.shape[:2])
    return frames, files


def parse_indexed(items, option, count):
    """Parse ``INDEX=PATH`` words of ``option``; the index is the 0-based position in the sequence."""
    parsed = {}
    for item in items or ():
        index, sep, path = item.partition("=")
        if not sep or not index.strip().lstrip("-").isdigit():
            raise AtelierError(f"{option} {item}: expected INDEX=FILE, e.g. {option} 0=painted.png")
        index = int(index)
        if not 0 <= index < count:
            raise AtelierError(f"{option} {item}: frame index {index} is outside the sequence (0..{count - 1})")
        if index in parsed:
            raise AtelierError(f"{option} {item}: frame {index} is given twice")
        parsed[index] = Path(path)
    return parsed


def read_keyframe(path, size):
    """A painted keyframe: 8-bit colour of the sequence's size, without alpha (alpha would be ignored silently)."""
    image = read_image(path)
    if image.shape[2] in (2, 4):
        raise AtelierError(f"{shown(path)}: painted keyframe has an alpha channel; flatten it (paint over the frame) "
                           "and use --mask to limit the painted area")
    if Path(path).suffix.lower() == ".exr" or bits_per_channel(path) != 8:
        raise AtelierError(f"{shown(path)}: painted keyframe must be an 8-bit image (PNG or JPEG)")
    if image.shape[:2] != size:
        raise AtelierError(f"{shown(path)}: keyframe is {image.shape[1]}x{image.shape[0]}, "
                           f"the frames are {size[1]}x{size[0]}")
    return image[:, :, :3] if image.shape[2] == 3 else np.repeat(image, 3, axis=2)


def read_mask(path, size):
    """A mask (white = painted, trained on) of the sequence's size; an empty mask is an error."""
    mask = read_image(path, channels=4)
    mask = np.minimum(mask[:, :, :3].mean(axis=2), mask[:, :, 3])
    if mask.shape != size:
        raise AtelierError(f"{shown(path)}: mask is {mask.shape[1]}x{mask.shape[0]}, the frames are {size[1]}x{size[0]}")
    if (mask > 0.5).sum() < 64:
        raise AtelierError(f"{shown(path)}: mask is empty (no white pixels to train on)")
    return (mask > 0.5).astype(np.float32)


def read_motion(directory, size):
    """Blender Vector passes -> (flow to the previous frame, flow to the next frame), N x H x W x 2 each.

    A flow ``f`` at pixel ``x`` of frame t says where that surface point is in the other frame:
    ``x + f(x)``, in pixels, x right and y DOWN.  Blender's Vector pass holds, in pixels with y UP,
    (X, Y) = position in the previous frame − position here and (Z, W) = position here − position in
    the next frame (both are minus the motion over one frame).  Hence ``previous = (X, −Y)`` and
    ``following = (−Z, W)``; checked on bench/stylize.py's render: warping frame t−1 by ``previous``
    (t+1 by ``following``) reproduces frame t, and the other signs make it 5-15x worse.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AtelierError(f"{shown(directory)}: no such motion folder")
    files = [p for p in frame_files(directory) if p.suffix.lower() == ".exr"]
    if not files:
        raise AtelierError(f"{shown(directory)}: no EXR files with motion vectors")
    _check_memory(shown(directory), len(files), (*size, 2), arrays=2)
    previous = np.empty((len(files), *size, 2), np.float32)
    following = np.empty_like(previous)
    for t, path in enumerate(files):
        channels = read_exr_channels(path)
        names = {name.rsplit(".", 1)[-1]: name for name in channels if name.rsplit(".", 2)[-2:-1] == ["Vector"]}
        if set(names) != set("XYZW"):
            raise AtelierError(f"{shown(path)}: no Vector pass (enable View Layer ▸ Passes ▸ Vector and save "
                               "as multilayer EXR)")
        if channels[names["X"]].shape != size:
            raise AtelierError(f"{shown(path)}: motion is {channels[names['X']].shape[1]}x{channels[names['X']].shape[0]}, "
                               f"the frames are {size[1]}x{size[0]}")
        previous[t, ..., 0], previous[t, ..., 1] = channels[names["X"]], -channels[names["Y"]]
        following[t, ..., 0], following[t, ..., 1] = -channels[names["Z"]], channels[names["W"]]
    return previous, following
