"""Sketch-RNN (Ha & Eck, "A Neural Representation of Sketch Drawings", ICLR 2018) in PyTorch.

Paper: https://arxiv.org/abs/1704.03477 (2017).  The reference implementation is Magenta's
``sketch_rnn``; the cells and the output mixture are in ``cells.py``, shared with the numpy runtime.

A sequence-to-sequence VAE over stroke-5 sequences:

* encoder: a bidirectional LSTM reads the sketch; its two final hidden states give mu and
  sigma_hat (eq. 2), z = mu + exp(sigma_hat / 2) * N(0, I) (the reparameterisation trick);
* decoder: an LSTM (or LayerNorm-LSTM, HyperLSTM) whose state starts at tanh(W z + b) (eq. 3) and
  whose input at step i is [S_{i-1}, z]; its output y_i parameterises a mixture of ``num_mixture``
  bivariate normals for (dx, dy) and a 3-way softmax for the pen (eq. 4-6);
* loss: L_R = L_s + L_p (eq. 9), normalised by N_max, plus the KL term, annealed and floored at
  ``kl_tolerance`` (eq. 10-11).  Unconditional mode drops the encoder (decoder starts from zeros).

Speed.  Almost all the arithmetic is the recurrent h W_h products.  The plain LSTM runs in
:class:`FusedLSTM`, whose hand-written backward accumulates dW for all steps in one product after
the loop, so a step is one matrix product and a handful of element-wise operations in each
direction: the step's 5 input numbers join that product as 5 more rows of W, and the decoder's
z W_z, the same at every step, is computed once.  On CPUs with AMX the products run in bfloat16;
training takes the idle cores only and keeps freed memory for the next step (see
:func:`cpu_threads`, :func:`keep_freed_memory`).
"""

import ctypes
import math
import time

import numpy as np
import torch
from torch import nn

from ..device import cpu_threads, torch_device
from ..drawing.pen import to_stroke5
from ..errors import AtelierError, Cancelled
from ..validate import check_int, check_number, shown
from ..modelfile import read_model, save_model
from . import cells
from .data import augment, normalizing_scale
from .runtime import KIND, check_hyperparameters, check_model, parameter_shapes  # noqa: F401 (parameter_shapes: API)

CHECKPOINT_KIND = "sketch_rnn_checkpoint"   # a model file with the optimiser's state, to resume training

# The reference's defaults (magenta/sketch_rnn/model.py get_default_hparams).
REFERENCE = dict(
    enc_rnn_size=256, dec_rnn_size=512, z_size=128, num_mixture=20, max_seq_len=250, batch_size=100,
    learning_rate=1e-3, decay_rate=0.9999, min_learning_rate=1e-5, grad_clip=1.0,
    kl_weight=0.5, kl_weight_start=0.01, kl_tolerance=0.2, kl_decay_rate=0.99995,
    recurrent_dropout_keep=0.90, random_scale_factor=0.15, augment_stroke_prob=0.10,
    decoder="lstm", conditional=True, hyper_rnn_size=256, hyper_embedding_size=32,
)
# A configuration that learns recognisable drawings in tens of minutes on a CPU (see docs/sketch.md).
SMALL = dict(REFERENCE, enc_rnn_size=128, dec_rnn_size=256, z_size=64, hyper_rnn_size=128, hyper_embedding_size=16)
PRESETS = {"reference": REFERENCE, "small": SMALL}


class TorchOps:
    concat = staticmethod(lambda arrays: torch.cat(arrays, -1))
    einsum = staticmethod(torch.einsum)
    tanh = staticmethod(torch.tanh)
    sigmoid = staticmethod(torch.sigmoid)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    log_softmax = staticmethod(lambda x: torch.log_softmax(x, -1))

    @staticmethod
    def layer_norm(x, gamma, beta):
        return nn.functional.layer_norm(x, x.shape[-1:], eps=cells.LAYER_NORM_EPSILON) * gamma + beta


TORCH = TorchOps()


class FusedLSTM(torch.autograd.Function):
    """A whole LSTM sequence with a hand-written backward (same maths as :func:`cells.lstm_step`).

    gates_t = bias + [h_{t-1}, x_t] W with W = [W_h; W_x]: the step's few inputs join the recurrent
    product as a few more rows, so no (T, B, 4n) tensor of input contributions is written or summed.
    ``x``: (T, B, k) step inputs (data: no gradient); ``bias``: (4n,) or (B, 4n), with the forget
    bias added (and for the decoder z W_z, the same at every step); ``mask``: (T, B, n)
    recurrent-dropout mask on the candidate, or None.  Returns h for every step.  ``bf16``: the
    products run in bfloat16 (4x faster on CPUs with AMX, the usual mixed-precision trade); the
    state, the element-wise maths and the gradients stay in float32.
    """

    @staticmethod
    def forward(ctx, x, bias, h0, c0, W, mask, bf16=False):
        (steps, batch, _), n = x.shape, h0.shape[-1]
        weights = W.bfloat16() if bf16 else W
        hs, cs = x.new_empty(steps, batch, n), x.new_empty(steps, batch, n)
        activations = x.new_empty(steps, batch, 4 * n)  # sigma(i), tanh(j), sigma(f), sigma(o)
        gate_bias = bias.expand(batch, 4 * n)
        h, c = h0, c0
        for t in range(steps):
            hx = torch.cat([h, x[t]], 1)
            gates = torch.add(gate_bias, hx.bfloat16() @ weights) if bf16 else torch.addmm(gate_bias, hx, weights)
            a = activations[t]
            torch.sigmoid(gates, out=a)
            torch.tanh(gates[:, n:2 * n], out=a[:, n:2 * n])
            candidate = a[:, n:2 * n] if mask is None else a[:, n:2 * n] * mask[t]
            c = torch.addcmul(a[:, 2 * n:3 * n] * c, a[:, :n], candidate, out=cs[t])
            h = torch.mul(a[:, 3 * n:], torch.tanh(c), out=hs[t])
        ctx.save_for_backward(h0, c0, x, weights, mask, hs, cs, activations)
        ctx.bf16, ctx.bias_shape = bf16, bias.shape
        return hs

    @staticmethod
    def backward(ctx, grad_hs):
        h0, c0, x, weights, mask, hs, cs, activations = ctx.saved_tensors
        steps, n = hs.shape[0], hs.shape[-1]
        # in bfloat16 the products read d gates as written: no conversion per step nor of the whole
        grad_gates = torch.empty_like(activations, dtype=weights.dtype)
        grad_h, grad_c = torch.zeros_like(h0), torch.zeros_like(c0)
        W_h_t = weights[:n].t().contiguous()
        for t in reversed(range(steps)):
            a = activations[t]
            i, j, f, o = a[:, :n], a[:, n:2 * n], a[:, 2 * n:3 * n], a[:, 3 * n:]
            candidate = j if mask is None else j * mask[t]
            tanh_c = torch.tanh(cs[t])
            grad_h = grad_h + grad_hs[t]
            grad_c = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
            g = grad_gates[t]  # d loss / d (i, j, f, o) before their non-linearities, written in place
            torch.mul(grad_c * candidate, i * (1 - i), out=g[:, :n])
            torch.mul(grad_c * i, 1 - j * j, out=g[:, n:2 * n])
            if mask is not None:
                g[:, n:2 * n].mul_(mask[t])
            torch.mul(grad_c * (cs[t - 1] if t else c0), f * (1 - f), out=g[:, 2 * n:3 * n])
            torch.mul(grad_h * tanh_c, o * (1 - o), out=g[:, 3 * n:])
            grad_c = grad_c * f
            grad_h = g @ W_h_t  # in bfloat16: bfloat16 + float32 adds up in float32 above
        # dW = sum_t [h_{t-1}, x_t]^T dgates_t: one product over all steps, the largest of the backward
        previous = torch.cat([torch.cat([h0[None], hs[:-1]]), x], -1).reshape(-1, weights.shape[0])
        grad_W = (previous.t().to(weights.dtype) @ grad_gates.reshape(-1, 4 * n)).float()
        grad_bias = grad_gates.sum(0, dtype=torch.float32)
        grad_bias = grad_bias if len(ctx.bias_shape) == 2 else grad_bias.sum(0)
        return None, grad_bias, grad_h.float(), grad_c, grad_W, None, None


def _ortho(rows, columns, generator):
    """Orthogonal blocks for each gate (the reference's ``lstm_ortho_initializer``)."""
    blocks = [torch.nn.init.orthogonal_(torch.empty(rows, columns // 4), generator=generator)
              for _ in range(4)]
    return torch.cat(blocks, 1)


def _glorot(rows, columns, generator):
    limit = math.sqrt(6 / (rows + columns))
    return (torch.rand(rows, columns, generator=generator) * 2 - 1) * limit


class SketchRNN(nn.Module):
    """Parameters live in one flat dict named as in the model file (see :func:`parameter_shapes`)."""

    def __init__(self, hp, seed=0):
        super().__init__()
        self.hp = dict(hp)
        self.bf16 = False  # training sets this where bfloat16 matrix products are fast (see FusedLSTM)
        generator = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterDict()
        for name, (shape, init) in parameter_shapes(self.hp).items():
            if init == "ortho":
                value = _ortho(*shape, generator)
            elif init == "glorot":
                value = _glorot(*shape, generator)
            elif init == "normal":
                value = torch.randn(shape, generator=generator) * 0.01
            else:
                value = torch.full(shape, float(init))
            self.weights[name.replace(".", "__")] = nn.Parameter(value)

    @property
    def p(self):
        return {name.replace("__", "."): value for name, value in self.weights.items()}

    # ------------------------------------------------------------------ encoder (eq. 1-2)
    def encode(self, strokes, lengths, dropout=None):
        """(B, T, 5) stroke-5 without S_0 and the true lengths -> (mu, sigma_hat).

            h_fw = encode_fw(S),  h_bw = encode_bw(S reversed),  h = [h_fw; h_bw]      (eq. 1)
            mu = W_mu h + b_mu,   sigma_hat = W_sigma h + b_sigma                       (eq. 2)

        each direction's final hidden state taken at the sketch's own last step, not the padding's.
        """
        p, e = self.p, self.hp["enc_rnn_size"]
        x = strokes[:, :int(lengths.max())].transpose(0, 1)  # time-major; padding after the longest is never read
        steps, batch = x.shape[:2]
        time = torch.arange(steps, device=x.device)[:, None]
        last = (lengths - 1).clamp(min=0)
        reverse = torch.where(time < lengths[None], last[None] - time, time)  # each sketch reversed within its length
        zeros = x.new_zeros(batch, e)
        finals = []
        for direction, inputs in (("fw", x), ("bw", x.gather(0, reverse[..., None].expand(-1, -1, 5)))):
            W = torch.cat([p[f"encoder.{direction}.W_h"], p[f"encoder.{direction}.W_x"]])
            bias = p[f"encoder.{direction}.b"] + self._forget_shift(e, x)
            mask = dropout(steps, batch, e) if dropout else None
            hs = FusedLSTM.apply(inputs, bias, zeros, zeros, W, mask, self.bf16)
            finals.append(hs[last, torch.arange(batch, device=x.device)])
        h = torch.cat(finals, -1)
        return h @ p["mu.W"] + p["mu.b"], h @ p["presig.W"] + p["presig.b"]

    @staticmethod
    def _forget_shift(n, like):
        shift = like.new_zeros(4 * n)
        shift[2 * n:3 * n] = cells.FORGET_BIAS
        return shift

    # ------------------------------------------------------------------ decoder (eq. 3-6)
    def initial_state(self, z, batch, like):
        """The decoder's first state: ``[h_0; c_0] = tanh(W_z z + b_z)`` (eq. 3), zeros without z."""
        if z is None:
            return like.new_zeros(batch, cells.state_size(self.hp))
        return torch.tanh(z @ self.p["init.W"] + self.p["init.b"])

    def decode(self, inputs, z, dropout=None):
        """(B, T, 5) decoder inputs [S_0, S_1, ...] and z (or None) -> outputs y (B, T, 6M+3) (eq. 4-6;
        ``cells.mixture_parameters`` reads the mixture from y):

            x_i = [S_{i-1}; z],  [h_i; c_i] = forward(x_i, [h_{i-1}; c_{i-1}]),  y_i = W_y h_i + b_y
        """
        p, hp, n = self.p, self.hp, self.hp["dec_rnn_size"]
        strokes = inputs.transpose(0, 1)
        steps, batch = strokes.shape[:2]
        state = cells.split_state(self.initial_state(z, batch, strokes), hp)
        mask = dropout(steps, batch, n) if dropout else None
        if hp["decoder"] == "lstm":
            # [S, z] W_x = S W_x[:5] + z W_x[5:]: the z half is the same at every step, one (B, 4n) product
            bias = p["decoder.b"] + self._forget_shift(n, strokes)
            if z is not None:
                bias = bias + z @ p["decoder.W_x"][5:]
            W = torch.cat([p["decoder.W_h"], p["decoder.W_x"][:5]])
            hs = FusedLSTM.apply(strokes, bias, state[0], state[1], W, mask, self.bf16)
        else:
            x = strokes if z is None else torch.cat([strokes, z[None].expand(steps, -1, -1)], -1)
            projected, outputs = cells.project_inputs(p, x), []
            for t in range(steps):
                h, state = cells.decoder_step(TORCH, p, hp, x[t], projected[t], state, None if mask is None else mask[t])
                outputs.append(h)
            hs = torch.stack(outputs)
        return (hs @ p["output.W"] + p["output.b"]).transpose(0, 1)

    def forward(self, batch, lengths, generator=None, dropout=None):
        """Returns (y, mu, sigma_hat); z is sampled with the reparameterisation trick (eq. 2):

            sigma = exp(sigma_hat / 2),  z = mu + sigma * N(0, I)
        """
        mu = presig = z = None
        if self.hp["conditional"]:
            mu, presig = self.encode(batch[:, 1:], lengths, dropout)
            noise = torch.randn(mu.shape, generator=generator, device=mu.device) if generator else torch.randn_like(mu)
            z = mu + torch.exp(presig / 2) * noise
        return self.decode(batch[:, :-1], z, dropout), mu, presig


# ---------------------------------------------------------------------------- loss (eq. 9-11)

def reconstruction_loss(y, target, num_mixture, mask_pen=False):
    """The reconstruction loss L_R = L_s + L_p (eq. 9), returned as ``(L_s, L_p)``:

        L_s = -1/N_max sum_{i=1..N_s} log( sum_{j=1..M} Pi_{j,i} N(dx_i, dy_i | mu_{x,j,i}, mu_{y,j,i},
                                                                   sigma_{x,j,i}, sigma_{y,j,i}, rho_{xy,j,i}) )
        L_p = -1/N_max sum_{i=1..N_max} sum_{k=1..3} p_{k,i} log q_{k,i}

    N_s is the sketch's length (the steps before its end-of-sketch row), N_max the padded length,
    p_{k,i} the pen state of the target and q_{k,i} the model's pen probabilities; both sums are
    averaged over the batch.  The mixture density is summed in log space with logsumexp, so no
    offset, however large, makes it 0 or NaN.  ``mask_pen`` counts pen states only up to N_s (the
    reference's evaluation); in training every step up to N_max counts.
    """
    log_pi, mu_x, mu_y, log_sx, log_sy, rho, pen_logits = cells.mixture_parameters(TORCH, y, num_mixture)
    log_density = cells.log_bivariate_normal(TORCH, target[..., 0:1], target[..., 1:2], mu_x, mu_y, log_sx, log_sy, rho)
    drawing = 1 - target[..., 4]                    # 1 for i <= N_s
    normaliser = target.shape[0] * target.shape[1]  # B * N_max
    offsets = -(torch.logsumexp(log_pi + log_density, -1) * drawing).sum() / normaliser    # L_s
    pen = -(target[..., 2:] * torch.log_softmax(pen_logits, -1)).sum(-1)                  # -sum_k p_k log q_k
    pen = (pen * drawing if mask_pen else pen).sum() / normaliser                           # L_p
    return offsets, pen


def kl_loss(mu, presig):
    """The Kullback-Leibler divergence of q(z | S) = N(mu, sigma^2) from N(0, I), per dimension of z (eq. 10):

        L_KL = -1/(2 N_z) sum_{k=1..N_z} (1 + sigma_hat_k - mu_k^2 - exp(sigma_hat_k))

    averaged over the batch (``presig`` is sigma_hat = log sigma^2)."""
    return -0.5 * torch.mean(1 + presig - mu * mu - torch.exp(presig))


def annealed_kl_weight(hp, step):
    """The KL term's weight at ``step``, annealed from ``kl_weight_start`` up to w_KL (``kl_weight``)::

        eta_step = 1 - (1 - eta_min) R^step
        Loss     = L_R + w_KL eta_step max(L_KL, KL_min)        (eq. 11 with the annealing)

    with R = ``kl_decay_rate``, eta_min = ``kl_weight_start`` / w_KL (so w_KL eta_step =
    w_KL - (w_KL - kl_weight_start) R^step, as the reference computes it) and KL_min =
    ``kl_tolerance``: below it the KL term has no gradient, the latent code keeps that much
    information whatever the weight."""
    return hp["kl_weight"] - (hp["kl_weight"] - hp["kl_weight_start"]) * hp["kl_decay_rate"] ** step


# ---------------------------------------------------------------------------- data

class Batches:
    """Normalised, padded training batches: (B, N_max + 1, 5) stroke-5 with S_0 first, and lengths."""

    def __init__(self, sketches, hp, scale, seed=0, training=True):
        self.sketches, self.hp, self.scale, self.training = sketches, hp, scale, training
        self.rng = np.random.default_rng(seed)
        if not sketches:
            raise AtelierError("no usable sketches left after cleaning (all empty, single points or too long)")

    def make(self, indices):
        hp, max_len = self.hp, self.hp["max_seq_len"]
        batch = np.zeros((len(indices), max_len + 1, 5), np.float32)
        batch[:, 0, 2] = 1  # S_0 = (0, 0, 1, 0, 0)
        lengths = np.zeros(len(indices), np.int64)
        for row, index in enumerate(indices):
            sketch = self.sketches[index].copy()
            sketch[:, :2] /= self.scale
            if self.training:
                sketch = augment(sketch, self.rng, hp["random_scale_factor"], hp["augment_stroke_prob"])
            batch[row, 1:] = to_stroke5(sketch, max_len)
            lengths[row] = len(sketch)
        return torch.from_numpy(batch), torch.from_numpy(lengths)

    def random(self):
        return self.make(self.rng.integers(0, len(self.sketches), self.hp["batch_size"]))

    def all(self):
        size = self.hp["batch_size"]
        for start in range(0, len(self.sketches), size):
            yield self.make(range(start, min(start + size, len(self.sketches))))


def recurrent_dropout(keep, generator=None, device="cpu"):
    """Inverted dropout masks on the LSTM candidate, one per step (Semeniuta et al. 2016)."""
    def mask(steps, batch, size):
        return torch.rand((steps, batch, size), generator=generator, device=device).lt_(keep).div_(keep)
    return mask if keep < 1 else None


# ---------------------------------------------------------------------------- files

def to_tensors(model):
    return {name: value.detach().cpu().numpy().astype(np.float32) for name, value in model.p.items()}


def load_torch_model(path, device="cpu"):
    """A model file -> (SketchRNN on ``device``, meta, the file's tensors: checkpoints keep Adam's moments there)."""
    tensors, meta = read_model(path, (KIND, CHECKPOINT_KIND))
    hp, meta["scale"] = check_model(path, tensors, meta)  # before anything is built from the numbers
    model = SketchRNN(hp)
    for name in parameter_shapes(hp):
        model.weights[name.replace(".", "__")].data = torch.from_numpy(
            np.ascontiguousarray(tensors[name], dtype=np.float32))
    return model.to(device), meta, tensors


def _checkpoint_state(path, meta, tensors, hp):
    """(steps, seconds, tensors) of a checkpoint, its training record and Adam moments checked."""
    training = meta.get("training")
    if not isinstance(training, dict):
        raise AtelierError(f"{shown(path)}: not a training checkpoint (no training record)")
    steps = check_int(path, "training steps", training.get("steps"), 0, 10 ** 12)
    seconds = check_number(path, "training seconds", training.get("seconds"), 0.0, 1e12)
    for name, (shape, _) in parameter_shapes(hp).items():
        for moment in ("adam.m.", "adam.v."):
            if moment + name not in tensors or tuple(tensors[moment + name].shape) != tuple(shape):
                raise AtelierError(f"{shown(path)}: optimiser state {moment + name!r} is missing or has the wrong shape")
    return steps, seconds, tensors


def fast_bf16(device):
    """True on CPUs whose matrix units (AMX) make bfloat16 products several times faster."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return device == "cpu" and bool(amx())


def pick_device(name=None):
    """``--device`` when given, else the project's choice (``ATELIER_DEVICE``, see core/device.py)."""
    return str(torch_device(name))


def keep_freed_memory():
    """Let glibc keep freed memory for the next training step instead of giving it back.

    A step allocates and frees tensors of tens to hundreds of MB; glibc maps those afresh each time,
    and the page faults cost 0.3-0.4 s of system time in a 1.4 s reference-size step.  M_MMAP_MAX = 0
    serves them from the heap and a 1 GiB trim threshold keeps the heap.  glibc (Linux) only.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim_threshold, mmap_max = -1, -4  # mallopt's M_TRIM_THRESHOLD, M_MMAP_MAX
    return bool(libc.mallopt(mmap_max, 0) and libc.mallopt(trim_threshold, 1 << 30))


# ---------------------------------------------------------------------------- training

def train(splits, out_path, hp, *, steps=None, minutes=None, resume=False, progress, seed=0,
          checkpoint_seconds=60.0, device=None, info=None, precision="auto", threads=None):
    """Train (or resume) and write the model to ``out_path``; returns the training summary.

    Every ``checkpoint_seconds`` and at the end the model is written atomically to ``out_path`` and
    the optimiser state to ``<out_path>.ckpt``; Ctrl-C or Cancel keep the last good one on disk.
    On the CPU it sets process-wide torch threads and glibc's allocator (:func:`cpu_threads`,
    :func:`keep_freed_memory`): training is meant to run in its own process (the CLI, the worker).
    """
    check_hyperparameters(hp, "hyperparameters", training=True)  # before a network of that size is built
    device = pick_device(device)
    threads = cpu_threads(threads) if device == "cpu" else None
    if device == "cpu":
        keep_freed_memory()
    torch.manual_seed(seed)
    checkpoint_path = out_path.with_name(out_path.name + ".ckpt")
    start_step, elapsed_before, scale = 0, 0.0, None
    model = SketchRNN(hp, seed)
    adam_state = None
    if resume and checkpoint_path.exists():
        model, meta, tensors = load_torch_model(checkpoint_path)
        hp, scale = model.hp, meta["scale"]
        check_hyperparameters(hp, checkpoint_path, training=True)
        start_step, elapsed_before, adam_state = _checkpoint_state(checkpoint_path, meta, tensors, hp)
    elif resume:
        raise AtelierError(f"{checkpoint_path}: no checkpoint to resume from")
    model.to(device)
    model.bf16 = precision == "bf16" or (precision == "auto" and fast_bf16(device))
    train_set = splits["train"]
    scale = scale or normalizing_scale(train_set)
    batches = Batches(train_set, hp, scale, seed + start_step)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["learning_rate"])
    if adam_state is not None:  # restore Adam's moments saved beside the weights
        for name, parameter in model.weights.items():
            dotted = name.replace("__", ".")
            optimizer.state[parameter] = {"step": torch.tensor(float(start_step)),
                                          "exp_avg": torch.from_numpy(adam_state["adam.m." + dotted]).to(device),
                                          "exp_avg_sq": torch.from_numpy(adam_state["adam.v." + dotted]).to(device)}
    dropout = recurrent_dropout(hp["recurrent_dropout_keep"], device=device)
    budget = minutes * 60 if minutes else None
    summary = {"steps": start_step, "seconds": elapsed_before, "sketches": len(train_set), "scale": scale,
               "device": device, "threads": threads, "recurrent_bf16": model.bf16, "data": info or {}}
    started, last_save, step, consistent = time.monotonic(), time.monotonic(), start_step, True
    history = []

    def save():
        summary.update(steps=step, seconds=round(elapsed_before + time.monotonic() - started, 1))
        meta = {"hyperparameters": hp, "scale": scale, "training": summary}
        weights = to_tensors(model)
        adam = {}
        for name, parameter in model.weights.items():
            state = optimizer.state.get(parameter)
            for moment, key in (("adam.m.", "exp_avg"), ("adam.v.", "exp_avg_sq")):
                # before the first step Adam's moments are zero: saved as such, so --resume works from there
                adam[moment + name.replace("__", ".")] = (state[key].cpu().numpy() if state else
                                                          np.zeros(tuple(parameter.shape), np.float32))
        save_model(checkpoint_path, CHECKPOINT_KIND, {**weights, **adam}, meta)
        save_model(out_path, KIND, weights, meta)

    try:
        if start_step == 0:  # a model exists: on disk at once, so Ctrl-C in the first seconds keeps one
            save()
            last_save = time.monotonic()
        progress.stage("training", steps if steps else (budget or 1))
        while True:
            done = step - start_step
            if (steps and done >= steps) or (budget and time.monotonic() - started >= budget):
                break
            kl_weight = annealed_kl_weight(hp, step)
            learning_rate = (hp["learning_rate"] - hp["min_learning_rate"]) * hp["decay_rate"] ** step + hp["min_learning_rate"]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            batch, lengths = (t.to(device) for t in batches.random())
            y, mu, presig = model(batch, lengths, dropout=dropout)
            offsets, pen = reconstruction_loss(y, batch[:, 1:], hp["num_mixture"])
            loss = offsets + pen
            kl = kl_loss(mu, presig) if hp["conditional"] else torch.zeros((), device=device)
            if hp["conditional"]:
                loss = loss + kl_weight * torch.clamp(kl, min=hp["kl_tolerance"])   # w_KL eta_step max(L_KL, KL_min)
            if not torch.isfinite(loss):
                raise AtelierError(f"training diverged at step {step} (loss {loss.item()}); "
                                   "the last good model is kept in the output file")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_value_(model.parameters(), hp["grad_clip"])  # the reference clips by value
            consistent = False
            optimizer.step()
            step += 1
            consistent = True
            history.append((offsets.item() + pen.item(), kl.item()))
            recon, kl_value = np.mean(history[-20:], axis=0)
            summary.update(recon_loss=round(float(recon), 4), kl_loss=round(float(kl_value), 4))
            if time.monotonic() - last_save > checkpoint_seconds:
                save()
                last_save = time.monotonic()
            progress.update(step - start_step if steps else time.monotonic() - started,
                            step=step, recon=float(recon), kl=float(kl_value))
    except (KeyboardInterrupt, Cancelled) as error:
        if consistent and step > start_step:
            save()  # interrupted between steps: the weights are a finished step, keep them
        if out_path.is_file():
            error.kept = str(out_path)  # the CLI and the worker say where the model is
        raise
    save()
    summary["sketches_per_second"] = round((step - start_step) * hp["batch_size"] / max(time.monotonic() - started, 1e-9), 2)
    return summary


@torch.no_grad()
def evaluate(model, sketches, scale, seed=0, device="cpu", progress=None):
    """The paper's L_R and L_KL on ``sketches`` (eval mode: no dropout, no augmentation, pen masked).
    ``progress`` sees the sketches done after every batch (so Esc or Ctrl-C stop a long evaluation)."""
    hp = model.hp
    if progress:
        progress.stage("evaluating", len(sketches))
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    totals, count = np.zeros(2), 0
    for batch, lengths in Batches(sketches, hp, scale, training=False).all():
        batch, lengths = batch.to(device), lengths.to(device)
        y, mu, presig = model(batch, lengths, generator=generator if hp["conditional"] else None)
        offsets, pen = reconstruction_loss(y, batch[:, 1:], hp["num_mixture"], mask_pen=True)
        kl = kl_loss(mu, presig).item() if hp["conditional"] else 0.0
        totals += np.array([offsets.item() + pen.item(), kl]) * len(batch)
        count += len(batch)
        if progress:
            progress.update(count)
    return {"recon_loss": float(totals[0] / count), "kl_loss": float(totals[1] / count), "sketches": count}
