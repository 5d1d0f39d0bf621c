"""The μNCA rule in torch, for training (the rule and its equations are in rule.py).

Paper: A. Mordvintsev, E. Niklasson, "μNCA: Texture Generation with Ultra-Compact Neural
Cellular Automata", 2021, https://arxiv.org/abs/2111.13545 (after "Self-Organising Textures",
Niklasson et al., Distill 2021, https://distill.pub/selforg/2021/textures/).
"""

import torch
import torch.nn.functional as F

from .rule import perception_kernels

INIT_SCALE = 0.01  # small random W: the rule starts close to the identity s' = s + b, and training moves it from there


class MicroNCA(torch.nn.Module):
    """M independent rules of C channels, trained side by side (one batched computation):
    ``w`` is (M, C, 4C), ``b`` is (M, C).  W starts at N(0, INIT_SCALE²), b at zero."""

    def __init__(self, channels, models=1):
        super().__init__()
        self.channels = channels
        self.w = torch.nn.Parameter(torch.randn(models, channels, 4 * channels) * INIT_SCALE)
        self.b = torch.nn.Parameter(torch.zeros(models, channels))
        self.register_buffer("kernels", torch.from_numpy(perception_kernels(channels)))


def step(s, kernels, w, b):
    """One step (eqs. 1-3) of M rules on their batches: s (M, B, C, H, W), w (M, C, 4C), b (M, C).

        p_c = Σ_{dy,dx ∈ {-1,0,1}} K_c[1+dy, 1+dx] · s_c[y+dy, x+dx]   (torus wrap)
        s'  = s + W · [s, p, |s|, |p|] + b

    Written with shifted views and broadcasting only, so ``torch.compile`` fuses the whole
    step (forward and backward) into a few loops instead of a dozen memory-bound kernels."""
    height, width = s.shape[-2:]
    padded = torch.cat([s[..., -1:, :], s, s[..., :1, :]], -2)  # torus wrap
    padded = torch.cat([padded[..., -1:], padded, padded[..., :1]], -1)
    p = sum(kernels[:, dy, dx, None, None] * padded[..., dy:dy + height, dx:dx + width]
            for dy in range(3) for dx in range(3))
    y = torch.cat([s, p, s.abs(), p.abs()], 2)
    return s + (w[:, None, :, :, None, None] * y[:, :, None]).sum(3) + b[:, None, :, None, None]


def eager_step(s, kernels, w, b):
    """:func:`step` for eager torch (no C compiler, so torch.compile cannot build it either): the
    perception as a depthwise convolution and W·y as a 1x1 convolution grouped by rule.  Run
    eagerly, step's broadcast product would make a (M, B, C, 4C, H, W) tensor every step: about
    twice as slow as this form at 68 parameters and fifty times at 588 (bench/RESULTS.md)."""
    models, batch, channels, height, width = s.shape
    flat = F.pad(s.reshape(models * batch, channels, height, width), (1, 1, 1, 1), mode="circular")
    p = F.conv2d(flat, kernels[:, None], groups=channels).view_as(s)
    y = torch.cat([s, p, s.abs(), p.abs()], 2).transpose(0, 1).reshape(batch, models * 4 * channels, height, width)
    ds = F.conv2d(y, w.reshape(models * channels, 4 * channels, 1, 1), b.reshape(-1), groups=models)
    return s + ds.view(batch, models, channels, height, width).transpose(0, 1)


def reference_step(s, kernels, w, b):
    """The straightforward port of the reference loop for one rule, s (B, C, H, W) (pad,
    depthwise conv, concatenate, 1x1 conv, add): the yardstick for training speed in bench/nca.py."""
    p = F.conv2d(F.pad(s, (1, 1, 1, 1), mode="circular"), kernels[:, None], groups=s.shape[1])
    return s + F.conv2d(torch.cat([s, p, s.abs(), p.abs()], 1), w[:, :, None, None], b)


def rgb(s):
    """Eq. 4: colour of a (..., C, H, W) state, unclipped: RGB = s[:3] + 0.5."""
    return s[..., :3, :, :] + 0.5

