"""The numpy Sketch-RNN runtime: encode, sample, complete and interpolate without torch.

Blender's own Python has numpy but no torch, so the add-on draws with this.  It uses the same
cell functions as training (``cells.py``), and matches the torch model to 1e-4.
"""

from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..modelfile import read_model
from . import cells
from .strokes import OFFSET_LIMIT, to_stroke5

KIND = "sketch_rnn"


class SketchModel:
    """A trained model file, ready to draw.  Drawings in and out are stroke-3 in data units."""

    def __init__(self, path):
        self.path = Path(path)
        tensors, meta = read_model(self.path, KIND)
        self.hp, self.scale = meta["hyperparameters"], float(meta["scale"])
        self.meta = meta
        self._z_projected = None  # (z, z W_x[5:]) of the sketches being drawn
        self.p = {name: value.astype(np.float32) for name, value in tensors.items() if not name.startswith("adam.")}
        missing = [name for name in ("decoder.W_x", "decoder.W_h", "output.W") if name not in self.p]
        if missing:
            raise AtelierError(f"{self.path}: not a complete Sketch-RNN model (missing {', '.join(missing)})")

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
    def initial_state(self, z, batch):
        if z is None:
            return cells.split_state(np.zeros((batch, cells.state_size(self.hp)), np.float32), self.hp)
        return cells.split_state(np.tanh(z @ self.p["init.W"] + self.p["init.b"]), self.hp)

    def _step(self, previous, z, state):
        """One decoder step from the previous stroke-5 rows (B, 5) -> (y, state).

        [S, z] W_x = S W_x[:5] + z W_x[5:]; the z half is the same at every step and computed once.
        """
        x = previous if z is None else np.concatenate([previous, z], -1)
        if z is not None and (self._z_projected is None or self._z_projected[0] is not z):
            self._z_projected = (z, z @ self.p["decoder.W_x"][5:])
        projected = previous @ self.p["decoder.W_x"][:5] + (0.0 if z is None else self._z_projected[1])
        h, state = cells.decoder_step(cells.NUMPY, self.p, self.hp, x, projected, state)
        return h @ self.p["output.W"] + self.p["output.b"], state

    def outputs(self, inputs, z=None):
        """Teacher-forced decoder outputs y (B, T, 6M+3) for stroke-5 inputs (B, T, 5) (tests compare with torch)."""
        inputs = np.asarray(inputs, np.float32)
        state, ys = self.initial_state(z, len(inputs)), []
        for t in range(inputs.shape[1]):
            y, state = self._step(inputs[:, t], z, state)
            ys.append(y)
        return np.stack(ys, 1)

    def sample_drawings(self, count=1, temperature=0.5, seed=0, attempts=4, **options):
        """Like :meth:`sample`, but sketches the model ended at once (no line) are drawn again."""
        sketches = self.sample(count, temperature, seed, **options)
        for attempt in range(1, attempts):
            empty = [i for i, s in enumerate(sketches) if len(s) < 2]
            if not empty:
                break
            z = options.get("z")
            retry = self.sample(len(empty), temperature, seed + 7919 * attempt,
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
        rng = np.random.default_rng(seed)
        if self.conditional and z is None:
            z = rng.standard_normal((count, self.hp["z_size"])).astype(np.float32)
        z = None if not self.conditional else np.asarray(z, np.float32).reshape(count, -1)
        state = self.initial_state(z, count)
        previous = np.tile(np.array([0, 0, 1, 0, 0], np.float32), (count, 1))
        if prefix is not None and len(prefix):
            rows, length = self._prepare(prefix)
            for row in rows[:length]:
                _, state = self._step(previous, z, state)
                previous = np.tile(row, (count, 1))
        steps = max_len or self.hp["max_seq_len"]
        drawn = np.zeros((count, steps, 3), np.float32)
        lengths = np.full(count, steps)
        finished = np.zeros(count, bool)
        for t in range(steps):
            y, state = self._step(previous, z, state)
            previous = self._draw(y, temperature, rng)
            now_finished = (previous[:, 4] > 0) & ~finished
            lengths[now_finished] = t
            finished |= now_finished
            drawn[:, t] = previous[:, [0, 1, 3]]
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
        """Sample the next stroke-5 row per sketch from the GMM and pen softmax at ``temperature``."""
        temperature = max(float(temperature), 1e-3)
        log_pi, mu_x, mu_y, log_sx, log_sy, rho, pen_logits = cells.mixture_parameters(
            cells.NUMPY, y, self.hp["num_mixture"])
        count = len(y)
        pi = np.exp(cells.NUMPY.log_softmax(log_pi / temperature))
        component = (pi.cumsum(-1) < rng.random((count, 1))).sum(-1).clip(0, pi.shape[-1] - 1)
        rows = np.arange(count)
        sx = np.exp(log_sx[rows, component]) * np.sqrt(temperature)
        sy = np.exp(log_sy[rows, component]) * np.sqrt(temperature)
        r = rho[rows, component]
        e1, e2 = rng.standard_normal((2, count))
        dx = mu_x[rows, component] + sx * e1
        dy = mu_y[rows, component] + sy * (r * e1 + np.sqrt(1 - r * r) * e2)
        pen = np.exp(cells.NUMPY.log_softmax(pen_logits / temperature))
        state = (pen.cumsum(-1) < rng.random((count, 1))).sum(-1).clip(0, 2)
        result = np.zeros((count, 5), np.float32)
        result[:, 0], result[:, 1] = dx, dy
        result[rows, 2 + state] = 1
        return result


def slerp(a, b, t):
    """Spherical interpolation between latent codes (the paper's figure 7 interpolations)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cosine = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cosine, -1, 1))
    if omega < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)
