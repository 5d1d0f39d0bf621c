"""μNCA: ultra-compact neural cellular automata for textures.

Papers: A. Mordvintsev, E. Niklasson, "μNCA: Texture Generation with Ultra-Compact Neural
Cellular Automata", 2021, https://arxiv.org/abs/2111.13545; E. Niklasson, A. Mordvintsev,
E. Randazzo, M. Levin, "Self-Organising Textures", Distill 2021,
https://distill.pub/selforg/2021/textures/.

A cell holds C numbers, the state s.  One step of the rule, applied to every cell of a
torus at once:

    p_c    = K_c ⋆ s_c                                  (eq. 1: fixed 3x3 filter per channel)
    ds     = W · [s, p, |s|, |p|] + b                   (eq. 2: no hidden layer)
    s'     = s + ds                                     (eq. 3: residual update)
    RGB    = s[:3] + 0.5                                (eq. 4: the first three channels are colour)

W is C x 4C and b has C entries: C(4C+1) parameters, 68/150/264/588 for C = 4/6/8/12.
Channel c is perceived with ``FILTER_OF_CHANNEL[c % 4]``: Laplacian, Sobel-x, Sobel-y,
Laplacian, so every model mixes isotropic diffusion with both gradient directions.
The grid wraps around (torus), hence every texture tiles seamlessly.  The seed is
uniform noise in [-0.5, 0.5).

This file holds what every runtime shares (numpy, C, GLSL, OSL read it from here); it needs
numpy only, so it runs inside Blender.  The torch implementation is in model.py.
"""

import numpy as np

PARAMS_TO_CHANNELS = {68: 4, 150: 6, 264: 8, 588: 12}  # the model sizes: every other list derives from this one
SIZES = tuple(PARAMS_TO_CHANNELS)  # in parameters (= bytes of int8 weights)
CHANNEL_COUNTS = tuple(PARAMS_TO_CHANNELS.values())

LAPLACIAN = np.array([[1, 2, 1], [2, -12, 2], [1, 2, 1]], np.float32) / 16
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
SOBEL_Y = SOBEL_X.T.copy()
FILTERS = {"laplacian": LAPLACIAN, "sobel_x": SOBEL_X, "sobel_y": SOBEL_Y}
FILTER_OF_CHANNEL = ("laplacian", "sobel_x", "sobel_y", "laplacian")


def parameter_count(channels):
    return channels * (4 * channels + 1)


def channels_for(params):
    return PARAMS_TO_CHANNELS[params]


def in_words(numbers):
    """(68, 150, 264, 588) -> "68, 150, 264 or 588", for messages and help."""
    words = [str(n) for n in numbers]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def perception_kernels(channels):
    """(C, 3, 3) array: the fixed filter of each channel (eq. 1), as a cross-correlation:
    ``p[y, x] = sum K[1+dy, 1+dx] * s[y+dy, x+dx]`` with rows going down the image."""
    return np.stack([FILTERS[FILTER_OF_CHANNEL[c % 4]] for c in range(channels)])


def seed_state(rng, batch, channels, height, width):
    """The uniform-noise seed, (batch, C, H, W) float32."""
    return rng.random((batch, channels, height, width), dtype=np.float32) - 0.5
