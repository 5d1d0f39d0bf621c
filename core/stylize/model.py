"""Few-shot patch-based video stylisation (Texler et al. 2020, "Interactive Video Stylization
Using Few-Shot Patch-Based Training"), one file: generator, losses, training, tiled inference.

An image-to-image network is trained from scratch on the painted keyframe(s) only: each step
takes a batch of random patches of the guide channels (``guides.build_inputs``) and the matching
patches of the painting.  Because it only ever sees small patches it learns a *local* mapping,
so it then runs on whole frames, each frame independently, and stays temporally stable as far
as its guides are.

Differences to the reference implementation, all for 2 CPU cores and no downloads:

* The perceptual loss used VGG features; here a Laplacian-pyramid L1 (§ ``pyramid_loss``)
  stands in for it (no pretrained weights exist offline).  The patch discriminator is optional.
* ``FAST`` is a narrower generator (3 instead of 7 ResNet blocks, a 32-channel decoder) without
  normalisation, no output tanh and with 3x3 instead of 7x7 full-resolution convolutions, trained
  with a higher, cosine-decayed learning rate: about 13x less time per step on one CPU thread and
  better figures in the same minutes.  It predicts the painting as the frame's colour plus a
  residual, so a painter close to the input (``edgePreservingFilter``) starts from the frame.
  ``PUBLISHED`` is the paper's configuration, kept for comparison (bench/stylize.py).  No
  normalisation also makes tiled inference exact (no per-tile statistics).
"""

import copy
import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import AtelierError, Cancelled
from ..modelfile import read_model, save_model
from ..schedule import warmup_cosine
from ..validate import check_int, shown
from . import KIND
from .defaults import LEARNING_RATE, TILE, TRAIN_MINUTES


PUBLISHED = dict(filters=[32, 64, 128, 128, 128, 64], resnet_blocks=7, outer_kernel=7, norm="instance",
                 smoothers=True, tanh=True, patch=32, batch=40)
FAST = dict(filters=[16, 32, 64, 64, 32, 32], resnet_blocks=3, outer_kernel=3, norm="none",
            smoothers=False, tanh=False, residual=True, patch=32, batch=24)
CONFIGS = {"published": PUBLISHED, "fast": FAST}
# learning rate (core/schedule.py): a linear warm-up over the first 5 % of the budget, then a
# cosine down to zero, so the last steps refine thin lines
LR_WARMUP = 0.05
LR_FLOOR = 0.0

LOSS_SMOOTHING = 0.95   # the reported loss: an exponential average over about the last 20 steps
CHECKPOINT_SECONDS = 30  # an improved model is written at most this often (a write costs a few steps)
DIVERGED = 1.5          # a final loss this many times the best checkpoint's: training diverged, go back


def _norm(kind, channels):
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.Identity()


def _conv(c_in, c_out, kernel, stride, norm):
    """Conv -> norm -> LeakyReLU(0.2): the reference's ``relu_layer``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2), _norm(norm, c_out),
                         nn.LeakyReLU(0.2))


class ResnetBlock(nn.Module):
    """``x + conv(conv(x))``, the residual block of the bottleneck."""

    def __init__(self, channels, norm):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), _norm(norm, channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, 1, 1), _norm(norm, channels))

    def forward(self, x):
        return x + self.body(x)


class Up(nn.Module):
    """Nearest x2 upsampling then conv: avoids the checkerboard of transposed convolutions."""

    def __init__(self, c_in, c_out, norm):
        super().__init__()
        self.conv = _conv(c_in, c_out, 3, 1, norm)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Generator(nn.Module):
    """The reference's ``GeneratorJ``: a U-Net with two stride-2 stages and ResNet blocks.

    ``conv0`` (full res) -> ``conv1`` (1/2) -> ``conv2`` (1/4) -> ResNet blocks -> ``up2``
    (with skip from conv2) -> ``up1`` (skip from conv1) -> ``conv11`` (skips from conv0 and the
    input) -> optional smoothers -> 1x1 to RGB [-> tanh] [+ input colour].  Input and output in
    [-1, 1].  Without the tanh the output is clamped only at inference: a painting on white paper
    (targets at +1) drove the tanh into saturation, where no gradient is left, and training died.
    ``conv11`` ends in a leaky ReLU: with a plain ReLU all its units once died in a run (on a
    painter close to the input) and the network put out one flat colour from then on.
    """

    def __init__(self, in_channels, filters, resnet_blocks, outer_kernel, norm, smoothers, tanh=True,
                 residual=False, **_):
        super().__init__()
        f = filters
        self.conv0 = _conv(in_channels, f[0], outer_kernel, 1, norm)
        self.conv1 = _conv(f[0], f[1], 3, 2, norm)
        self.conv2 = _conv(f[1], f[2], 3, 2, norm)
        self.resnets = nn.Sequential(*[ResnetBlock(f[2], norm) for _ in range(resnet_blocks)])
        self.up2 = Up(f[2] + f[2], f[4], norm)
        self.up1 = Up(f[4] + f[1], f[4], norm)
        self.conv11 = nn.Sequential(nn.Conv2d(f[0] + f[4] + in_channels, f[5], outer_kernel, 1, outer_kernel // 2),
                                    nn.LeakyReLU(0.2))
        self.smoothers = nn.Sequential(nn.Conv2d(f[5], f[5], 3, 1, 1), nn.ReLU(), nn.BatchNorm2d(f[5]),
                                       nn.Conv2d(f[5], f[5], 3, 1, 1), nn.ReLU()) if smoothers else nn.Identity()
        self.conv12 = nn.Conv2d(f[5], 3, 1)
        self.tanh, self.residual = tanh, residual

    def forward(self, x):
        e0 = self.conv0(x)
        e1 = self.conv1(e0)
        e2 = self.conv2(e1)
        d2 = self.up2(torch.cat([self.resnets(e2), e2], 1))
        d1 = self.up1(torch.cat([d2, e1], 1))
        y = self.conv11(torch.cat([d1, e0, x], 1))
        y = self.conv12(self.smoothers(y))
        y = torch.tanh(y) if self.tanh else y
        return y + x[:, :3] if self.residual else y


class Discriminator(nn.Module):
    """A small PatchGAN (the reference's ``DiscriminatorN_IN``): a real/fake score per 4x4 region."""

    def __init__(self, filters=12, layers=2):
        super().__init__()
        blocks, c = [nn.Conv2d(3, filters, 4, 2, 1), nn.LeakyReLU(0.2)], filters
        for _ in range(layers):
            blocks += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.InstanceNorm2d(c * 2, affine=True), nn.LeakyReLU(0.2)]
            c *= 2
        self.body = nn.Sequential(*blocks, nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, x):
        return self.body(x)


def pyramid_loss(output, target, levels=3):
    """Perceptual substitute: L1 between Laplacian pyramids, ``Σ_l 2^(L−1−l)·|L_l(ŷ) − L_l(y)|₁``.

    Band-pass levels compare edges and texture strokes at each scale, which plain L1 on pixels
    (dominated by low frequencies) underweights.  The finest band weighs most: thin outlines
    live there, and an output that draws them too faint is the one that looks (and measures,
    by its warp error) too smooth; the coarse bands are also held by the pixel L1.  Against
    coarse-heavy weights (1, 2, 4) this gave the same PSNR and a warp ratio of 0.79 instead of
    0.70 after 1500 steps on bench/stylize.py's ``stylization``.
    """
    loss = 0.0
    for level in range(levels):
        small_out, small_target = F.avg_pool2d(output, 2), F.avg_pool2d(target, 2)
        band_out = output - F.interpolate(small_out, scale_factor=2.0, mode="bilinear", align_corners=False)
        band_target = target - F.interpolate(small_target, scale_factor=2.0, mode="bilinear", align_corners=False)
        loss = loss + 2 ** (levels - 1 - level) * F.l1_loss(band_out, band_target)
        output, target = small_out, small_target
    return loss


class PatchSampler:
    """Random training patches from the keyframes, centres drawn inside the masks (§3.1)."""

    def __init__(self, inputs, paintings, masks, patch, rng):
        self.inputs = torch.from_numpy(np.ascontiguousarray(inputs)).permute(0, 3, 1, 2) * 2 - 1
        self.paintings = torch.from_numpy(np.ascontiguousarray(paintings)).permute(0, 3, 1, 2) * 2 - 1
        self.patch, self.rng = patch, rng
        half = patch // 2
        h, w = inputs.shape[1:3]
        valid = np.zeros(masks.shape, bool)
        valid[:, half:h - patch + half + 1, half:w - patch + half + 1] = True
        self.centres = np.argwhere((masks > 0.5) & valid)  # (keyframe, y, x)
        if len(self.centres) == 0:
            raise AtelierError(f"the masked painted area holds no {patch}x{patch} patch; paint a larger area")

    def sample(self, batch):
        picks = self.centres[self.rng.integers(len(self.centres), size=batch)]
        half, p = self.patch // 2, self.patch
        x = torch.stack([self.inputs[k, :, y - half:y - half + p, c - half:c - half + p] for k, y, c in picks])
        y = torch.stack([self.paintings[k, :, r - half:r - half + p, c - half:c - half + p] for k, r, c in picks])
        return x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)


def train(inputs, paintings, masks, config, progress, *, minutes=TRAIN_MINUTES, steps=None, lr=LEARNING_RATE,
          adversarial=0.0, seed=0, checkpoint=None, device=None):
    """Train a generator on keyframe patches; returns ``(generator, summary)``.

    ``inputs``: K x H x W x C network inputs of the keyframes, ``paintings``: K x H x W x 3,
    ``masks``: K x H x W.  Loss ``L = |ŷ − y|₁ + pyramid_loss(ŷ, y) + λ_adv·L_adv`` (the reference
    sums L1, VGG-perceptual and adversarial terms; λ_adv = 0 switches the discriminator off).
    Stops after ``minutes`` or ``steps``; every 30 s an improved model is kept and passed to
    ``checkpoint(generator, summary)``; on Ctrl-C / Cancelled the last checkpoint stays written
    and the exception propagates; a run that diverged after its best checkpoint returns that one.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sampler = PatchSampler(inputs, paintings, masks, config["patch"], rng)
    device = device or torch.device("cpu")
    generator = Generator(inputs.shape[-1], **config).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    if adversarial:
        discriminator = Discriminator().to(device)
        d_optimiser = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    budget = minutes * 60.0
    total = steps if steps is not None else budget
    started = last_save = time.monotonic()
    step, smoothed, summary = 0, None, {}
    best_loss, best_state = math.inf, None
    try:
        if checkpoint:  # a model exists: on disk at once, so Ctrl-C or Esc in the first seconds keeps one
            checkpoint(generator, {"steps": 0, "train_seconds": 0.0})
        progress.stage("training", total)
        while (steps is None or step < steps) and (steps is not None or time.monotonic() - started < budget):
            elapsed = time.monotonic() - started
            for group in optimiser.param_groups:
                group["lr"] = warmup_cosine((step + 1) / steps if steps is not None else max(elapsed / budget, 1e-3),
                                            lr, floor=LR_FLOOR, warmup=LR_WARMUP)
            x, y = (t.to(device, non_blocking=True) for t in sampler.sample(config["batch"]))
            out = generator(x)
            l1, perceptual = F.l1_loss(out, y), pyramid_loss(out, y)
            loss = l1 + perceptual
            if adversarial:
                fake_score = discriminator(out)
                loss = loss + adversarial * F.binary_cross_entropy_with_logits(fake_score, torch.ones_like(fake_score))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(generator.parameters(), 1.0)  # one bad batch must not saturate the tanh
            optimiser.step()
            if adversarial:
                real, fake = discriminator(y), discriminator(out.detach())
                d_loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                          + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
                d_optimiser.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimiser.step()
            step += 1
            smoothed = loss.item() if smoothed is None else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * loss.item()
            elapsed = time.monotonic() - started
            summary = {"steps": step, "train_seconds": round(elapsed, 2), "loss": round(smoothed, 5),
                       "seconds_per_step": round(elapsed / step, 4)}
            progress.update(step if steps is not None else elapsed, step=step, loss=smoothed)
            if time.monotonic() - last_save > CHECKPOINT_SECONDS and smoothed < best_loss:  # keep the best, write it
                best_loss, best_state = smoothed, copy.deepcopy(generator.state_dict())
                if checkpoint:
                    checkpoint(generator, summary)
                last_save = time.monotonic()
    except (KeyboardInterrupt, Cancelled) as error:
        if checkpoint and step and best_state is None:
            checkpoint(generator, {**summary, "interrupted": True})
        error.kept = getattr(checkpoint, "path", None)  # where the checkpoint went, if it says
        raise
    if best_state is not None and smoothed > DIVERGED * best_loss:  # training diverged since: go back
        generator.load_state_dict(best_state)
        summary.update(loss=round(best_loss, 5), restored_best=True)
    return generator, summary


def save(path, generator, meta):
    """Write the generator's weights (float32, on the CPU) and ``meta`` as a ``stylize`` model file."""
    tensors = {name: value.detach().cpu().float().numpy() for name, value in generator.state_dict().items()
               if value.dtype.is_floating_point}
    save_model(path, KIND, tensors, meta)


def check_hyperparameters(path, meta, tensors):
    """The network a model file describes, checked before anything is built: sane sizes, then the
    shapes of a copy built on torch's "meta" device (no memory) against the file's tensors."""
    hyper = meta.get("hyperparameters")
    config = hyper.get("config") if isinstance(hyper, dict) else None
    if not isinstance(config, dict):
        raise AtelierError(f"{shown(path)}: not a stylisation model (no network hyperparameters)")
    check_int(path, "in_channels", hyper.get("in_channels"), 1, 64)
    filters = config.get("filters")
    if not isinstance(filters, list) or len(filters) != 6:
        raise AtelierError(f"{shown(path)}: filters must be a list of 6 channel counts")
    for count in filters:
        check_int(path, "a filter count", count, 1, 1024)
    check_int(path, "resnet_blocks", config.get("resnet_blocks"), 0, 64)
    if check_int(path, "outer_kernel", config.get("outer_kernel"), 1, 15) % 2 == 0:
        raise AtelierError(f"{shown(path)}: outer_kernel must be odd")
    if config.get("norm") not in ("none", "instance"):
        raise AtelierError(f"{shown(path)}: norm {str(config.get('norm'))[:40]!r} is not 'none' or 'instance'")
    for flag in ("smoothers", "tanh", "residual"):
        if not isinstance(config.get(flag, False), bool):
            raise AtelierError(f"{shown(path)}: {flag} must be true or false")
    try:
        with torch.device("meta"):
            expected = {name: tuple(value.shape) for name, value in Generator(hyper["in_channels"], **config)
                        .state_dict().items() if value.dtype.is_floating_point}
    except (TypeError, ValueError, RuntimeError) as error:
        raise AtelierError(f"{shown(path)}: its hyperparameters do not describe this Atelier's stylisation "
                           f"network ({str(error)[:120]})") from None
    found = {name: tuple(value.shape) for name, value in tensors.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise AtelierError(f"{shown(path)}: its tensors do not match the network its hyperparameters describe "
                           f"({', '.join(wrong[:3])}{', ...' if len(wrong) > 3 else ''})")


def load(path):
    """Return ``(generator in eval mode, meta)`` from a model file."""
    tensors, meta = read_model(path, KIND)
    check_hyperparameters(path, meta, tensors)
    try:
        hyper = meta["hyperparameters"]
        generator = Generator(hyper["in_channels"], **hyper["config"])
        state = generator.state_dict()
        state.update({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in tensors.items()})
        generator.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as error:
        raise AtelierError(f"{path}: model does not match this Atelier's stylisation network ({error})") from None
    return generator.eval(), meta


def padded_margin(margin):
    return int(math.ceil(margin / 4) * 4)


MAX_TILE = 8192


def check_tile(tile):
    """``--tile``: a whole number of pixels from 16 to MAX_TILE, else an AtelierError."""
    if isinstance(tile, bool) or not isinstance(tile, int) or not 16 <= tile <= MAX_TILE:
        raise AtelierError(f"--tile {tile}: must be a whole number of pixels from 16 to {MAX_TILE}")
    return tile


@torch.no_grad()
def stylize_frames(generator, inputs, *, tile=TILE, margin=40, batch_pixels=2 ** 21, device=None, progress=None,
                   write=None):
    """Run the generator on whole frames (N x H x W x C in [0, 1]) -> yields/writes H x W x 3 frames.

    Each frame is reflect-padded by ``margin`` and cut into ``tile``-sized windows that overlap
    by the margin; only their centres are kept.  With no normalisation layers and a receptive
    field under the margin, tiles equal the untiled result, so a 4K frame never holds more than
    one tile of activations in memory.  Windows of several frames share a batch.  ``write(i, image)``
    receives each finished frame (else they are returned as a list).
    """
    check_tile(tile)
    device = device or torch.device("cpu")
    generator = generator.to(device).to(memory_format=torch.channels_last)
    margin = padded_margin(margin)
    n, h, w, c = inputs.shape
    tile = min(tile, int(math.ceil(max(h, w) / 4) * 4))
    tile_h, tile_w = min(tile, int(math.ceil(h / 4) * 4)), min(tile, int(math.ceil(w / 4) * 4))
    window = (tile_h + 2 * margin, tile_w + 2 * margin)
    per_batch = max(1, batch_pixels // (window[0] * window[1]))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    results, pending = [None] * n if write is None else None, []
    canvases, remaining = {}, {}

    def flush():
        x = torch.stack([p[2] for p in pending]).to(device).contiguous(memory_format=torch.channels_last)
        with autocast:
            y = generator(x * 2 - 1).float()
        y = ((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        for (i, (top, left), _), out in zip(pending, y):
            bottom, right = min(top + tile_h, h), min(left + tile_w, w)
            canvases[i][top:bottom, left:right] = out[margin:margin + bottom - top, margin:margin + right - left]
            remaining[i] -= 1
            if remaining[i] == 0:
                image = canvases.pop(i)
                if write is None:
                    results[i] = image
                else:
                    write(i, image)
                if progress is not None:
                    progress.update(i + 1)
        pending.clear()

    for i in range(n):
        frame = torch.from_numpy(np.ascontiguousarray(inputs[i])).permute(2, 0, 1)
        grid_h, grid_w = math.ceil(h / tile_h), math.ceil(w / tile_w)
        # reflect-pad by the margin, then edge-pad so the last window is full size
        padded = F.pad(frame[None], (margin, margin, margin, margin), mode="reflect" if min(h, w) > margin else "replicate")
        padded = F.pad(padded, (0, grid_w * tile_w - w, 0, grid_h * tile_h - h), mode="replicate")[0]
        canvases[i], remaining[i] = np.empty((h, w, 3), np.float32), grid_h * grid_w
        for gy in range(grid_h):
            for gx in range(grid_w):
                top, left = gy * tile_h, gx * tile_w
                pending.append((i, (top, left), padded[:, top:top + window[0], left:left + window[1]]))
                if len(pending) >= per_batch:
                    flush()
    if pending:
        flush()
    return results
