"""Training a μNCA on an exemplar texture (after the paper's reference recipe).

Papers: A. Mordvintsev, E. Niklasson, "μNCA: Texture Generation with Ultra-Compact Neural
Cellular Automata", 2021, https://arxiv.org/abs/2111.13545; E. Niklasson et al., "Self-Organising
Textures", Distill 2021, https://distill.pub/selforg/2021/textures/ (pool, seed injection,
gradient normalisation).  The sliced-Wasserstein texture loss: E. Heitz et al., "A Sliced
Wasserstein Loss for Neural Texture Synthesis", CVPR 2021, https://arxiv.org/abs/2006.07229.

Read top to bottom (train_many):

1. a pool of states starts as seeds; every iteration takes a batch from it and replaces
   one sample by a fresh seed (seed injection), so the rule learns both to grow the
   texture from noise and to keep it alive;
2. the batch is run for a random number of steps (32-127), fully differentiable (on the CPU
   as one C kernel with its own backward pass through time, fast.py);
3. the loss of each model, per sample of the batch and averaged,

       L = L_SW + λ_patch · L_NN + λ_palette · L_palette + λ_structure · L_structure + L_overflow

   L_SW the multi-scale sliced-Wasserstein distance between image patches of the batch and of
   the exemplar (an optimal-transport loss; no VGG, nothing is downloaded; SlicedWasserstein),
   L_NN the nearest-patch term (PatchNearestNeighbour; λ_patch = 100 by default, so it
   dominates), L_palette the sliced Wasserstein of single pixels' colours or the palette's
   shares (PaletteShares; off by default), L_structure the exemplar's autocorrelation
   (Autocorrelation; off by default) and L_overflow the penalty that keeps states in
   [-1, 1] (overflow_loss);
4. each parameter's gradient is normalised to unit norm, g ← g / (‖g‖ + ε) (the NCA papers'
   trick against exploding gradients through long rollouts), then Adam with the learning rate
   of core/schedule.py (cosine to a floor of LR_FLOOR);
5. the batch goes back into the pool.

Every few seconds the int8 model is evaluated on long rollouts from a fresh seed; the best
one is written to the output at once (atomically), so Ctrl-C or Cancel keeps the best so
far.  The last part of the time budget fine-tunes through fake quantisation (straight-
through estimator) so the one-byte model keeps the float model's quality.
"""

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..device import torch_device
from ..errors import AtelierError, Cancelled
from ..imageio import read_image
from ..schedule import warmup_cosine
from . import fast, files, kernels
from .defaults import MAX_PALETTE_WEIGHT, MAX_STRUCTURE_WEIGHT, PALETTE_TERMS, PYRAMIDS, TRAINING
from .exemplars import SIZE, as_exemplar
from .model import MicroNCA, eager_step, rgb, step
from .palette import palette
from .quantize import quantize, weight_scales
from .rule import PARAMS_TO_CHANNELS, SIZES, channels_for, in_words, parameter_count, seed_state

MIN_SIDE, MAX_SIDE = 32, 8192  # exemplar sides: fewer cells show no texture; a texture needs only a few hundred
MIN_GRID, MAX_GRID = 32, 1024  # training grid sides: the losses' coarsest scale pools by 4 and needs 7x7 patches
MAX_PATCH_WEIGHT = 100.0       # the default, where the nearest-patch term nearly alone drives training
LR_FLOOR = 0.1                 # the cosine ends at a tenth of the peak rate: the int8 fine-tuning at the end still moves
GRADIENT_EPSILON = 1e-8        # keeps a zero gradient finite when gradients are normalised to unit norm
FIRST_RULE_DECAY = 0.5         # how much of its state the first, unscored checkpoint's rule forgets a step
EVAL_SEED = 1                  # the seed and loss directions of every evaluation: fixed, so scores compare
TORCH_CPU_HORIZONS = (256,)    # torch's step on a CPU cannot afford the judge's horizons every few seconds
# the errors by which torch.compile says it cannot build the step here (no working C++ compiler or
# Triton, an unsupported backend: all RuntimeErrors; OSError when a compiler process cannot start)
COMPILE_FAILURES = (RuntimeError, OSError)


def load_exemplar(path, size=SIZE):
    """Exemplar image -> (size', size'', 3) float32 RGB in [0, 1], shorter side ≤ ``size``.

    Greyscale, 16-bit and alpha images are accepted (grey is repeated, alpha dropped);
    tiny or huge images are refused with the reason.
    """
    image = read_image(path)
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise AtelierError(f"{path}: exemplar is {width}x{height} pixels; it needs at least "
                           f"{MIN_SIDE} pixels a side to show a texture")
    if max(height, width) > MAX_SIDE:
        raise AtelierError(f"{path}: exemplar is {width}x{height} pixels; crop it to at most "
                           f"{MAX_SIDE} pixels a side (a texture exemplar needs only a few hundred)")
    return as_exemplar(image, size)


class SlicedWasserstein:
    """Multi-scale sliced-Wasserstein distance between patch distributions, one per model.

    Levels l are (pooling, patch size): single pixels (the colour distribution) and 5x5 patches
    of the image average-pooled by 1, 2 and 4.  At each level, n = min(``samples``, positions)
    random patches x_i of a synthesised image and t_i of the exemplar (flattened, 3·patch²
    numbers) are projected on P = ``projections`` random unit directions v_k.  In one dimension
    the optimal transport between two sets of n points pairs them in sorted order, so the
    squared Wasserstein-2 distance along v_k is a sum over the sorted projections:

        SW_l(x, t) = 1/(P·n) Σ_k Σ_i ( sort_i(v_k · x) − sort_i(v_k · t) )²

        L_SW = Σ_l mean over the batch of SW_l

    Directions and subsets are fresh each call (so over many calls every direction counts).

    On the CPU only the chosen patches are projected, by the C kernels of fast.py, rather than
    convolving the whole image with the directions and then picking: the same numbers, several
    times cheaper.  Elsewhere (a GPU, no C compiler) the loss is computed by convolution.
    """

    LEVELS = ((1, 1), (1, 5), (2, 5), (4, 5))
    COLOURS = ((1, 1),)  # the palette term: the distribution of single pixels' colours

    def __init__(self, targets, projections=32, samples=4096, levels=None):
        self.LEVELS = tuple(levels or self.LEVELS)
        self.targets = [F.avg_pool2d(targets, pool) for pool, _ in self.LEVELS]  # targets (M, 3, H, W)
        self.projections, self.samples = projections, samples

    def _levels(self, images, generator):
        """Per level: the pooled images (M·B, 3, h, w) and exemplars, the patch size, fresh unit
        directions (P, 3·patch²) and the random picks of synthesised and of exemplar patches."""
        for (pool, patch), target in zip(self.LEVELS, self.targets):
            x = F.avg_pool2d(images, pool) if pool > 1 else images
            dirs = torch.randn(self.projections, 3 * patch ** 2, generator=generator, device=x.device)
            positions = [(h - patch + 1) * (w - patch + 1) for h, w in (x.shape[-2:], target.shape[-2:])]
            n = min(*positions, self.samples)
            picks = [torch.randperm(count, generator=generator, device=x.device)[:n] for count in positions]
            yield x, target, patch, dirs / dirs.norm(dim=1, keepdim=True), *picks

    def __call__(self, images, generator=None):
        """images (M, B, 3, H, W) -> loss per model (M,)."""
        if not fast.loss_kernels_available(images.device):
            return self.by_convolution(images, generator)
        models, batch = images.shape[:2]
        loss = 0.0
        for x, target, patch, dirs, pick_s, pick_e in self._levels(images.flatten(0, 1), generator):
            synth = fast.project_patches(x, _corners(x.shape, patch, pick_s), patch, dirs)  # (M·B, P, n)
            exemplar = fast.project_patches(target, _corners(target.shape, patch, pick_e), patch, dirs)
            synth_sorted = _sorted(synth).unflatten(0, (models, batch))  # (M, B, P, n)
            exemplar_sorted = _sorted(exemplar)[:, None]                 # (M, 1, P, n)
            loss = loss + (synth_sorted - exemplar_sorted).square().mean((1, 2, 3))
        return loss

    def by_convolution(self, images, generator=None):
        """The same loss computed the straightforward way (project every patch with a convolution,
        then pick and torch.sort): the yardstick in bench/nca.py, the check in the tests, and the
        loss where the C kernels do not run."""
        models, batch = images.shape[:2]
        loss = 0.0
        for x, target, patch, dirs, pick_s, pick_e in self._levels(images.flatten(0, 1), generator):
            dirs = dirs.view(-1, 3, patch, patch)
            synth = F.conv2d(x, dirs).flatten(2).unflatten(0, (models, batch))  # (M, B, P, N)
            exemplar = F.conv2d(target, dirs).flatten(2)[:, None]              # (M, 1, P, N')
            loss = loss + (synth[..., pick_s].sort(-1).values
                           - exemplar[..., pick_e].sort(-1).values).square().mean((1, 2, 3))
        return loss


class PatchNearestNeighbour:
    """Bidirectional patch similarity (Simakov et al. 2008; the texture-optimisation energy of
    Kwatra et al. 2005): every synthesised 7x7 patch should lie close to some exemplar patch
    (nothing foreign) and every exemplar patch close to some synthesised one (nothing missing),
    at pooling 1, 2 and 4.

    Sliced Wasserstein matches the marginals of random projections, which for photos are
    nearly Gaussian: colour-matched noise then scores as well as the texture.  Nearest patches
    tell them apart.  With n = ``samples`` random synthesised patches x_i and n' =
    ``exemplar_samples`` exemplar patches t_j of D = 3·side² numbers at level l:

        NN_l = ½ ( 1/(n·D) Σ_i min_j ‖x_i − t_j‖²  +  1/(n'·D) Σ_j min_i ‖t_j − x_i‖² )
                   (nothing foreign)                 (nothing missing)

        L_NN = 1/|levels| Σ_l mean over the batch of NN_l

    The search (the argmin) runs without gradients; the loss is the mean squared distance to
    the chosen partners, so the backward pass touches only the matched pairs."""

    LEVELS = ((1, 7), (2, 7), (4, 7))  # (pooling, patch side)
    COARSE = ((8, 5), (16, 3))  # coarse levels seeing 40 and 48 cells: the arrangement of small lattices
    WIDE = ((8, 9),)            # 72 cells: two periods of a 32-cell lattice (the tiles)
    BY_COUNT = {3: LEVELS, 5: LEVELS + COARSE, 6: LEVELS + COARSE + WIDE}  # --pyramid N: the levels

    def __init__(self, targets, samples=512, exemplar_samples=2048, levels=None):
        self.levels = tuple(levels or self.LEVELS)
        size = min(targets.shape[-2:])
        self.levels = tuple((pool, patch) for pool, patch in self.levels if size // pool >= patch)
        self.targets = [F.avg_pool2d(targets, pool) if pool > 1 else targets for pool, _ in self.levels]
        self.samples, self.exemplar_samples = samples, exemplar_samples

    def _patches(self, x, count, generator, patch=7):
        """``count`` random patch x patch patches of each image of x (N, 3, h, w) -> (N, count, 3·patch²)."""
        height, width = x.shape[-2:]
        positions = (height - patch + 1) * (width - patch + 1)
        picks = torch.randperm(positions, generator=generator, device=x.device)[:count]
        c, dy, dx = torch.meshgrid(*(torch.arange(n, device=x.device) for n in (3, patch, patch)),
                                   indexing="ij")
        within = (c * height * width + dy * width + dx).flatten()  # a patch's cells, in (c, dy, dx) order
        index = (_corners(x.shape, patch, picks)[:, None] + within).flatten()
        return x.flatten(1).gather(1, index.expand(x.shape[0], -1)).view(x.shape[0], len(picks), -1)

    def __call__(self, images, generator=None):
        """images (M, B, 3, H, W) -> loss per model (M,)."""
        models, batch = images.shape[:2]
        loss = 0.0
        for (pool, patch), target in zip(self.levels, self.targets):
            x = F.avg_pool2d(images.flatten(0, 1), pool) if pool > 1 else images.flatten(0, 1)
            synth = self._patches(x, self.samples, generator, patch).unflatten(0, (models, batch))  # (M, B, n, D)
            exemplar = self._patches(target, self.exemplar_samples, generator, patch)[:, None]     # (M, 1, n', D)
            with torch.no_grad():
                distance = (exemplar.square().sum(-1)[..., None, :]
                            - 2 * synth @ exemplar.transpose(-1, -2))  # (M, B, n, n'), up to |synth|²
                nearest_exemplar = distance.argmin(-1)
                distance = distance + synth.square().sum(-1)[..., None]
                nearest_synth = distance.argmin(-2)
            exemplar = exemplar.expand(-1, batch, -1, -1)
            foreign = synth - exemplar.gather(2, nearest_exemplar[..., None].expand_as(synth))
            missing = exemplar - synth.gather(2, nearest_synth[..., None].expand_as(exemplar))
            loss = loss + 0.5 * (foreign.square().mean((1, 2, 3)) + missing.square().mean((1, 2, 3)))
        return loss / len(self.levels)


class PaletteShares:
    """The palette-shares term: the exemplar's few colours c_k (palette.py: the colours that cover
    most of its pixels) must cover the same shares of the synthesised image.  Each pixel x_i is
    shared among the colours by a softmax of its squared distances (σ = ``SOFTNESS``),

        q_ik = exp(−‖x_i − c_k‖² / 2σ²) / Σ_k' exp(−‖x_i − c_k'‖² / 2σ²),   P_k = mean_i q_ik,

    p_k the same shares of the exemplar's pixels, and the term is the Kullback-Leibler divergence

        L_shares = Σ_k p_k log(p_k / P_k)

    which grows without bound as a colour goes missing (P_k → 0), however few pixels it covers.
    The sliced Wasserstein of pixel colours instead charges by the distance the pixels move, so
    dots collapsed to their mean colour cost it little (bench/nca_loss_terms.py)."""

    SOFTNESS = 0.1  # RGB distance: near 0 a pixel belongs to its nearest colour alone and far colours get no gradient
    FAR = 1e3       # where absent colours are placed when the exemplars' palettes differ in size (q = 0 there)
    EPSILON = 1e-6  # keeps log P_k finite

    def __init__(self, targets):
        images = targets.permute(0, 2, 3, 1).cpu().numpy()  # (M, H, W, 3)
        palettes = [palette(image)[0] for image in images]
        colours = np.full((len(palettes), max(map(len, palettes)), 3), self.FAR, np.float32)
        for m, colour in enumerate(palettes):
            colours[m, :len(colour)] = colour
        self.colours = torch.from_numpy(colours).to(targets.device)  # (M, K, 3)
        self.exemplar_shares = self.shares(targets[:, None])[:, 0]     # (M, K)

    def shares(self, images):
        """images (M, B, 3, H, W) -> each image's soft shares of the palette's colours P_k (M, B, K)."""
        difference = images[:, :, None] - self.colours[:, None, :, :, None, None]  # (M, B, K, 3, H, W)
        logits = -difference.square().sum(3) / (2 * self.SOFTNESS ** 2)
        return torch.softmax(logits, dim=2).mean((-2, -1))

    def __call__(self, images, generator=None):
        """images (M, B, 3, H, W) -> loss per model (M,)."""
        p = self.exemplar_shares[:, None]
        divergence = p * (torch.log(p + self.EPSILON) - torch.log(self.shares(images) + self.EPSILON))
        return divergence.sum(-1).mean(1)


class Autocorrelation:
    """The structure term: the exemplar's autocorrelation at offsets up to ``reach`` cells, which
    holds a lattice's period and angles, the bands' orientation and spacing and the blobs' size and
    roundness: the arrangement that patch statistics miss (a field of bands and one of round blobs
    of the same width have near-identical patches).  The spectrum constraint of G. Liu, Y.
    Gousseau, G.-S. Xia, "Texture Synthesis Through Convolutional Neural Networks and Spectrum
    Constraints", ICPR 2016, https://arxiv.org/abs/1605.01141, in its autocorrelation form
    (Wiener-Khinchin: the autocorrelation is the inverse Fourier transform of the power spectrum).

    Per RGB channel c of an image x, mean removed, and offset d with |d_x|, |d_y| ≤ reach:

        A_c(d) = Σ_p x_c(p) x_c(p + d) / Σ_p x_c(p)²        (1 at d = 0)
        L_structure = mean over the batch, channels and offsets of ( A_c(d) − A^exemplar_c(d) )²

    The render lives on a torus, so its sums wrap (one FFT).  The exemplar need not tile, so its
    sums run over the pixel pairs inside it (zero padding), each offset averaged over its own
    pairs: a photo's edges add no false correlation."""

    REACH = 32           # offsets in cells: two periods of the set's 16-cell lattices, one of its 32-cell tiles
    FLAT_VARIANCE = 1e-4  # a channel whose variance is below this (std 0.01) has no structure: A ≈ 0

    def __init__(self, targets, reach=REACH):
        self.reach = reach
        x = targets - targets.mean((-2, -1), keepdim=True)  # (M, 3, H, W)
        h, w = x.shape[-2:]
        products = self._window(self._circular(F.pad(x, (0, w, 0, h))))
        pairs = self._window(self._circular(F.pad(torch.ones_like(x[:1, :1]), (0, w, 0, h))))
        self.target = self._one_at_zero(products / pairs)  # (M, 3, 2r+1, 2r+1)

    @staticmethod
    def _circular(x):
        """Σ_p x(p) x(p + d) for every offset d, wrapping around (..., H, W)."""
        spectrum = torch.fft.rfft2(x)
        return torch.fft.irfft2(spectrum.real.square() + spectrum.imag.square(), s=x.shape[-2:])

    def _window(self, a):
        """Offsets −reach..reach on both axes, offset 0 in the middle."""
        r = self.reach
        return torch.roll(a, shifts=(r, r), dims=(-2, -1))[..., :2 * r + 1, :2 * r + 1]

    def _one_at_zero(self, mean_products):
        """Mean products per offset divided by the variance (the product at offset 0)."""
        r = self.reach
        return mean_products / (mean_products[..., r:r + 1, r:r + 1] + self.FLAT_VARIANCE)

    def of(self, images):
        """images (M, B, 3, H, W) on the torus -> A (M, B, 3, 2·reach+1, 2·reach+1)."""
        x = images - images.mean((-2, -1), keepdim=True)
        cells = x.shape[-2] * x.shape[-1]
        return self._one_at_zero(self._window(self._circular(x)) / cells)

    def __call__(self, images, generator=None):
        """images (M, B, 3, H, W) -> loss per model (M,)."""
        return (self.of(images) - self.target[:, None]).square().mean((1, 2, 3, 4))


def _corners(image_shape, patch, picks):
    """Flat indices (row·w + col) into an (h, w) plane of the top-left cells of the ``picks``-th
    positions (row-major) where a ``patch`` x ``patch`` patch fits."""
    width = image_shape[-1]
    return picks // (width - patch + 1) * width + picks % (width - patch + 1)


def _sorted(x):
    """x sorted along its last axis, differentiable.

    On the CPU the order comes from the C radix sort of fast.py: 16-bit keys, each row scaled to
    its own range, so values closer than 1/65535 of that range may keep their input order (the
    loss then differs by less than 1e-5 relative; a test compares it with torch.sort's).  For
    the loss's 4 x 32 rows of 4096 it is about 3x faster than numpy's radix argsort of the same
    keys on a thread pool and 9x faster than torch.sort (bench/RESULTS.md).  Elsewhere, or
    without a C compiler, torch.sort."""
    order = fast.argsort_rows(x) if x.device.type == "cpu" else None
    return x.sort(-1).values if order is None else x.gather(-1, order)


def overflow_loss(s):
    """Penalty on states leaving [-1, 1] (keeps the rule bounded over long rollouts), per model:

        L_overflow = mean over samples, channels and cells of max(|s| − 1, 0)"""
    return (s.abs() - 1.0).clamp_min(0.0).flatten(1).mean(1)


def fake_quantize(w, b):
    """The int8 rounding of quantize.py (same scales σ) in the forward pass of M rules, w (M, C, 4C)
    and b (M, C), with the identity's gradient (the straight-through estimator, Bengio et al.
    2013, https://arxiv.org/abs/1308.3432):

        ŵ = w + stop_gradient(σ · clamp(round(w / σ), −127, 127) − w)"""
    per_model = [quantize(wm, bm) for wm, bm in zip(w.detach().cpu().numpy(), b.detach().cpu().numpy())]
    w_scale = torch.from_numpy(np.stack([weight_scales(q) for q in per_model])).to(w)
    b_scale = torch.from_numpy(np.stack([q["b_scale"] for q in per_model])).to(b)
    return (w + ((w / w_scale).round().clamp(-127, 127) * w_scale - w).detach(),
            b + ((b / b_scale).round().clamp(-127, 127) * b_scale - b).detach())


def train(exemplar_path, output=None, **options):
    """Train one μNCA on one exemplar; returns (summary, model).  See :func:`train_many`."""
    summaries, models = train_many([exemplar_path], [output], **options)
    return summaries[0], models[0]


def check_options(params, size, patch_weight, pyramid, palette_weight, palette_term=TRAINING.palette_term,
                  structure_weight=TRAINING.structure_weight, structure_from=TRAINING.structure_from):
    """Refuse, with the option's name, settings that training cannot honour."""
    if params not in PARAMS_TO_CHANNELS:
        raise AtelierError(f"--params {params}: μNCA sizes are {in_words(SIZES)} parameters")
    if not MIN_GRID <= size <= MAX_GRID:
        raise AtelierError(f"--grid {size}: the training grid must have {MIN_GRID} to {MAX_GRID} cells a side")
    if not 0 <= patch_weight <= MAX_PATCH_WEIGHT:
        raise AtelierError(f"--patch-weight {patch_weight}: must lie in [0, {MAX_PATCH_WEIGHT}]")
    if pyramid not in PYRAMIDS:
        raise AtelierError(f"--pyramid {pyramid}: {in_words(PYRAMIDS)} levels")
    if not 0 <= palette_weight <= MAX_PALETTE_WEIGHT:
        raise AtelierError(f"--palette-weight {palette_weight}: must lie in [0, {MAX_PALETTE_WEIGHT}]")
    if palette_term not in PALETTE_TERMS:
        raise AtelierError(f"--palette-term {palette_term}: one of {', '.join(PALETTE_TERMS)}")
    if not 0 <= structure_weight <= MAX_STRUCTURE_WEIGHT:
        raise AtelierError(f"--structure-weight {structure_weight}: must lie in [0, {MAX_STRUCTURE_WEIGHT}]")
    if not 0 <= structure_from < 1:
        raise AtelierError(f"--structure-from {structure_from}: a part of the budget, in [0, 1)")


class TextureLoss:
    """The image part of the training loss of M models, one value each (terms of weight 0 are
    not computed; the overflow penalty on the states is added beside it):

        L = L_SW + λ_patch · L_NN + λ_palette · L_palette + λ_structure · L_structure

    L_SW: SlicedWasserstein over pixels and 5x5 patches; L_NN: PatchNearestNeighbour, with
    λ_patch = ``patch_weight``; L_palette: the palette term, λ_palette = ``palette_weight``, by
    ``palette_term``: "sliced", the sliced Wasserstein of single pixels' RGB colours c_i
    (synthesised) and e_i (exemplar) alone, which compares the palette and its proportions,

        L_palette = 1/(P·n) Σ_k Σ_i ( sort_i(v_k · c) − sort_i(v_k · e) )²   (unpooled pixels)

    or "shares", PaletteShares: the exemplar's few colours in the same shares.  L_structure:
    Autocorrelation, λ_structure = ``structure_weight``, the arrangement at up to 32 cells."""

    def __init__(self, targets, size, patch_weight, pyramid, palette_weight, palette_term=TRAINING.palette_term,
                 structure_weight=TRAINING.structure_weight):
        levels = PatchNearestNeighbour.BY_COUNT[pyramid]
        levels = [(pool, patch) for pool, patch in levels if min(size, *targets.shape[-2:]) // pool >= patch]
        self.patch_weight, self.palette_weight, self.palette_term = patch_weight, palette_weight, palette_term
        self.sliced = SlicedWasserstein(targets)
        self.nearest = PatchNearestNeighbour(targets, levels=levels) if patch_weight else None
        self.palette = None
        if palette_weight:
            self.palette = (PaletteShares(targets) if palette_term == "shares"
                            else SlicedWasserstein(targets, levels=SlicedWasserstein.COLOURS))
        self.structure_weight, self.structure = structure_weight, None
        if structure_weight:  # offsets must fit inside the grid and the exemplar, both ways
            reach = min(Autocorrelation.REACH, (min(size, *targets.shape[-2:]) - 1) // 2)
            self.structure = Autocorrelation(targets, reach)

    def __call__(self, images, generator, structure=True):
        """images (M, B, 3, H, W) -> loss per model (M,); ``structure=False`` leaves L_structure out."""
        loss = self.sliced(images, generator)
        if self.nearest:
            loss = loss + self.patch_weight * self.nearest(images, generator)
        if self.palette:
            loss = loss + self.palette_weight * self.palette(images, generator)
        return loss + self.structure_weight * self.structure(images) if self.structure and structure else loss

    def description(self):
        """The loss in words, for the model file's hyperparameters."""
        terms = {"sliced": "sliced-Wasserstein of pixel colours", "shares": "palette shares (KL)"}
        return ("sliced-Wasserstein: pixels + 5x5 patches at 3 scales, + overflow"
                + (f" + {self.patch_weight:g} x nearest patches at (pooling, side) {list(self.nearest.levels)}"
                   if self.nearest else "")
                + (f" + {self.palette_weight:g} x {terms[self.palette_term]}" if self.palette else "")
                + (f" + {self.structure_weight:g} x autocorrelation up to {self.structure.reach} cells"
                   if self.structure else ""))


def seed_states(rng, models, batch, channels, size, device):
    """Fresh seeds for M models, (M, batch, C, size, size), drawn from ``rng`` in one go."""
    return torch.from_numpy(seed_state(rng, models * batch, channels, size, size)).to(device).unflatten(0, (models, batch))


def grow(x, w, b, steps, perception, c_kernels, one_step=eager_step, buffers=None):
    """``steps`` steps of the rules (w, b) on x (M, B, C, H, W): the C kernels where they run
    (differentiable when gradients are on, reusing the run's state ``buffers``), else
    ``one_step`` of torch ``steps`` times."""
    if c_kernels:
        return fast.rollout(x, w, b, steps, buffers) if torch.is_grad_enabled() else fast.run(x, w, b, steps)
    for _ in range(steps):
        x = one_step(x, perception, w, b)
    return x


def evaluate(model, texture_loss, horizons, c_kernels, size, device):
    """Worst loss of each int8 model over long rollouts from a fresh seed (fixed directions):
    the texture must appear and then stay.  A rule whose state leaves render's limit scores
    infinity, since render and bake would refuse it."""
    with torch.no_grad():
        w, b = fake_quantize(model.w, model.b)
        s = seed_states(np.random.default_rng(EVAL_SEED), len(w), 1, model.channels, size, device)
        done, scores = 0, []
        for horizon in horizons:
            s, done = grow(s, w, b, horizon - done, model.kernels, c_kernels), horizon
            fixed = torch.Generator(device=device).manual_seed(EVAL_SEED)
            score = (texture_loss(rgb(s), fixed) + overflow_loss(s)).cpu().numpy()
            score[~(s.flatten(1).abs().amax(1).cpu().numpy() <= files.STATE_LIMIT)] = math.inf
            scores.append(score)
    return [float(x) if math.isfinite(x) else math.inf for x in np.max(scores, 0)]


def normalise_gradients(model):
    """Each parameter's gradient scaled to unit norm, per model, g ← g / (‖g‖ + ε): the NCA
    papers' guard against gradients exploding through long rollouts."""
    for p in model.parameters():
        p.grad /= p.grad.flatten(1).norm(dim=1).view(-1, *[1] * (p.dim() - 1)) + GRADIENT_EPSILON


def exemplar_name(path):
    """The name a model takes from its exemplar file: the file name without its last suffix."""
    return str(path).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]


def preview_paths(preview, count):
    """One preview PNG per model: ``preview`` itself, or its numbered siblings when M models share it."""
    if not preview:
        return []
    previews = [preview] * count if isinstance(preview, (str, bytes)) or hasattr(preview, "__fspath__") else list(preview)
    if count > 1 and len(set(map(str, previews))) < count:
        previews = [Path(p).with_name(f"{Path(p).stem}_{m}{Path(p).suffix}") for m, p in enumerate(previews)]
    return previews


def write_previews(paths, x):
    """The last sample of each model's batch x (M, B, C, H, W) as its preview PNG."""
    from ..imageio import write_image
    for m, path in enumerate(paths):
        write_image(path, rgb(x[m, -1]).detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy())


class Checkpoints:
    """The best rule of each of M models so far, written to its output (atomically) as soon as
    it is kept, with the training figures of the moment in its metadata."""

    def __init__(self, outputs, names, exemplars, hyperparameters, device, started):
        self.outputs, self.names, self.exemplars = outputs, names, exemplars
        self.hyperparameters, self.device, self.started = hyperparameters, device, started
        self.kernel = None  # known once the kernels are loaded, after the first checkpoint
        self.best = [{"score": math.inf} for _ in outputs]

    def meta(self, m, iteration, final=False):
        best = self.best[m]
        return {"name": self.names[m], "hyperparameters": dict(self.hyperparameters),
                "training": {"iterations": iteration, "seconds": round(time.monotonic() - self.started, 1),
                             "best_iteration": best.get("iteration"),
                             "best_eval_loss": best["score"] if math.isfinite(best["score"]) else None,
                             "device": self.device, "kernel": self.kernel,
                             "exemplar": self.exemplars[m], "finished": final}}

    def _write(self, m, iteration):
        if self.outputs[m]:
            files.save(self.outputs[m], self.model(m, iteration))

    def model(self, m, iteration, final=False):
        return files.from_float(self.best[m]["w"], self.best[m]["b"], self.meta(m, iteration, final))

    def keep_first(self, model):
        """The first checkpoint, unscored, before anything slow (compiling kernels, evaluating),
        so an interrupt from then on leaves a model that loads and renders.  The random initial
        rule grows without bound within a few hundred steps (render and bake would refuse it), so
        the checkpoint is that rule with its state decaying by FIRST_RULE_DECAY a step: bounded,
        a plain texture."""
        channels = model.channels
        for m in range(len(self.best)):
            first = model.w[m].detach().cpu().numpy().copy()
            first[:, :channels] -= FIRST_RULE_DECAY * np.eye(channels, dtype=first.dtype)
            self.best[m].update(iteration=0, w=first, b=model.b[m].detach().cpu().numpy().copy())
            self._write(m, 0)

    def keep_better(self, scores, model, iteration):
        """Keep (and write) each rule whose score beats its best; an infinite score (a rule that
        blew up) is never kept, the first unscored checkpoint stays instead."""
        for m, score in enumerate(scores):
            if math.isfinite(score) and score < self.best[m]["score"]:
                self.best[m].update(score=score, iteration=iteration, w=model.w[m].detach().cpu().numpy().copy(),
                                    b=model.b[m].detach().cpu().numpy().copy())
                self._write(m, iteration)


def train_many(exemplar_paths, outputs, params=TRAINING.params, minutes=TRAINING.minutes, progress=None,
               iterations=None, size=TRAINING.size, batch=TRAINING.batch, pool_size=TRAINING.pool_size,
               min_steps=TRAINING.min_steps, max_steps=TRAINING.max_steps, lr=TRAINING.lr,
               qat_fraction=TRAINING.qat_fraction, eval_every_s=TRAINING.eval_every_s, seed=TRAINING.seed,
               names=None, compile=True, patch_weight=TRAINING.patch_weight, pyramid=TRAINING.pyramid,
               palette_weight=TRAINING.palette_weight, palette_term=TRAINING.palette_term, preview=None,
               preview_every_s=TRAINING.preview_every_s, structure_weight=TRAINING.structure_weight,
               structure_from=TRAINING.structure_from):
    """Train one μNCA of ``params`` parameters per exemplar, side by side in one batched loop
    (the exemplars must then share a size), for at most ``minutes`` (or ``iterations``).
    The best model of each is written to its output; returns (summaries, models).

    ``pyramid``: 3 = nearest 7x7 patches at pooling 1, 2, 4; 5 adds 5x5 patches at pooling 8 and
    3x3 at 16 (seeing 40 and 48 cells: the arrangement of a lattice, not only its patches); 6 adds
    9x9 patches at pooling 8 (72 cells: two periods of a lattice of 32-cell tiles).
    ``palette_weight``, ``palette_term``: weight and kind of the palette term ("sliced": the
    sliced-Wasserstein distance of single pixels' colours, beside the weight-1 term already in the
    loss; "shares": PaletteShares, every colour of the exemplar's palette in its share).
    ``structure_weight``: weight of Autocorrelation, the exemplar's autocorrelation up to 32 cells
    (a lattice's period, the blobs' size and roundness; 0: off), from ``structure_from`` of the
    budget on (0: from the start; 0.5: once the patches have had half the budget to form).  The
    long-rollout evaluations that pick the kept model always include it.
    ``preview``: a PNG path (or one per exemplar) written atomically every ``preview_every_s``
    seconds with the texture as it grows (a sample of the pool), for a live view while training.

    The first checkpoint is written as soon as the model exists (unscored), so an interrupt in
    the first seconds still leaves a model that loads; later checkpoints replace it only with
    models whose long-rollout score is finite."""
    check_options(params, size, patch_weight, pyramid, palette_weight, palette_term, structure_weight, structure_from)
    channels, count = channels_for(params), len(exemplar_paths)
    device = torch_device()
    exemplars = [load_exemplar(path) for path in exemplar_paths]
    if len({e.shape for e in exemplars}) > 1:
        raise AtelierError("exemplars trained together must have the same size")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    targets = torch.from_numpy(np.stack([np.moveaxis(e, -1, 0) for e in exemplars])).to(device)
    texture_loss = TextureLoss(targets, size, patch_weight, pyramid, palette_weight, palette_term, structure_weight)
    model = MicroNCA(channels, count).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    previews = preview_paths(preview, count)
    started = time.monotonic()
    hyperparameters = {"params": params, "channels": channels, "grid": size, "batch": batch, "pool": pool_size,
                       "rollout": [min_steps, max_steps], "lr": lr,
                       "loss": texture_loss.description() + (f" (that term from {structure_from:g} of the budget on)"
                                                             if structure_weight and structure_from else "")}
    checkpoints = Checkpoints(outputs, names or [exemplar_name(path) for path in exemplar_paths],
                              [str(path) for path in exemplar_paths], hyperparameters, device.type, started)
    checkpoints.keep_first(model)

    pool = seed_states(rng, count, pool_size, channels, size, device)  # (M, pool, C, H, W)
    budget = minutes * 60.0
    c_kernels = fast.available(channels, device)  # else torch's step, compiled if it can be
    state_buffers = fast.StateBuffers()  # the rollouts' states, reused from one iteration to the next
    # torch.compile builds C++ (CPU) or Triton's launchers (GPU) with the system compiler: none, no compile
    run_step = torch.compile(step, dynamic=False) if compile and not c_kernels and kernels.compiler() else eager_step
    kernel = kernels.kernel_report(channels)["kernel"] if device.type == "cpu" else f"torch ({device.type})"
    checkpoints.kernel = kernel
    horizons = files.HORIZONS if c_kernels or device.type == "cuda" else TORCH_CPU_HORIZONS
    stage = f"μNCA {params} on {kernel}"  # (the console shows its first 24 characters)
    if progress:
        progress.stage(stage, total=iterations or budget)

    it, history, last_eval, last_preview = 0, [], -math.inf, -math.inf
    try:
        while True:
            elapsed = time.monotonic() - started
            # at least one iteration: a budget shorter than the start-up (a busy machine) still trains,
            # previews and scores a rule rather than keeping the untrained one
            if (it >= iterations) if iterations else (elapsed >= budget and it > 0):
                break
            fraction = it / iterations if iterations else elapsed / budget
            for group in optimizer.param_groups:  # cosine decay over the budget, no warm-up
                group["lr"] = warmup_cosine(fraction, lr, floor=LR_FLOOR)
            index = torch.from_numpy(rng.choice(pool_size, batch, replace=False)).to(device)
            x = pool[:, index]
            x[:, 0] = seed_states(rng, count, 1, channels, size, device)[:, 0]  # seed injection
            w, b = fake_quantize(model.w, model.b) if fraction >= 1 - qat_fraction else (model.w, model.b)
            steps = int(rng.integers(min_steps, max_steps + 1))
            try:
                x = grow(x, w, b, steps, model.kernels, c_kernels, run_step, state_buffers)
                arranged = fraction >= structure_from  # the structure term joins once the patches had their share
                per_model = texture_loss(rgb(x), generator, structure=arranged) + overflow_loss(x)
                optimizer.zero_grad(set_to_none=True)
                per_model.sum().backward()
            except COMPILE_FAILURES as error:
                if run_step is eager_step:
                    raise
                # torch.compile could not build the step here: eager torch computes the same numbers, slower
                run_step = eager_step
                if progress:
                    progress.stage(f"{stage}, eager (torch.compile failed: {type(error).__name__})",
                                   total=iterations or budget)
                continue
            normalise_gradients(model)
            optimizer.step()
            pool[:, index] = x.detach()
            it += 1
            if previews and time.monotonic() - last_preview >= preview_every_s:
                last_preview = time.monotonic()
                write_previews(previews, x)
            history.append(per_model.detach().cpu().numpy())
            if time.monotonic() - last_eval >= eval_every_s or (iterations and it == iterations):
                last_eval = time.monotonic()
                checkpoints.keep_better(evaluate(model, texture_loss, horizons, c_kernels, size, device), model, it)
            if progress:
                progress.update(it if iterations else time.monotonic() - started, iteration=it,
                                loss=float(history[-1].mean()))
    except (KeyboardInterrupt, Cancelled):
        if it:  # the current rule, if it beats the kept one
            checkpoints.keep_better(evaluate(model, texture_loss, horizons, c_kernels, size, device), model, it)
        raise
    checkpoints.keep_better(evaluate(model, texture_loss, horizons, c_kernels, size, device), model, it)
    seconds = time.monotonic() - started
    summaries, models = [], []
    for m, best in enumerate(checkpoints.best):
        models.append(checkpoints.model(m, it, final=True))
        if outputs[m]:
            files.save(outputs[m], models[m])
        summaries.append({"model": str(outputs[m]) if outputs[m] else None, "params": parameter_count(channels),
                          "iterations": it, "seconds_per_iteration": round(seconds / max(it, 1), 4),
                          "best_eval_loss": round(best["score"], 5) if math.isfinite(best["score"]) else None,
                          "final_loss": round(float(history[-1][m]), 5) if history else None,
                          "device": device.type, "kernel": kernel})
    return summaries, models
