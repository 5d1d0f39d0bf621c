"""Sketch-RNN's training data: data sets in every supported format as stroke-3 splits, cleaning,
normalisation, augmentation, and the mapping between grease-pencil drawings and the model's space.

The formats and their readers are in :mod:`core.drawing` (shared with StrokeNet); this module
prepares what they give the way the reference implementation (Ha & Eck 2017) does.
"""

from pathlib import Path

import numpy as np

from ..drawing.glyphs import hershey_glyphs, kanjivg_files
from ..drawing.npz import load_npz
from ..drawing.pen import polylines_to_stroke3, stroke3_to_polylines
from ..drawing.quickdraw import load_ndjson
from ..drawing.simplify import fit, rdp, simplify_polylines
from ..drawing.svg import load_svg
from ..errors import AtelierError
from .data_splits import kanji_base, stroke3_key

OFFSET_LIMIT = 1000.0  # the reference clamps raw offsets here; larger ones are data errors


def normalizing_scale(sketches):
    """The standard deviation of all offsets (dx and dy together): the reference's scale factor."""
    offsets = np.concatenate([s[:, :2].ravel() for s in sketches]) if sketches else np.zeros(0)
    scale = float(np.std(offsets)) if len(offsets) else 1.0
    return scale if scale > 1e-8 else 1.0


def augment(stroke3, rng, scale_factor=0.15, drop_probability=0.10):
    """The reference's augmentation: random x/y scaling, and merging some points inside a stroke.

    A point is dropped (its offset merged into the next kept point's) with ``drop_probability`` when
    it is at least the third point of a pen-down run, so stroke shapes survive.
    """
    stroke3 = np.array(stroke3, np.float32)
    scale = rng.uniform(1 - scale_factor, 1 + scale_factor, size=2).astype(np.float32)
    stroke3[:, :2] *= scale
    if drop_probability <= 0 or len(stroke3) < 4:
        return stroke3
    pen_down = stroke3[:, 2] < 0.5
    previous_down = np.concatenate([[False], pen_down[:-1]])
    run = np.zeros(len(stroke3), int)  # how many pen-down points precede this one in its stroke
    for i in range(1, len(stroke3)):
        run[i] = run[i - 1] + 1 if pen_down[i] and previous_down[i] else 0
    drop = pen_down & previous_down & (run > 2) & (rng.random(len(stroke3)) < drop_probability)
    drop[-1] = False
    keep = np.flatnonzero(~drop)
    merged = np.add.reduceat(stroke3[:, :2], np.concatenate([[0], keep[:-1] + 1]))  # sum dropped into next kept
    return np.column_stack([merged, stroke3[keep, 2]]).astype(np.float32)


def clean(sketches, max_len):
    """Drop sketches that cannot be learned from; returns ``(kept, counts)``.

    Empty sketches and single points are dropped, as are sketches longer than ``max_len``.
    Offsets are clamped to +-``OFFSET_LIMIT`` (the reference does the same) and non-finite rows
    make a sketch invalid.
    """
    kept, counts = [], {"empty": 0, "single_point": 0, "too_long": 0, "not_finite": 0, "clamped": 0}
    for sketch in sketches:
        sketch = np.asarray(sketch, np.float32)
        if sketch.ndim != 2 or sketch.shape[1] != 3 or len(sketch) == 0:
            counts["empty"] += 1
        elif len(sketch) < 2:
            counts["single_point"] += 1
        elif len(sketch) > max_len:
            counts["too_long"] += 1
        elif not np.all(np.isfinite(sketch)):
            counts["not_finite"] += 1
        else:
            if np.abs(sketch[:, :2]).max() > OFFSET_LIMIT:
                counts["clamped"] += 1
                sketch = sketch.copy()
                sketch[:, :2] = np.clip(sketch[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT)
            sketch[:, 2] = sketch[:, 2] > 0.5
            sketch[-1, 2] = 1
            kept.append(sketch)
    return kept, counts


def grease_pencil_to_stroke3(strokes, epsilon=2.0, size=255.0):
    """Grease-pencil points (a list of ``(K, 3)`` arrays) -> ``(stroke3, placement)``.

    The drawing's plane is spanned by the two axes along which it spreads most (front view: x, z);
    its vertical axis is flipped so ``y`` points down as in the training data.  It is scaled and
    simplified as the training data was (:func:`simplify_polylines`).  ``placement`` maps model
    points back into the drawing's space (:func:`stroke3_to_grease_pencil`).
    """
    lines = [np.asarray(s, np.float64).reshape(-1, 3) for s in strokes if len(s)]
    if not lines:
        raise AtelierError("the drawing has no strokes")
    points = np.concatenate(lines)
    depth_axis, first, second = np.argsort(np.ptp(points, axis=0))
    first, second = sorted((first, second))
    flat = [np.column_stack([line[:, first], -line[:, second]]) for line in lines]
    low, scale = fit(np.concatenate(flat), size)
    simplified = [rdp((line - low) * scale, epsilon) for line in flat]
    model_points = np.concatenate(simplified)
    placement = {"axes": (int(first), int(second), int(depth_axis)), "depth": float(points[:, depth_axis].mean()),
                 "low": low, "scale": scale, "centre": (model_points.min(0) + model_points.max(0)) / 2}
    return polylines_to_stroke3(simplified), placement


def stroke3_to_grease_pencil(stroke3, placement, start=(0.0, 0.0)):
    """Model-space stroke-3 -> ``(K, 3)`` polylines in the space the ``placement`` came from.

    ``start``: where the pen is before the first row, relative to the drawing's centre (the sum of
    a prefix's offsets when continuing it).
    """
    first, second, depth_axis = placement["axes"]
    result = []
    for line in stroke3_to_polylines(stroke3):
        flat = (line + np.asarray(start) + placement["centre"]) / placement["scale"] + placement["low"]
        points = np.full((len(line), 3), placement["depth"])
        points[:, first], points[:, second] = flat[:, 0], -flat[:, 1]
        result.append(points.astype(np.float32))
    return result


def _assignment(count, seed=0, fractions=(0.9, 0.05)):
    """The split ("train", "valid", "test") of each of ``count`` items: a fixed-seed permutation cut 90/5/5."""
    order = np.random.default_rng(seed).permutation(count)
    first, second = int(count * fractions[0]), int(count * sum(fractions))
    where = np.empty(count, object)
    where[order[:first]], where[order[first:second]], where[order[second:]] = "train", "valid", "test"
    return list(where)


def _split(sketches, seed=0, fractions=(0.9, 0.05), keys=None, unique=True):
    """90/5/5 with a fixed seed; with ``keys`` (one per sketch) no key is in two splits, nor twice in one
    when ``unique`` (``data_splits.disjoint``: training keeps its items, the held-out parts lose theirs)."""
    from .data_splits import disjoint
    if keys is None:   # in the permutation's order, as before
        order = np.random.default_rng(seed).permutation(len(sketches))
        first, second = int(len(order) * fractions[0]), int(len(order) * sum(fractions))
        return {"train": [sketches[i] for i in order[:first]],
                "valid": [sketches[i] for i in order[first:second]],
                "test": [sketches[i] for i in order[second:]]}
    where = _assignment(len(sketches), seed, fractions)
    return {split: [sketches[i] for i in chosen] for split, chosen in disjoint(keys, where, unique=unique).items()}


BUILTIN = ("kanji", "hershey")   # split with no test item equal to a training one (data_splits.py)


def _reporting(items, progress, stage):
    """``items``, telling ``progress`` how far it got (so Esc or Ctrl-C stop a long read)."""
    if progress:
        progress.stage(stage, len(items))
    for done, item in enumerate(items):
        if progress and done % 32 == 0:
            progress.update(done)
        yield item


def load_dataset(source, epsilon=2.0, limit=None, progress=None):
    """Any supported source -> ``({"train", "valid", "test"}, info)`` of stroke-3 lists.

    ``source``: a sketch-rnn ``.npz`` (its own splits), a QuickDraw ``.ndjson``, an ``.svg`` file or a
    folder of them (one drawing per file), or a builtin name: ``kanji`` (kanjivg), ``hershey``.
    Sources without splits are split 90/5/5 with a fixed seed; the builtin sets so that no held-out item
    equals a training one (Hershey: one item per distinct glyph, by content; kanji: by base character,
    variant files with it).  Drawings from vector sources are
    scaled to 255 and simplified with RDP(``epsilon``) as in QuickDraw.  ``progress`` sees the files
    read from folders and builtin sets (thousands of SVGs: minutes on a busy machine).
    """
    info = {"source": str(source), "skipped_lines": 0}
    path = Path(source)
    keys = None
    if str(source) == "kanji":
        files = kanjivg_files()[:limit]
        drawings = [load_svg(file, samples=6) for file in _reporting(files, progress, "reading KanjiVG")]
        keys = [kanji_base(file) for file in files]   # variant files share their base character's split
    elif str(source) == "hershey":
        drawings = hershey_glyphs()[:limit]
    elif path.suffix == ".npz":
        return load_npz(path), info
    elif path.suffix == ".ndjson":
        sketches, info["skipped_lines"] = load_ndjson(path, epsilon, limit)
        return _split(sketches), info
    elif path.suffix == ".svg":
        drawings = [load_svg(path)]
    elif path.is_dir():
        files = sorted(path.glob("*.svg"))
        if not files:
            raise AtelierError(f"{path}: the folder holds no .svg files")
        drawings = [load_svg(file) for file in _reporting(files[:limit], progress, "reading drawings")]
    elif not path.exists() and str(source) not in BUILTIN:
        raise AtelierError(f"{source}: no such file, folder or builtin data set ({', '.join(BUILTIN)})")
    else:
        raise AtelierError(f"{path}: unsupported stroke data (use .npz, .ndjson, .svg or a folder of .svg)")
    sketches = [polylines_to_stroke3(simplify_polylines(d, epsilon)) for d in drawings]
    if str(source) == "hershey":   # fonts share glyphs: one item per content (the preprocessed strokes, hashed)
        keys = [stroke3_key(s) for s in sketches]
    return _split(sketches, keys=keys, unique=str(source) == "hershey"), info
