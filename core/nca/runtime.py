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

    def perceive(self, s):
        """Eq. 1: p_c = K_c * s_c, a cross-correlation on the torus."""
        p = np.zeros_like(s)
        for dy in (-1, 0, 1):
            rows = np.roll(s, -dy, axis=1)  # rows[:, y] = s[:, y + dy]
            for dx in (-1, 0, 1):
                k = self.kernels[:, 1 + dy, 1 + dx]
                if np.any(k):
                    p += k[:, None, None] * np.roll(rows, -dx, axis=2)
        return p

    def step(self, s):
        """Eqs. 2-3: s + W·[s, p, |s|, |p|] + b."""
        p = self.perceive(s)
        y = np.concatenate([s, p, np.abs(s), np.abs(p)], 0)
        ds = np.tensordot(self.w, y, axes=(1, 0)) + self.b[:, None, None]
        return (s + ds).astype(np.float32)

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
