"""The μNCA training defaults, in one place: the trainer's keyword defaults (train.py), the
command line's (cli.py, scale/nca_batch.py) and the add-on's properties all read them.

This module imports nothing heavy, so the command line's ``--help`` and Blender's own Python
(which has no torch) can read it without loading the trainer.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingDefaults:
    params: int = 68              # the smallest model: trains fastest and suits stripes, spots, simple patterns
    minutes: float = 10.0         # the budget the shipped 68-parameter presets were trained with (docs/nca.md)
    size: int = 128               # cells a side of the training torus (``--grid``)
    batch: int = 4                # states an iteration, one of them a fresh seed (seed injection)
    pool_size: int = 256          # states kept between iterations, so rollouts continue where they stopped
    min_steps: int = 32           # each iteration's rollout length is drawn from [min_steps, max_steps]: short
    max_steps: int = 127          # enough to fit the time budget, long enough that the texture must form
    lr: float = 2e-3              # Adam's peak rate, before the cosine decay
    qat_fraction: float = 0.2     # the last part of the budget trains through int8 rounding (fake quantisation)
    eval_every_s: float = 20.0    # seconds between long-rollout evaluations (each takes a few seconds on a CPU)
    seed: int = 0
    patch_weight: float = 100.0   # the nearest-patch term nearly alone: the best textures in docs/nca.md
    pyramid: int = 3              # nearest patches at pooling 1, 2, 4 (5 adds two coarse levels, 6 a wide one)
    palette_weight: float = 0.0   # the colour-distribution term is opt-in
    palette_term: str = "sliced"  # its kind, one of PALETTE_TERMS (train.TextureLoss)
    structure_weight: float = 0.0 # the autocorrelation term (the arrangement up to 32 cells) is opt-in
    structure_from: float = 0.0   # part of the budget after which it joins the loss: patches first, then arrangement
    preview_every_s: float = 3.0  # how often the live preview PNG is rewritten


TRAINING = TrainingDefaults()
# the nearest-patch term's level counts; train.PatchNearestNeighbour.BY_COUNT builds each (a test keeps the two in step)
PYRAMIDS = (3, 5, 6)
MAX_PALETTE_WEIGHT = 1000.0    # far above any useful weight: a bound that catches typing mistakes
MAX_STRUCTURE_WEIGHT = 10000.0 # likewise for the structure term (its values are 100x smaller)
PALETTE_TERMS = ("sliced", "shares")  # the palette term's kinds (see train.TextureLoss)
