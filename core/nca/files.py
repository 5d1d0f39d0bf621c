"""μNCA model files: the Atelier safetensors model (float and int8 weights) and the compact binary.

A model file of kind ``nca`` holds tensors ``w`` (C x 4C float32), ``b`` (C), and their
quantised form ``w_q``, ``w_scale``, ``block_scale``, ``b_q``, ``b_scale`` (see quantize.py); its metadata
has ``hyperparameters`` (channels, params) and ``training`` (the summary of the run).
A compact binary (``.nca``) holds the quantised form only; its float weights are the
dequantised ones.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AtelierError
from ..modelfile import read_model, save_model
from ..validate import open_regular, read_file, shown
from .rule import CHANNEL_COUNTS, parameter_count, seed_state
from .quantize import MAGIC, SCALES, check_quantized, dequantize, from_binary, quantize

KIND = "nca"
WEIGHT_LIMIT = 100.0  # a trained rule has |W| < 5; far larger values mean a corrupt file
HORIZONS = (1000, 2000)  # steps from a seed at which the judge looks at a texture (docs/nca.md, Training)
STATE_LIMIT = 1e4  # a trained state stays within about [-1, 1] (overflow penalty); half floats end at 65504
BINARY_LIMIT = 4096  # a compact binary of 12 channels is 638 bytes
CHECK_SIZE = 32  # cells a side of the grid the rollout check grows (under a second for 2000 steps)


@dataclass
class NCA:
    w: np.ndarray  # (C, 4C) float32
    b: np.ndarray  # (C,) float32
    quantized: dict
    meta: dict = field(default_factory=dict)

    @property
    def channels(self):
        return self.w.shape[0]

    @property
    def params(self):
        return parameter_count(self.channels)

    def weights(self, quantized):
        """(W, b) float32: the trained floats, or the dequantised int8 ones."""
        return dequantize(self.quantized) if quantized else (self.w, self.b)

    @property
    def name(self):
        return self.meta.get("name", "nca")


def from_float(w, b, meta=None):
    w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
    return NCA(w, b, quantize(w, b), dict(meta or {}))


def save(path, model):
    meta = {"name": model.name, **model.meta,
            "hyperparameters": {**model.meta.get("hyperparameters", {}), "channels": model.channels,
                                "params": model.params},
            "quantization": "int8 symmetric; W scaled per row times per input block (s, p, |s|, |p|), "
                            "b by one scale; float16 scales (see core/nca/quantize.py)"}
    save_model(path, KIND, {"w": model.w, "b": model.b, **model.quantized}, meta)


def load(path):
    """Load a ``.safetensors`` model or a compact ``.nca`` binary; AtelierError on any problem."""
    path = Path(path)
    with open_regular(path, "model file") as handle:  # FIFOs and devices refused, never waited on
        try:
            head = handle.read(4)
        except OSError as error:
            raise AtelierError(f"{shown(path)}: cannot read model file ({error.strerror or error})") from None
    if head == MAGIC:
        q = from_binary(read_file(path, BINARY_LIMIT, "μNCA binary"), shown(path))
        w, b = dequantize(q)
        return NCA(w, b, q, {"name": path.stem})
    tensors, meta = read_model(path, KIND)
    tensors.setdefault("block_scale", np.ones(4, np.float32))  # files from before block scales: rows only
    missing = {"w", "b", "w_q", "w_scale", "b_q", "b_scale"} - set(tensors)
    if missing:
        raise AtelierError(f"{path}: μNCA model lacks tensors {sorted(missing)}")
    w, b = tensors["w"].astype(np.float32), tensors["b"].astype(np.float32)
    channels = w.shape[0] if w.ndim == 2 else -1
    if channels not in CHANNEL_COUNTS or w.shape != (channels, 4 * channels) or b.shape != (channels,) \
            or tensors["w_q"].shape != w.shape or tensors["b_q"].shape != b.shape \
            or tensors["w_scale"].shape != (channels,) or tensors["block_scale"].shape != (4,) \
            or tensors["b_scale"].shape != (1,):
        raise AtelierError(f"{path}: μNCA tensors have inconsistent shapes (W {w.shape}, b {b.shape})")
    if np.abs(w).max() > WEIGHT_LIMIT or np.abs(b).max() > WEIGHT_LIMIT:
        raise AtelierError(f"{path}: weights out of range (|value| > {WEIGHT_LIMIT}); the file is corrupt")
    q = {k: tensors[k] for k in ("w_q", "b_q", *SCALES)}
    q["w_q"], q["b_q"] = q["w_q"].astype(np.int8), q["b_q"].astype(np.int8)
    check_quantized(q, str(path))
    return NCA(w, b, q, {"name": meta.get("name", path.stem), **meta})


def check_rollout(model, name, quantized=True, steps=max(HORIZONS), size=CHECK_SIZE, seed=0, progress=None,
                  action="exported"):
    """Refuse (AtelierError naming ``name``) a rule whose state leaves float range (NaN, Inf) or
    grows past :data:`STATE_LIMIT` within ``steps`` steps of a ``size``x``size`` seed: exported or
    baked, such a model gives a black (or NaN) texture.  Weights in range are no guarantee: a rule
    trained a few iterations, or forged, can still grow without bound.  Numpy only (Blender)."""
    from .runtime import Runtime
    w, b = model.weights(quantized)
    runtime = Runtime(w, b)
    state = seed_state(np.random.default_rng(seed), 1, model.channels, size, size)[0]
    if progress:
        progress.stage("checking the rule stays bounded", total=steps)
    done = 0
    with np.errstate(all="ignore"):
        while done < steps:
            chunk = min(16, steps - done)
            state = runtime.run(state, chunk)
            done += chunk
            check_state(state, name, done, quantized, action)
            if progress:
                progress.update(done)


def check_state(state, name, steps, quantized=True, action="exported"):
    """AtelierError naming ``name`` if a state grown ``steps`` steps is not finite or overflows."""
    with np.errstate(all="ignore"):
        peak = float(np.abs(state).max()) if np.size(state) else 0.0
    if not np.isfinite(peak) or peak > STATE_LIMIT:
        what = "is no longer finite (NaN or Inf)" if not np.isfinite(peak) else f"reaches {peak:.3g}"
        raise AtelierError(
            f"{name}: the {'int8' if quantized else 'float'} rule diverges: its state {what} within {steps} "
            f"steps (a texture must stay within ±{STATE_LIMIT:g} for {max(HORIZONS)} steps); it would render "
            f"black, so it is not {action}. Train it longer, or use another model")
