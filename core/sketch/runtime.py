"""The numpy Sketch-RNN runtime: encode, sample, complete and interpolate without torch.

Blender's own Python has numpy but no torch, so the add-on draws with this.  The encoder runs the
cell functions of training (``cells.py``); the decoder runs the same equations on weights folded
for drawing one row at a time (:meth:`SketchModel._fold`, :class:`_Decoding`), where one sketch
costs one pass over the weights per pen move.  Both match the torch model to 1e-4 (tests).
"""

import contextlib
import ctypes
import functools
import math
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..modelfile import read_model
from ..validate import check_int, check_number, shown
from ..drawing.pen import to_stroke5
from . import cells
from .data import OFFSET_LIMIT

KIND = "sketch_rnn"   # the model-file kind (core/modelfile.py), of the numpy runtime and of training

# Sane ranges, checked before anything is built from a file's (or the command line's) numbers: the
# reference sizes are 256/512/128/20/250, and these bound a network to a few GB at the very most.
HYPERPARAMETER_RANGES = {
    "enc_rnn_size": (1, 4096), "dec_rnn_size": (1, 4096), "z_size": (1, 1024), "num_mixture": (1, 100),
    "max_seq_len": (1, 10000), "hyper_rnn_size": (1, 4096), "hyper_embedding_size": (1, 1024),
}
TRAINING_RANGES = {"batch_size": (1, 10000)}
TRAINING_NUMBERS = {
    "learning_rate": (1e-9, 10.0), "decay_rate": (0.0, 1.0), "min_learning_rate": (0.0, 10.0), "grad_clip": (0.0, 1e6),
    "kl_weight": (0.0, 1e6), "kl_weight_start": (0.0, 1e6), "kl_tolerance": (0.0, 1e6), "kl_decay_rate": (0.0, 1.0),
    "recurrent_dropout_keep": (1e-3, 1.0), "random_scale_factor": (0.0, 0.99), "augment_stroke_prob": (0.0, 1.0),
}
DECODERS = ("lstm", "layernorm", "hyper")
MAX_PARAMETERS = 200_000_000  # 800 MB of float32
RETRY_SEED_STRIDE = 7919  # a prime: the seeds of redrawn sketches never meet the seeds of neighbouring calls


def check_hyperparameters(hp, source, training=False):
    """Raise :class:`AtelierError` unless ``hp`` describes a model of sane size (and, with
    ``training``, sane training settings); returns ``hp``.  Runs before any array is built."""
    if not isinstance(hp, dict):
        raise AtelierError(f"{shown(source)}: hyperparameters are missing or not a JSON object")
    for name, (low, high) in HYPERPARAMETER_RANGES.items():
        if name in ("hyper_rnn_size", "hyper_embedding_size") and hp.get("decoder") != "hyper":
            continue
        check_int(source, name, hp.get(name), low, high)
    if hp.get("decoder") not in DECODERS:
        raise AtelierError(f"{shown(source)}: decoder is {str(hp.get('decoder'))[:40]!r}; "
                           f"expected one of {', '.join(DECODERS)}")
    if not isinstance(hp.get("conditional"), bool):
        raise AtelierError(f"{shown(source)}: conditional is {str(hp.get('conditional'))[:40]!r}; expected true or false")
    if training:
        for name, (low, high) in TRAINING_RANGES.items():
            check_int(source, name, hp.get(name), low, high)
        for name, (low, high) in TRAINING_NUMBERS.items():
            check_number(source, name, hp.get(name), low, high)
    count = sum(math.prod(shape) for shape, _ in parameter_shapes(hp).values())
    if count > MAX_PARAMETERS:
        raise AtelierError(f"{shown(source)}: these hyperparameters make {count:,} parameters; "
                           f"at most {MAX_PARAMETERS:,} are supported")
    return hp


def parameter_shapes(hp):
    """name -> (shape, initialiser) for every parameter of a model with hyperparameters ``hp``."""
    e, n, nz, m = hp["enc_rnn_size"], hp["dec_rnn_size"], hp["z_size"], hp["num_mixture"]
    decoder_input = 5 + (nz if hp["conditional"] else 0)
    shapes = {}
    if hp["conditional"]:
        for direction in ("fw", "bw"):
            shapes[f"encoder.{direction}.W_x"] = ((5, 4 * e), "glorot")
            shapes[f"encoder.{direction}.W_h"] = ((e, 4 * e), "ortho")
            shapes[f"encoder.{direction}.b"] = ((4 * e,), 0.0)
        shapes.update({"mu.W": ((2 * e, nz), "glorot"), "mu.b": ((nz,), 0.0),
                       "presig.W": ((2 * e, nz), "glorot"), "presig.b": ((nz,), 0.0),
                       "init.W": ((nz, cells.state_size(hp)), "glorot"), "init.b": ((cells.state_size(hp),), 0.0)})
    shapes.update({"decoder.W_x": ((decoder_input, 4 * n), "glorot"), "decoder.W_h": ((n, 4 * n), "ortho"),
                   "decoder.b": ((4 * n,), 0.0),
                   "output.W": ((n, 6 * m + 3), "glorot"), "output.b": ((6 * m + 3,), 0.0)})
    if hp["decoder"] in ("layernorm", "hyper"):
        shapes.update({"decoder.ln_gamma": ((4 * n,), 1.0), "decoder.ln_beta": ((4 * n,), 0.0),
                       "decoder.ln_c_gamma": ((n,), 1.0), "decoder.ln_c_beta": ((n,), 0.0)})
    if hp["decoder"] == "hyper":
        hn, he = hp["hyper_rnn_size"], hp["hyper_embedding_size"]
        shapes.update({"hyper.W_x": ((decoder_input + n, 4 * hn), "glorot"), "hyper.W_h": ((hn, 4 * hn), "ortho"),
                       "hyper.b": ((4 * hn,), 0.0)})
        for name in ("x", "h"):  # scaling: embedding starts at 1, projection at 0.1 / he -> scale 0.1
            shapes.update({f"hyper.{name}_z": ((hn, 4 * he), 0.0), f"hyper.{name}_zb": ((4 * he,), 1.0),
                           f"hyper.{name}_d": ((4, he, n), 0.1 / he)})
        shapes.update({"hyper.b_z": ((hn, 4 * he), "normal"), "hyper.b_d": ((4, he, n), 0.0)})
    return shapes


def check_model(path, tensors, meta):
    """The hyperparameters, scale and every parameter's presence and shape of a loaded model file,
    checked before anything is built from them; returns ``(hp, scale)``."""
    hp = check_hyperparameters(meta.get("hyperparameters"), path)
    scale = check_number(path, "scale", meta.get("scale"), 1e-9, 1e9)
    for name, (shape, _) in parameter_shapes(hp).items():
        if name not in tensors:
            raise AtelierError(f"{shown(path)}: not a complete Sketch-RNN model (parameter {name!r} is missing)")
        if tuple(tensors[name].shape) != tuple(shape):
            raise AtelierError(f"{shown(path)}: parameter {name!r} has shape {tuple(tensors[name].shape)}, "
                               f"its hyperparameters make {tuple(shape)}")
    return hp, scale


@functools.cache
def _openblas_thread_controls():
    """[(get, set)] of the thread count of each OpenBLAS loaded (numpy's, and any other module's
    loaded by the first drawing), found through /proc/self/maps: Linux only; the symbol names
    differ between builds."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    controls = []
    mapped = {fields[5] for fields in (line.split(None, 5) for line in maps.splitlines()) if len(fields) == 6}
    for library in sorted(path for path in mapped if "openblas" in path.rsplit("/", 1)[-1]):
        try:
            handle = ctypes.CDLL(library)
        except OSError:
            continue
        names = [(f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}")
                 for prefix in ("openblas", "scipy_openblas") for suffix in ("64_", "", "_64")]
        controls += [(getattr(handle, get), getattr(handle, set_)) for get, set_ in names
                     if hasattr(handle, get) and hasattr(handle, set_)][:1]
    return controls


@contextlib.contextmanager
def one_blas_thread():
    """Hold BLAS to one thread meanwhile.

    Drawing does one small matrix-vector product per pen move.  OpenBLAS splits even those over
    its threads, and on a busy machine their hand-offs and spinning cost more than the product
    (a 256 x 1147 product: 12 us on one thread, 31 us on two, with other jobs running).
    """
    controls = _openblas_thread_controls()
    threads = [get() for get, _ in controls]
    for _, set_ in controls:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), count in zip(controls, threads):
            set_(count)


class SketchModel:
    """A trained model file, ready to draw.  Drawings in and out are stroke-3 in data units."""

    def __init__(self, path):
        self.path = Path(path)
        tensors, meta = read_model(self.path, KIND)
        self.hp, self.scale = check_model(self.path, tensors, meta)
        self.meta = meta
        self.p = {name: tensors[name].astype(np.float32) for name in parameter_shapes(self.hp)}
        self.folded = self._fold()
        # mu_x, mu_y, log sigma_x, log sigma_y, rho's pre-activation of a component, and their clipping (cells.py)
        self._gaussian_columns = self.hp["num_mixture"] * np.arange(1, 6)
        (sigma_low, sigma_high), (rho_low, rho_high) = cells.LOG_SIGMA_RANGE, cells.RHO_RANGE
        self._gaussian_clip = (np.float32([-np.inf, -np.inf, sigma_low, sigma_low, rho_low]),
                               np.float32([np.inf, np.inf, sigma_high, sigma_high, rho_high]))

    @property
    def conditional(self):
        return bool(self.hp["conditional"])

    @property
    def name(self):
        return self.path.name.split(".")[0]

    def _prepare(self, stroke3):
        """Data units -> normalised stroke-5 (length-checked) for the encoder or the decoder."""
        stroke3 = np.asarray(stroke3, np.float32).reshape(-1, 3).copy()
        if len(stroke3) < 1:
            raise AtelierError("the drawing has no points")
        stroke3[:, :2] = np.clip(stroke3[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT) / self.scale
        max_len = self.hp["max_seq_len"]
        if len(stroke3) > max_len:  # keep the start; the model never saw longer sketches
            stroke3 = stroke3[:max_len]
        return to_stroke5(stroke3, max_len), len(stroke3)

    # ------------------------------------------------------------------ encoder
    def encode(self, drawings):
        """Stroke-3 drawings -> (mu, sigma_hat) of q(z | drawing), each (len(drawings), N_z)."""
        with one_blas_thread():
            return self._encode(drawings)

    def _encode(self, drawings):
        if not self.conditional:
            raise AtelierError(f"{self.path}: an unconditional model has no encoder (train without --unconditional)")
        prepared = [self._prepare(d) for d in drawings]
        strokes = np.stack([s for s, _ in prepared])
        lengths = np.array([n for _, n in prepared])
        e, batch = self.hp["enc_rnn_size"], len(prepared)
        finals = []
        for direction in ("fw", "bw"):
            inputs = strokes if direction == "fw" else np.stack(
                [np.concatenate([s[:n][::-1], s[n:]]) for s, n in zip(strokes, lengths)])
            projected = cells.project_inputs(self.p, inputs, f"encoder.{direction}.").transpose(1, 0, 2)
            h = c = np.zeros((batch, e), np.float32)
            final = np.zeros((batch, e), np.float32)
            for t in range(lengths.max()):
                h, c = cells.lstm_step(cells.NUMPY, self.p[f"encoder.{direction}.W_h"], self.p[f"encoder.{direction}.b"],
                                       projected[t], (h, c))
                final[lengths - 1 == t] = h[lengths - 1 == t]
            finals.append(final)
        hidden = np.concatenate(finals, -1)
        return hidden @ self.p["mu.W"] + self.p["mu.b"], hidden @ self.p["presig.W"] + self.p["presig.b"]

    # ------------------------------------------------------------------ decoder
    def _fold(self):
        """Fold the decoder's weights once for drawing one row at a time (see :class:`_Decoding`).

        * The row S = (dx, dy, p1, p2, p3) is one-hot in the pen, so S W_x = dx W_x[0] + dy W_x[1] +
          W_x[2 + pen]: no product per step.  The z rows are folded per sketch in :class:`_Decoding`.
        * The new h feeds three products: the output layer now, the recurrent gates (and the hyper
          cell's input) at the next step; they are one matrix, so each step reads each weight once.
        * sigmoid(a) = (tanh(a / 2) + 1) / 2: the input, forget and output gates' weights (or their
          layer-norm gain and bias) are halved, exactly, and the forget bias of 1 is added to the
          bias, so one tanh over all four gates gives every gate's non-linearity.
        """
        p, hp, n = self.p, self.hp, self.hp["dec_rnn_size"]
        folded, inputs = {}, []  # inputs: (W_x, b) of the main cell, then of the hyper cell

        def halve(weights, size):  # i, j, f, o blocks: i, f, o halved (sigmoid), j (tanh) kept
            return weights * np.repeat(np.float32([0.5, 1.0, 0.5, 0.5]), size)

        def forget(size):
            return np.repeat(np.float32([0, 0, cells.FORGET_BIAS, 0]), size)

        if hp["decoder"] == "lstm":
            inputs.append((halve(p["decoder.W_x"], n), halve(p["decoder.b"] + forget(n), n)))
            recurrent = [halve(p["decoder.W_h"], n)]
        else:  # layer norm is scale-invariant: halve its gain and bias instead of the weights
            folded["ln_gamma"] = halve(p["decoder.ln_gamma"], n)
            folded["ln_beta"] = halve(p["decoder.ln_beta"] + forget(n), n)
            inputs.append((p["decoder.W_x"], np.zeros(4 * n, np.float32)))
            recurrent = [p["decoder.W_h"]]
        if hp["decoder"] == "hyper":
            m, e, rows = hp["hyper_rnn_size"], hp["hyper_embedding_size"], len(p["decoder.W_x"])
            hyper_W_x = halve(p["hyper.W_x"], m)
            inputs.append((hyper_W_x[:rows], halve(p["hyper.b"] + forget(m), m)))
            recurrent.append(hyper_W_x[rows:])
            folded["hyper"] = np.concatenate([halve(p["hyper.W_h"], m), p["hyper.x_z"], p["hyper.h_z"],
                                              p["hyper.b_z"]], 1)
            folded["hyper_b"] = np.concatenate([np.zeros(4 * m, np.float32), p["hyper.x_zb"], p["hyper.h_zb"],
                                                np.zeros(4 * e, np.float32)])
            folded["hyper_d"] = np.concatenate([p["hyper.x_d"], p["hyper.h_d"], p["hyper.b_d"]])  # (12, e, n)
        folded["W_x"] = np.concatenate([W for W, _ in inputs], 1)
        folded["b_x"] = np.concatenate([b for _, b in inputs])
        folded["recurrent"] = np.concatenate(recurrent + [p["output.W"]], 1)
        return folded

    def initial_state(self, z, batch):
        if z is None:
            return cells.split_state(np.zeros((batch, cells.state_size(self.hp)), np.float32), self.hp)
        return cells.split_state(np.tanh(z @ self.p["init.W"] + self.p["init.b"]), self.hp)

    def outputs(self, inputs, z=None):
        """Teacher-forced decoder outputs y (B, T, 6M+3) for stroke-5 inputs (B, T, 5) (tests compare with torch)."""
        inputs = np.asarray(inputs, np.float32)
        decoding, ys = _Decoding(self, z, len(inputs)), []
        for t in range(inputs.shape[1]):
            ys.append(decoding.step(inputs[:, t, 0], inputs[:, t, 1], inputs[:, t, 2:].argmax(-1)))
        return np.stack(ys, 1)

    def sample_drawings(self, count=1, temperature=0.5, seed=0, attempts=4, **options):
        """Like :meth:`sample`, but sketches the model ended at once (no line) are drawn again."""
        sketches = self.sample(count, temperature, seed, **options)
        for attempt in range(1, attempts):
            empty = [i for i, s in enumerate(sketches) if len(s) < 2]
            if not empty:
                break
            z = options.get("z")
            retry = self.sample(len(empty), temperature, seed + RETRY_SEED_STRIDE * attempt,
                                **dict(options, z=None if z is None else np.asarray(z)[empty]))
            for i, sketch in zip(empty, retry):
                sketches[i] = sketch
        return sketches

    def sample(self, count=1, temperature=0.5, seed=0, z=None, prefix=None, max_len=None):
        """Draw ``count`` sketches -> list of stroke-3 arrays (data units).

        ``z``: (count, N_z) latent codes (conditional models; default N(0, I)).  ``prefix``: a
        stroke-3 drawing the decoder reads first (teacher forcing) and then continues; the result
        holds only the new rows.  ``temperature`` scales the mixture weights, the pen logits and
        the variances as in the paper (section 3.3).
        """
        count = check_int("sample", "the number of sketches", count, 1, 100_000)
        temperature = check_number("sample", "the temperature", temperature, 0.0, 100.0)
        seed = check_int("sample", "the seed", seed, 0, 2 ** 63 - 1)
        if max_len is not None:
            max_len = check_int("sample", "the longest sketch", max_len, 1, 100_000)
        if z is not None and (np.size(z) != count * self.hp["z_size"] or not np.all(np.isfinite(z))):
            raise AtelierError(f"sample: z must hold {count} x {self.hp['z_size']} finite numbers")
        with one_blas_thread():
            return self._sample(count, temperature, seed, z, prefix, max_len)

    def _sample(self, count, temperature, seed, z, prefix, max_len):
        rng = np.random.default_rng(seed)
        if self.conditional and z is None:
            z = rng.standard_normal((count, self.hp["z_size"])).astype(np.float32)
        z = None if not self.conditional else np.asarray(z, np.float32).reshape(count, -1)
        decoding = _Decoding(self, z, count)
        dx, dy, pen = np.zeros(count, np.float32), np.zeros(count, np.float32), np.zeros(count, np.intp)  # S_0
        if prefix is not None and len(prefix):
            rows, length = self._prepare(prefix)
            for row in rows[:length]:
                decoding.step(dx, dy, pen)
                dx, dy, pen = np.full(count, row[0]), np.full(count, row[1]), np.full(count, row[2:].argmax())
        steps = max_len or self.hp["max_seq_len"]
        drawn = np.zeros((count, steps, 3), np.float32)
        lengths = np.full(count, steps)
        finished = np.zeros(count, bool)
        for t in range(steps):
            dx, dy, pen = self._draw(decoding.step(dx, dy, pen), temperature, rng)
            now_finished = (pen == 2) & ~finished
            lengths[now_finished] = t
            finished |= now_finished
            drawn[:, t, 0], drawn[:, t, 1], drawn[:, t, 2] = dx, dy, pen == 1
            if finished.all():
                break
        sketches = []
        for sketch, length in zip(drawn, lengths):  # rows before the 'finished' pen state
            sketch = sketch[:length].copy()
            sketch[:, :2] *= self.scale
            if len(sketch):
                sketch[-1, 2] = 1
            sketches.append(sketch)
        return sketches

    def _draw(self, y, temperature, rng):
        """Sample the next row per sketch from the GMM and pen softmax at ``temperature`` -> (dx, dy, pen).

        softmax(log_softmax(logits) / T) = softmax(logits / T), and a categorical draw compares a
        uniform with the unnormalised cumulative weights.  A row costs a few dozen array operations
        whatever the count: for one sketch their number, not their size, is the cost.
        """
        temperature = max(float(temperature), 1e-3)
        m, count = self.hp["num_mixture"], len(y)
        weights = y[:, :m] / temperature
        weights = np.exp(weights - np.maximum.reduce(weights, -1, keepdims=True)).cumsum(-1)
        component = (weights >= rng.random((count, 1)) * weights[:, -1:]).argmax(-1)  # the first; the last always is
        low, high = self._gaussian_clip
        gaussian = y[np.arange(count)[:, None], component[:, None] + self._gaussian_columns]
        mu_x, mu_y, log_sx, log_sy, rho = np.minimum(np.maximum(gaussian, low), high).T
        scale = temperature ** 0.5
        e1, e2 = rng.standard_normal((2, count))
        dx = mu_x + np.exp(log_sx) * scale * e1
        rho = np.tanh(rho)
        dy = mu_y + np.exp(log_sy) * scale * (rho * e1 + np.sqrt(1 - rho * rho) * e2)
        pen = y[:, 6 * m:] / temperature
        pen = np.exp(pen - np.maximum.reduce(pen, -1, keepdims=True)).cumsum(-1)
        return dx.astype(np.float32), dy.astype(np.float32), (pen >= rng.random((count, 1)) * pen[:, -1:]).argmax(-1)


class _Decoding:
    """The decoder of a batch of sketches being drawn, one row at a time (eq. 3-6).

    The equations of :func:`cells.decoder_step` on the weights folded by ``SketchModel._fold``
    (tests check it against the torch model).  A step does one product with the new h (and one
    with the new hyper h): at the reference size that 512 x 2171 product is most of the time.
    """

    def __init__(self, model, z, count):
        self.hp, self.p, self.f = model.hp, model.p, model.folded
        W_x = self.f["W_x"]
        # per sketch and pen state: the pen row of W_x + z W_x[5:] + the bias -> (count, 3, K)
        constant = self.f["b_x"] + (0.0 if z is None else z @ W_x[5:])
        width = W_x.shape[1]
        self.pen_rows = np.broadcast_to(np.reshape(constant, (-1, 1, width)) + W_x[2:5], (count, 3, width))
        self.W_dx, self.W_dy, self.rows = W_x[0], W_x[1], np.arange(count)
        self.state = model.initial_state(z, count)
        self.products = self.state[0] @ self.f["recurrent"]
        if self.hp["decoder"] == "hyper":
            self.hyper_products = self.state[2] @ self.f["hyper"] + self.f["hyper_b"]

    @staticmethod
    def _update(gates, c, n):
        """LSTM cell update on pre-activations whose i, f, o are halved: one tanh gives all gates."""
        t = np.tanh(gates)
        s = t * 0.5 + 0.5  # sigmoid of the i, f, o blocks
        c = s[:, 2 * n:3 * n] * c + s[:, :n] * t[:, n:2 * n]
        return c, s[:, 3 * n:]

    def step(self, dx, dy, pen):
        """Read the previous row (dx, dy, pen state 0/1/2 per sketch) -> the outputs y (count, 6M+3)."""
        p, f, kind, n = self.p, self.f, self.hp["decoder"], self.hp["dec_rnn_size"]
        x = self.pen_rows[self.rows, pen] + dx[:, None] * self.W_dx + dy[:, None] * self.W_dy
        recurrent = self.products[:, :4 * n]
        if kind == "lstm":
            c, o = self._update(x + recurrent, self.state[1], n)
            h = np.tanh(c) * o
            self.state = (h, c)
        else:
            if kind == "layernorm":
                gates = x + recurrent
            else:
                h, c, hyper_h, hyper_c = self.state
                m, e = self.hp["hyper_rnn_size"], self.hp["hyper_embedding_size"]
                hyper_c, hyper_o = self._update(x[:, 4 * n:] + self.products[:, 4 * n:4 * (n + m)]
                                                + self.hyper_products[:, :4 * m], hyper_c, m)
                hyper_h = np.tanh(hyper_c) * hyper_o
                self.hyper_products = hyper_h @ f["hyper"] + f["hyper_b"]
                # 12 embeddings (x, h, b scalings of each gate) -> 12 gate-sized vectors, one batched product
                embeddings = self.hyper_products[:, 4 * m:].reshape(-1, 12, e).transpose(1, 0, 2)  # (12, count, e)
                scales = np.matmul(embeddings, f["hyper_d"]).transpose(1, 0, 2).reshape(-1, 3, 4 * n)
                gates = scales[:, 0] * x[:, :4 * n] + scales[:, 1] * recurrent + scales[:, 2] + p["decoder.b"]
            gates = cells._layer_norm_gates(cells.NUMPY, gates, f["ln_gamma"], f["ln_beta"], n)
            c, o = self._update(gates, self.state[1], n)
            h = np.tanh(cells.NUMPY.layer_norm(c, p["decoder.ln_c_gamma"], p["decoder.ln_c_beta"])) * o
            self.state = (h, c) if kind == "layernorm" else (h, c, hyper_h, hyper_c)
        self.products = h @ f["recurrent"]
        return self.products[:, -len(p["output.b"]):] + p["output.b"]


def slerp(a, b, t):
    """Spherical interpolation between latent codes (the paper's figure 7 interpolations)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cosine = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cosine, -1, 1))
    if omega < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)
