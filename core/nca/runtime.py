"""The numpy runtime: the reference every other runtime (torch, GLSL, C, OSL) is compared with.

Pure numpy, float32, so it also runs inside Blender.  State layout (C, H, W).
"""

import numpy as np

from .rule import perception_kernels, seed_state


class Runtime:
    """Runs the rule of weights (W, b) on a (C, H, W) float32 state, torus-wrapped."""

    def __init__(self, w, b):
        self.w = np.asarray(w, np.float32)
        self.b = np.asarray(b, np.float32)
        self.channels = self.w.shape[0]
        self.kernels = perception_kernels(self.channels)

    def perceive(self, s, out=None):
        """Eq. 1: p_c = K_c * s_c, a cross-correlation on the torus (into ``out`` if given)."""
        channels, height, width = s.shape
        padded = np.empty((channels, height + 2, width + 2), np.float32)  # the torus, one cell around
        padded[:, 1:-1, 1:-1] = s
        padded[:, 0, 1:-1], padded[:, -1, 1:-1] = s[:, -1], s[:, 0]
        padded[:, :, 0], padded[:, :, -1] = padded[:, :, -2], padded[:, :, 1]
        p = np.zeros_like(s) if out is None else out
        p[...] = 0
        term = np.empty_like(s)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                k = self.kernels[:, 1 + dy, 1 + dx]
                if np.any(k):  # p += k · s[y + dy, x + dx]
                    np.multiply(k[:, None, None], padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width], out=term)
                    p += term
        return p

    def step(self, s):
        """Eqs. 2-3: s + W·[s, p, |s|, |p|] + b."""
        channels = self.channels
        y = np.empty((4 * channels, *s.shape[1:]), np.float32)
        y[:channels] = s
        p = self.perceive(s, out=y[channels:2 * channels])
        np.abs(s, out=y[2 * channels:3 * channels])
        np.abs(p, out=y[3 * channels:])
        ds = np.tensordot(self.w, y, axes=(1, 0)) + self.b[:, None, None]
        return (s + ds).astype(np.float32, copy=False)

    def run(self, s, steps):
        for _ in range(steps):
            s = self.step(s)
        return s


def seed(channels, size, seed=0):
    """A (C, size, size) uniform-noise seed from ``numpy.random.default_rng(seed)``."""
    return seed_state(np.random.default_rng(seed), 1, channels, size, size)[0]


def to_rgb(s):
    """Eq. 4 for a (C, H, W) state -> (H, W, 3) float32 in [0, 1]."""
    return np.clip(np.moveaxis(s[:3], 0, -1) + 0.5, 0.0, 1.0).astype(np.float32)
