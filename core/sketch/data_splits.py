"""Train / valid / test splits with no training data in the held-out parts.

The builtin stroke data repeat themselves: the Hershey fonts share glyphs between faces (futural and
rowmans draw the same "A"; 1,208 of the 3,067 glyphs are distinct), and KanjiVG keeps variant files
of a character beside its base file (``04e00.svg``, ``04e00-Kaisho.svg``).  A split by item then puts
copies of training items into the test set.  Here every item has a *key*: the hash of its
normalised stroke data (:func:`content_key`), or its base character (:func:`kanji_base`); items
sharing a key are one item, and a key belongs to one split only (:func:`disjoint`).

Numpy and the standard library only (Blender's own Python imports ``core.sketch``).
"""

import hashlib
from pathlib import Path

import numpy as np

from ..drawing.pen import stroke3_to_polylines

GRID = 256          # a glyph's longer side is quantised to this many steps before hashing
SPLITS = ("train", "valid", "test")


def content_key(polylines, grid=GRID):
    """Hash of a drawing's normalised stroke data: its polylines (y down) moved to the origin, scaled so the
    longer side of their box is ``grid`` and rounded to integers; the stroke boundaries count.  Equal for
    the same drawing at any position and scale (a glyph in two fonts, a character in two files)."""
    lines = [np.asarray(p, np.float64).reshape(-1, 2) for p in polylines if len(p)]
    if not lines:
        return hashlib.sha1(b"empty").hexdigest()
    points = np.concatenate(lines)
    low, extent = points.min(0), float(np.ptp(points, 0).max())
    scale = grid / extent if extent > 1e-12 else 1.0
    digest = hashlib.sha1()
    for line in lines:
        digest.update(np.rint((line - low) * scale).astype(np.int32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def stroke3_key(stroke3, grid=GRID):
    """:func:`content_key` of a stroke-3 sketch (offsets, pen lifted after the row)."""
    return content_key(stroke3_to_polylines(np.asarray(stroke3, np.float64)), grid)


def kanji_base(path):
    """The character a KanjiVG file draws: its name before any ``-Variant`` (``04e00-Kaisho.svg`` -> ``04e00``)."""
    return Path(path).stem.split("-")[0].lower()


def disjoint(keys, assignment, order=SPLITS, unique=True):
    """Indices per split with no key in two splits: ``assignment[i]`` is the split item i would go to;
    splits earlier in ``order`` claim their keys first (training keeps every item it had), a later
    split drops any item whose key an earlier one holds.  ``unique``: each split also keeps only the
    first item of each key (copies); else all of them (a character's variant drawings)."""
    claimed, result = set(), {}
    for split in order:
        seen, chosen = set(), []
        for i, (key, where) in enumerate(zip(keys, assignment)):
            if where == split and key not in claimed and not (unique and key in seen):
                seen.add(key)
                chosen.append(i)
        claimed |= seen
        result[split] = chosen
    return result


def overlap(a, b, key=content_key):
    """Items of ``b`` whose key is that of an item of ``a`` (indices into ``b``): what a test checks is empty."""
    keys = {key(item) for item in a}
    return [i for i, item in enumerate(b) if key(item) in keys]
