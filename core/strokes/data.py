"""Training data: random strokes for the generator, ink images for the agents.

* :func:`random_strokes` - smooth, varied, often self-crossing strokes from a small
  gravitational simulation (a particle falling around two or three moving attractors, as the
  paper's three-body trajectories), with smoothly varying pressure and a random brush.
* :func:`ink_images` - target images (ink = 1 on paper = 0, ``SIZE`` square) from
  scikit-learn's digits (8x8, upsampled), KanjiVG characters, Hershey-font characters and
  synthetic drawings of loops, arcs, dots and free strokes (:func:`_shape_drawings`: what
  pictures have and characters lack), the last three drawn by the real painter at one fixed
  pen width.  Every fifth item is held out (``split="test"``); agents train on the rest; an item equal
  to another (the Hershey fonts share glyphs) is one item, in one split (:func:`split_indices`).
"""

import functools
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..drawing.glyphs import hershey_glyphs, kanjivg_files
from ..drawing.svg import load_svg
from ..errors import AtelierError
from ..paths import cache_dir
from .constants import N_POINTS, SIZE
from .runtime import to_square_area

PEN_RADIUS = 0.025      # fixed pen for characters: 1.6 px at 64 px
MAX_KANJI_STROKES = 6   # characters an 8-stroke agent can plausibly redraw
DATASETS = ("digits", "kanji", "hershey", "shapes")
CHARACTER_SETS = ("kanji", "hershey", "shapes")     # drawn from known strokes (:func:`character_strokes`)
SHAPES = 2000           # synthetic drawings in the "shapes" set
HERSHEY_FONTS = ("futural", "futuram", "rowmans", "timesr", "scripts", "greek")
HERSHEY_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_strokes(rng, count, steps=96):
    """``count`` strokes: points (count, n, 3) in [-1, 1] x [0, 1] and brush (count,) from a gravity simulation.

    x'' = sum_k m_k (a_k - x) / (|a_k - x|^2 + s^2)^(3/2), integrated with symplectic Euler;
    n points are taken at equal times, then the path is scaled into a random box.
    """
    bodies = rng.integers(2, 4)
    attractors = rng.uniform(-1, 1, (count, bodies, 2))
    drift = rng.normal(0, 0.3, (count, bodies, 2))
    mass = rng.uniform(0.2, 1.0, (count, bodies, 1))
    x = rng.uniform(-1, 1, (count, 2))
    v = rng.normal(0, 0.8, (count, 2))
    dt = rng.uniform(0.3, 1.0, (count, 1)) / steps * 4
    path = []
    for _ in range(steps):
        delta = attractors - x[:, None]
        acc = (mass * delta / ((delta ** 2).sum(-1, keepdims=True) + 0.05) ** 1.5).sum(1)
        v = v + dt * acc
        x = x + dt * v
        attractors = attractors + dt[:, None] * drift
        path.append(x)
    path = np.stack(path, 1)[:, np.linspace(0, steps - 1, N_POINTS).astype(int)]
    lo, hi = path.min(1, keepdims=True), path.max(1, keepdims=True)
    extent = rng.uniform(0.3, 0.95, (count, 1, 1))
    centre = rng.uniform(-0.9, 0.9, (count, 1, 2)) * (1 - extent)
    path = (path - (lo + hi) / 2) / ((hi - lo).max(-1, keepdims=True) / 2 + 1e-6) * extent + centre
    phase, freq = rng.uniform(0, 2 * np.pi, (count, 1)), rng.uniform(0.5, 3, (count, 1))
    base = rng.uniform(0.3, 1, (count, 1))
    pressure = np.clip(base + 0.3 * np.sin(freq * np.linspace(0, np.pi, N_POINTS) + phase), 0.1, 1)
    points = np.concatenate([path, pressure[..., None]], -1).astype(np.float32)
    return points, rng.uniform(0, 1, count).astype(np.float32)


def _fit_box(polylines, margin=0.8):
    """Scale and centre polylines (y down) into [-margin, margin], keeping the aspect ratio."""
    allpts = np.concatenate(polylines)
    lo, hi = allpts.min(0), allpts.max(0)
    scale = 2 * margin / max(float((hi - lo).max()), 1e-6)
    return [(p - (lo + hi) / 2) * scale for p in polylines]


def _digits():
    from sklearn.datasets import load_digits
    import cv2
    images = load_digits().images / 16.0
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    return np.stack([np.clip(cv2.resize(d, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC), 0, 1) for d in padded])


def _kanji_files():
    """The base file of each CJK unified ideograph in KanjiVG (no variants, no kana)."""
    return [file for file in kanjivg_files()
            if re.fullmatch(r"0[4-9][0-9a-fA-F]{3}", file.stem) and 0x4E00 <= int(file.stem, 16) <= 0x9FFF]


def _kanji_strokes(fewest=1, most=MAX_KANJI_STROKES):
    characters = []
    for svg in _kanji_files():
        strokes = load_svg(svg, samples=8)
        if fewest <= len(strokes) <= most:
            characters.append(_fit_box(strokes))
    return characters


def _hershey_strokes():
    return [_fit_box(glyph) for glyph in hershey_glyphs(HERSHEY_FONTS, HERSHEY_CHARACTERS)]


def _shape_drawings(count=SHAPES, seed=7):
    """``count`` drawings of 1 to 5 strokes, each a closed loop (circle or ellipse), an arc, a dot
    (a stroke a few pixels long) or a free stroke of :func:`random_strokes`, anywhere in the square."""
    rng = np.random.default_rng(seed)
    drawings = []
    for _ in range(count):
        strokes = []
        for kind in rng.choice(["loop", "arc", "dot", "free"], rng.integers(1, 6), p=[0.3, 0.25, 0.15, 0.3]):
            centre = rng.uniform(-0.6, 0.6, 2)
            if kind == "free":
                strokes.append(random_strokes(rng, 1)[0][0, :, :2].astype(float))
                continue
            radius = rng.uniform(0.02, 0.06, 2) if kind == "dot" else rng.uniform(0.15, 0.8, 2) * [1, rng.uniform(0.5, 1)]
            start = rng.uniform(0, 2 * np.pi)
            sweep = 2 * np.pi if kind == "loop" else rng.uniform(0.5, 1.5) * np.pi
            turn = np.linspace(start, start + sweep, 40)
            if kind == "dot":
                turn = turn[:8]
            strokes.append(np.clip(centre + radius * np.stack([np.cos(turn), np.sin(turn)], -1), -0.95, 0.95))
        drawings.append(strokes)
    return drawings


def character_strokes(name, split="train"):
    """The KanjiVG or Hershey characters (or the synthetic "shapes" drawings) as lists of polylines
    in [-1, 1] (y down), in drawing order:
    the strokes :func:`ink_images` draws, split the same way (:func:`split_indices`).  ``split =
    "extra"``: characters outside the set, never tested on, that stroke-level training can also
    use (kanji of 7 to 12 strokes: a recurrent agent learns each stroke from them all the same)."""
    if split == "extra":
        return _kanji_strokes(MAX_KANJI_STROKES + 1, 2 * MAX_KANJI_STROKES) if name == "kanji" else []
    characters = _characters(name)
    return [characters[i] for i in split_indices(name, split)]


def _characters(name):
    return {"kanji": _kanji_strokes, "hershey": _hershey_strokes, "shapes": _shape_drawings}[name]()


def _split(count, split):
    """Indices of the 'train' or 'test' items (every 5th is held out) of ``count``, or of all of them."""
    indices = np.arange(count)
    return indices[(indices % 5 == 0) == (split == "test")] if split in ("train", "test") else indices


@functools.lru_cache(maxsize=None)  # a pure function of the shipped data: hashing it once a process is enough
def item_keys(name):
    """One key per item of builtin set ``name`` (in :func:`character_strokes` "all" order), as a tuple: the
    hash of its normalised strokes (``core.sketch.data_splits.content_key``), of its 8-bit pixels for
    digits; the synthetic shapes (random, never equal) are keyed by their place."""
    from ..sketch.data_splits import content_key
    if name == "digits":
        import hashlib
        return tuple(hashlib.sha1(np.rint(d * 255).astype(np.uint8).tobytes()).hexdigest() for d in _digits())
    if name == "shapes":
        return tuple(str(i) for i in range(SHAPES))
    return tuple(content_key(c) for c in _characters(name))


def split_indices(name, split):
    """Indices (into the "all" items) of split ``split`` of builtin set ``name``: every 5th item is held out
    ('test'), the rest trained on ('train'), but an item equal to another is one item: a key
    (:func:`item_keys`) is in one split only, training keeps it, and each split holds it once (the
    Hershey fonts share glyphs: 372 glyphs, 286 distinct).  "all": every item."""
    from ..sketch.data_splits import disjoint
    keys = item_keys(name)
    if split not in ("train", "test"):
        return np.arange(len(keys))
    where = ["test" if i % 5 == 0 else "train" for i in range(len(keys))]
    return np.asarray(disjoint(keys, where, order=("train", "test"))[split], int)


def resample(polyline, count=N_POINTS):
    """``count`` points equally spaced along a polyline (m, 2) by arc length."""
    polyline = np.asarray(polyline, np.float64)
    length = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(polyline, axis=0).T))])
    if length[-1] < 1e-9:
        return np.repeat(polyline[:1], count, 0)
    at = np.linspace(0, length[-1], count)
    return np.stack([np.interp(at, length, polyline[:, k]) for k in (0, 1)], -1)


def ink_images(name, split="train"):
    """Ink images (N, SIZE, SIZE) float32 of dataset ``name`` (or a folder of image files); every 5th is 'test'."""
    if name in DATASETS:
        from .painter import render_polylines   # torch: training data only
        cache = cache_dir() / f"strokes_{name}_{SIZE}.npy"
        if cache.is_file():
            images = np.load(cache, allow_pickle=False)
        else:
            images = np.asarray(_digits() if name == "digits" else
                                [render_polylines(c, PEN_RADIUS, SIZE) for c in character_strokes(name, "all")],
                                np.float32)
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp:
                np.save(tmp, images)
    else:
        images = np.asarray(folder_images(name), np.float32)
    return images[split_indices(name, split) if name in DATASETS else _split(len(images), split)]


def folder_images(folder):
    """Every image file in ``folder`` as an ink map (see :func:`prepare`)."""
    from ..imageio import IMAGE_SUFFIXES, read_image
    folder = Path(folder)
    if not folder.is_dir():
        raise AtelierError(f"{folder}: not a dataset name ({', '.join(DATASETS)}) nor a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AtelierError(f"{folder}: no image files in this folder")
    return [prepare(read_image(p), p)[0] for p in files]


def prepare(image, name="image", invert=None, size=SIZE):
    """An RGB(A) image (H, W, C) -> (ink map (size, size), square side, was_inverted).

    Ink is how far a pixel is from the paper in its furthest channel, so coloured lines count as
    much as black ones (1 - min(R, G, B); max(R, G, B) for light on dark).  Transparent pixels
    count as paper; the picture is padded to a square (paper) and resized; light-on-dark pictures
    (mostly dark, judged from the border) are inverted unless ``invert`` says otherwise.  Empty and
    uniform images are errors.
    """
    if image.ndim != 3 or min(image.shape[:2]) < 4:
        raise AtelierError(f"{name}: image is too small ({image.shape[1]}x{image.shape[0]} pixels)")
    colour = image[:, :, :3] if image.shape[2] >= 3 else image[:, :, :1]
    grey = colour.mean(-1)
    alpha = image[:, :, 3] if image.shape[2] == 4 else (image[:, :, 1] if image.shape[2] == 2 else None)
    if alpha is not None and alpha.max() < 1e-3:
        raise AtelierError(f"{name}: image is fully transparent; nothing to draw")
    if invert is None:
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        invert = bool(np.median(border) < 0.5)
    ink = colour.max(-1) if invert else 1 - colour.min(-1)
    if alpha is not None:
        ink = ink * alpha
    if float(ink.max() - ink.min()) < 0.05:
        raise AtelierError(f"{name}: image is uniform (no ink to draw)")
    ink = (ink - ink.min()) / (ink.max() - ink.min())
    return to_square(ink, size), max(ink.shape), invert


def to_square(image, size=SIZE):
    """Pad (H, W[, C]) centred to a square with zeros and area-resize it to ``size``: the agents' frame
    (numpy alone, as :func:`prepare`: both run in Blender's own Python)."""
    return to_square_area(image, size)
