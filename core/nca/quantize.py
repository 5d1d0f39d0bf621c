"""One byte a parameter: int8 weights with per-row scales, and the compact binary file.

Quantisation (symmetric, round to nearest):

    W[i, j] ≈ w_scale[i] · Wq[i, j]     Wq int8 in [-127, 127], one scale per output channel i
    b[i]    ≈ b_scale    · bq[i]        bq int8, one scale for the bias vector

Every runtime and code generator works from these dequantised numbers (float32), so they
all compute the same rule.

The compact binary (``.nca``), little-endian, C(4C+1) + 4C + 10 bytes (≤ parameters + 58):

    offset 0   4 bytes   magic b"uNCA"
           4   1 byte    format version (1)
           5   1 byte    C, the number of channels
           6   4(C+1)    float32 scales: w_scale[0..C-1], then b_scale
                 C·4C    int8 Wq, row-major (row i = output channel i; columns s, p, |s|, |p|)
                 C       int8 bq
"""

import struct

import numpy as np

from ..errors import AtelierError
from .rule import PARAMS_TO_CHANNELS

MAGIC = b"uNCA"
BINARY_VERSION = 1
LIMIT = 127


def quantize(w, b):
    """Float (C, 4C) and (C,) arrays -> dict of int8 weights and float32 scales."""
    w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
    w_scale = np.maximum(np.abs(w).max(1), 1e-12) / LIMIT
    b_scale = np.float32(max(float(np.abs(b).max()), 1e-12) / LIMIT)
    return {"w_q": np.clip(np.rint(w / w_scale[:, None]), -LIMIT, LIMIT).astype(np.int8),
            "w_scale": w_scale.astype(np.float32),
            "b_q": np.clip(np.rint(b / b_scale), -LIMIT, LIMIT).astype(np.int8),
            "b_scale": np.array([b_scale], np.float32)}


def dequantize(q):
    """Quantised dict -> float32 (W, b) exactly as every runtime uses them."""
    w = q["w_q"].astype(np.float32) * q["w_scale"].astype(np.float32)[:, None]
    b = q["b_q"].astype(np.float32) * np.float32(q["b_scale"][0])
    return w.astype(np.float32), b.astype(np.float32)


def to_binary(q):
    channels = q["w_q"].shape[0]
    return (MAGIC + struct.pack("<BB", BINARY_VERSION, channels)
            + np.concatenate([q["w_scale"], q["b_scale"]]).astype("<f4").tobytes()
            + q["w_q"].astype(np.int8).tobytes() + q["b_q"].astype(np.int8).tobytes())


def from_binary(data, name="model"):
    """Parse the compact binary; every malformation is an AtelierError naming ``name``."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise AtelierError(f"{name}: not a μNCA binary (no 'uNCA' magic)")
    version, channels = struct.unpack("<BB", data[4:6])
    if version != BINARY_VERSION:
        raise AtelierError(f"{name}: μNCA binary version {version} is not supported (expected {BINARY_VERSION})")
    if channels not in PARAMS_TO_CHANNELS.values():
        raise AtelierError(f"{name}: {channels} channels is not a μNCA size (4, 6, 8 or 12)")
    expected = 6 + 4 * (channels + 1) + channels * 4 * channels + channels
    if len(data) != expected:
        raise AtelierError(f"{name}: truncated or padded μNCA binary ({len(data)} bytes, expected {expected})")
    scales = np.frombuffer(data, "<f4", channels + 1, 6).astype(np.float32)
    offset = 6 + 4 * (channels + 1)
    w_q = np.frombuffer(data, np.int8, channels * 4 * channels, offset).reshape(channels, 4 * channels)
    b_q = np.frombuffer(data, np.int8, channels, offset + w_q.size)
    q = {"w_q": w_q.copy(), "w_scale": scales[:channels].copy(), "b_q": b_q.copy(), "b_scale": scales[channels:].copy()}
    check_quantized(q, name)
    return q


def check_quantized(q, name):
    if not all(np.all(np.isfinite(q[k])) and np.all(q[k] >= 0) and np.all(q[k] < 1e3) for k in ("w_scale", "b_scale")):
        raise AtelierError(f"{name}: quantisation scales out of range (must be finite, ≥ 0 and < 1000)")
    if np.any(q["w_q"] == -128) or np.any(q["b_q"] == -128):
        raise AtelierError(f"{name}: int8 weight -128 is out of range (quantised weights lie in [-127, 127])")
