"""The training rollout as one hand-written C kernel, forward and backward through time.

torch runs a μNCA step as a dozen memory-bound kernels over the whole batch and keeps every
intermediate for autograd; the rule is so small (100 multiply-adds a cell for 68 parameters)
that this bookkeeping is nearly all the time.  ``shaders/nca_train.c`` instead runs a whole
rollout of eqs. 1-3 row by row (vectorised along the row, threads over samples), keeps only the
C-channel state of each step, and in the backward pass recomputes each step's perception and
applies the exact chain rule:

    dL/dW += g·yᵀ,   dL/db += g,   dy = Wᵀg,
    dL/ds  = g + dy_s + sign(s)·dy_|s| + Kᵀ * (dy_p + sign(p)·dy_|p|)

with g = dL/ds' and Kᵀ* the transposed (flipped) perception filter.  There is one library per
channel count, shipped prebuilt or compiled here with the system C compiler (kernels.py); where
none loads (or on a GPU) training uses the torch step of model.py instead (same numbers,
slower).  The loss's kernels (``shaders/nca_loss.c``: the projections of sampled patches and a
radix sort, see train.SlicedWasserstein) are found and loaded the same way.
"""

import ctypes

import torch

from .kernels import build_prebuilt, kernel_report, library  # noqa: F401  (the first two: importable from here too)
from .rule import perception_kernels

RUN_STEPS = 16  # steps of run() a kernel call


class StateBuffers:
    """The states of one rollout, kept after its backward pass for the next rollout of the same
    training run: writing to freshly allocated pages (the kernel maps them in one by one) costs
    more than the rule itself, and every rollout of a run needs about the same size.  Create one
    per training run and pass it to every :func:`rollout`."""

    def __init__(self):
        self.spare = None  # a flat float32 buffer whose backward pass is done

    def take(self, size):
        """A flat float32 buffer of at least ``size`` numbers: the spare one if it is large enough."""
        if self.spare is not None and self.spare.numel() >= size:
            buffer, self.spare = self.spare, None
            return buffer
        return torch.empty(size)

    def give_back(self, buffer):
        self.spare = buffer


def _library(channels):
    """The rollout kernels' library for ``channels`` (ctypes), or None (see kernels.py)."""
    kernel = library(f"train{channels}")
    return kernel.cdll if kernel else None


def _pointer(tensor):
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(ctypes.c_float))


def _swap_channels_and_rows(s):
    """(M, B, C, H, W) viewed in the kernels' order (M, B, H, C, W), each row's channels
    together, and back"""
    return s.transpose(-3, -2)


class _Rollout(torch.autograd.Function):
    """``steps`` steps of M rules on their batches: s (M, B, C, H, W), w (M, C, 4C), b (M, C)."""

    @staticmethod
    def forward(ctx, s, w, b, steps, library, buffers):
        models, batch, channels, height, width = s.shape
        threads = min(torch.get_num_threads(), models * batch)  # (threads take whole samples)
        kernels = torch.from_numpy(perception_kernels(channels))
        w, b = w.detach().contiguous(), b.detach().contiguous()
        size = (steps + 1) * s.numel()
        buffer = buffers.take(size)
        states = buffer[:size].view(steps + 1, models, batch, height, channels, width)  # the kernels' layout
        states[0] = _swap_channels_and_rows(s)
        library.nca_forward(_pointer(states), steps, models * batch, batch, height, width,
                            _pointer(w), _pointer(b), _pointer(kernels), threads)
        ctx.save_for_backward(states, w, kernels)
        ctx.library, ctx.steps, ctx.threads, ctx.buffer, ctx.buffers = library, steps, threads, buffer, buffers
        return _swap_channels_and_rows(states[steps]).contiguous()

    @staticmethod
    def backward(ctx, grad_out):
        states, w, kernels = ctx.saved_tensors
        models, batch, height, channels, width = states.shape[1:]
        grad = _swap_channels_and_rows(grad_out).clone(memory_format=torch.contiguous_format)
        work = torch.empty_like(grad)
        dw, db = torch.zeros_like(w), torch.zeros(models, channels)
        ctx.library.nca_backward(_pointer(states), _pointer(grad), _pointer(work), ctx.steps, models * batch,
                                 batch, height, width, _pointer(w), _pointer(kernels), _pointer(dw),
                                 _pointer(db), ctx.threads)
        ctx.buffers.give_back(ctx.buffer)
        return _swap_channels_and_rows(grad), dw, db, None, None, None


def _loss_library():
    kernel = library("loss")
    return kernel.cdll if kernel else None


def _longs(tensor):
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(ctypes.c_int64))


def loss_kernels_available(device):
    """Whether the loss's C kernels compile (and load) here and can run on ``device``."""
    return device.type == "cpu" and _loss_library() is not None


class _PatchProjection(torch.autograd.Function):
    """images (N, 3, h, w), corners (n,) int64, dirs (P, 3·patch²) -> (N, P, n); see project_patches."""

    @staticmethod
    def forward(ctx, images, corners, patch, dirs):
        count, _, height, width = images.shape
        out = torch.empty(count, len(dirs), len(corners))
        _loss_library().nca_project_patches(_pointer(images), count, height, width, _longs(corners), len(corners),
                                            patch, _pointer(dirs), len(dirs), _pointer(out), torch.get_num_threads())
        ctx.save_for_backward(corners, dirs)
        ctx.shape, ctx.patch = images.shape, patch
        return out

    @staticmethod
    def backward(ctx, grad):
        corners, dirs = ctx.saved_tensors
        count, _, height, width = ctx.shape
        grad, grad_images = grad.contiguous(), torch.zeros(ctx.shape)  # (bound: the C call reads them)
        _loss_library().nca_project_patches_backward(
            _pointer(grad), count, height, width, _longs(corners), len(corners), ctx.patch,
            _pointer(dirs), len(dirs), _pointer(grad_images), torch.get_num_threads())
        return grad_images, None, None, None


def project_patches(images, corners, patch, dirs):
    """(N, P, n): the patch of ``patch`` x ``patch`` cells (3 channels, in (c, dy, dx) order) at
    each top-left cell ``corners`` (row·w + col) of each image (N, 3, h, w), projected on each
    direction ``dirs`` (P, 3·patch²); differentiable in the images.  Needs
    :func:`loss_kernels_available`."""
    return _PatchProjection.apply(images.float().contiguous(), corners.contiguous(), patch,
                                  dirs.detach().float().contiguous())


def argsort_rows(x):
    """The permutation sorting each row of x (..., n), n ≤ 65536, by the C radix sort of
    shaders/nca_loss.c (16-bit keys scaled to each row's range; see there), as an int64 tensor
    of x's shape; None where it cannot run (no compiler, longer rows)."""
    library, n = _loss_library(), x.shape[-1]
    if library is None or n > 65536 or x.numel() == 0:
        return None
    values = x.detach().to(torch.float32).reshape(-1, n).contiguous()
    order = torch.empty(values.shape, dtype=torch.int64)
    library.nca_argsort_rows(_pointer(values), len(values), n, _longs(order), torch.get_num_threads())
    return order.view(x.shape)


def available(channels, device):
    """Whether the C kernels for ``channels`` compile (and load) here and can run on ``device``."""
    return device.type == "cpu" and _library(channels) is not None


def run(s, w, b, steps):
    """``steps`` steps of the rule on s (M, B, C, H, W) without keeping them (no gradient)."""
    rollout_library = _library(s.shape[2])
    models, batch, channels, height, width = s.shape
    kernels = torch.from_numpy(perception_kernels(channels))
    w, b = w.detach().contiguous(), b.detach().contiguous()
    # RUN_STEPS steps a call: each call starts a team of threads, and on a busy machine (another
    # program on the other core) a thread can wait a time slice to join it; no more threads than
    # samples (threads take whole samples)
    threads = min(torch.get_num_threads(), models * batch)
    states = torch.empty((min(steps, RUN_STEPS) + 1, models, batch, height, channels, width))
    states[0] = _swap_channels_and_rows(s)
    for done in range(0, steps, RUN_STEPS):
        chunk = min(RUN_STEPS, steps - done)
        rollout_library.nca_forward(_pointer(states), chunk, models * batch, batch, height, width, _pointer(w),
                                    _pointer(b), _pointer(kernels), threads)
        states[0] = states[chunk]
    return _swap_channels_and_rows(states[0]).contiguous()


def rollout(s, w, b, steps, buffers=None):
    """s (M, B, C, H, W) after ``steps`` steps of the rules w (M, C, 4C), b (M, C), differentiable
    in s, w and b (one backward pass); needs :func:`available`.  ``buffers``: the training run's
    :class:`StateBuffers` (without it every call allocates its states afresh)."""
    return _Rollout.apply(s.contiguous(), w, b, steps, _library(s.shape[2]), buffers or StateBuffers())
