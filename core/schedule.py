"""The learning-rate schedule the trainers share: a linear warm-up, then a cosine decay to a floor.

    lr(t) = peak · min(1, t / t_w) · (f + (1 − f) · ½ · (1 + cos(π · min(t, 1))))

with t the progress through the budget (0 at the start, 1 at the end: a fraction of the steps or
of the time), t_w the warm-up's share of it (0: none) and f the floor, the share of ``peak`` left
at the end.  The cosine (SGDR, Loshchilov & Hutter 2017, arXiv:1608.03983) keeps the rate high
for most of the run and lowers it gently for the last steps, which refine; the warm-up keeps
Adam's first, poorly estimated steps small.
"""

import math


def warmup_cosine(progress, peak, floor=0.0, warmup=0.0):
    """The learning rate at ``progress`` t (see the module's equation): ``peak`` times a linear
    warm-up over the first ``warmup`` of the run times a cosine from 1 down to ``floor``.
    Progress beyond 1 stays at the floor."""
    rise = min(1.0, progress / warmup) if warmup > 0 else 1.0
    return peak * rise * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
