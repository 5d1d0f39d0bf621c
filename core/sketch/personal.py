"""A Sketch-RNN training set from an artist's own drawings: 20-50 drawings, augmented into thousands.

Sketch-RNN learns a style from tens of thousands of sketches (Ha & Eck 2017 trained on 70k per
QuickDraw class).  An artist has a few dozen.  Each drawing is therefore shown in many
variants that keep what makes it the artist's (stroke order, the shapes, where the pen lifts)
and vary what does not: a small rotation, an anisotropic scale and shear, and a jitter of the
points along the line (a steadier or shakier hand).  The reference's own augmentation (random
x/y scale, dropped points: ``strokes.augment``) is applied on top of these at every training step.

Whole drawings are held out for validation, never variants of a drawing that is also trained on:
a variant of a training drawing would measure memory, not the style.

numpy only: the add-on builds the set in Blender's process and the worker trains on it.
"""

import numpy as np

from ..errors import AtelierError
from ..drawing.pen import polylines_to_stroke3, stroke3_to_polylines
from ..drawing.simplify import rdp

MIN_DRAWINGS = 5           # fewer cannot make a style
VARIANTS = 200             # per drawing: 20 drawings -> 4,000 training sketches
MAX_ROTATION = np.radians(12.0)
MAX_SCALE = 0.15           # per axis, on top of the reference's random_scale_factor at training time
MAX_SHEAR = 0.10
JITTER = 0.8               # standard deviation of the point jitter, in model units (drawings span ~255)
SIMPLIFY = 2.0             # the same Ramer-Douglas-Peucker epsilon the training data gets
VALID_FRACTION = 0.1
# The network for a personal style: a few thousand near-alike sketches need far less capacity than
# QuickDraw, and a small one takes several times more training steps in the same minutes (measured
# on 24 augmented drawings, 1.5 min on 2 cores: 84 steps and reconstruction loss 1.10 against 17
# steps and 2.00 for the "small" preset, bench/RESULTS.md).
NETWORK = {"enc-rnn-size": 64, "dec-rnn-size": 128, "z-size": 32, "num-mixture": 10, "batch-size": 32}
SEQUENCE_MARGIN = 10       # max_seq_len: the longest sketch of the set plus this


def training_options(dataset):
    """``atelier sketch train`` options for a :func:`personal_dataset`: :data:`NETWORK` and a
    ``--max-seq-len`` that fits its longest sketch (the reference pads every sketch to 250 steps)."""
    longest = max(len(sketch) for sketch in dataset["train"] + dataset["valid"])
    options = ["--preset", "small"]
    for name, value in NETWORK.items():
        options += [f"--{name}", str(value)]
    return options + ["--max-seq-len", str(longest + SEQUENCE_MARGIN)]


def variant(stroke3, rng):
    """One augmented copy of a drawing (stroke-3, model units)."""
    lines = stroke3_to_polylines(stroke3)
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = np.diag(rng.uniform(1 - MAX_SCALE, 1 + MAX_SCALE, 2))
    shear = np.array([[1.0, rng.uniform(-MAX_SHEAR, MAX_SHEAR)], [0.0, 1.0]])
    transform = rotation @ scale @ shear
    moved = []
    for line in lines:
        line = line @ transform.T + rng.normal(0.0, JITTER, line.shape)
        moved.append(rdp(line, SIMPLIFY) if len(line) > 2 else line)
    return polylines_to_stroke3(moved).astype(np.float32)


def personal_dataset(drawings, variants=VARIANTS, seed=0):
    """``drawings`` (stroke-3 arrays) -> ``{"train", "valid", "test"}`` splits of augmented sketches.

    The validation split holds whole drawings out (at least one when there are 10 or more); the
    test split is empty: with a few dozen drawings every one is better used for training.
    """
    drawings = [np.asarray(d, np.float32) for d in drawings if len(d) >= 2]
    if len(drawings) < MIN_DRAWINGS:
        raise AtelierError(f"{len(drawings)} drawings with strokes: Sketch-RNN needs at least {MIN_DRAWINGS} "
                           "(20-50 make a style); draw more frames or layers")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(drawings))
    held = int(len(drawings) * VALID_FRACTION) if len(drawings) >= 10 else 0
    valid_ids, train_ids = order[:held], order[held:]
    train = [drawings[i] for i in train_ids] + [variant(drawings[i], rng) for i in train_ids
                                                 for _ in range(variants)]
    valid = [drawings[i] for i in valid_ids] + [variant(drawings[i], rng) for i in valid_ids
                                                 for _ in range(max(1, variants // 10))]
    return {"train": train, "valid": valid, "test": []}
