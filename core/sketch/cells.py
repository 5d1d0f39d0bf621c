"""The recurrent cells and the output mixture of Sketch-RNN, written once for numpy and torch.

The same functions run in training (torch tensors, autograd) and in the numpy runtime that
Blender uses (its encoder and layer norms; its decoder step runs the same equations
on weights folded for one row at a time, and tests hold it to the torch model).  ``ops`` is
:data:`NUMPY` or ``TORCH`` (see ``model.py``): the few array functions whose spelling differs.

Parameters are a dict of arrays named as in the model file.  LSTM gates are laid out
``i, j, f, o`` (input, candidate, forget, output) as in the reference, whose forget bias is 1.
"""

import math

import numpy as np

FORGET_BIAS = 1.0
LAYER_NORM_EPSILON = 1e-3  # the reference's value
LOG_SIGMA_RANGE = (-10.0, 5.0)  # clipping of log sigma and of rho's pre-activation: the density stays finite
RHO_RANGE = (-5.0, 5.0)


class NumpyOps:
    concat = staticmethod(lambda arrays: np.concatenate(arrays, -1))
    einsum = staticmethod(np.einsum)
    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)

    @staticmethod
    def sigmoid(x):
        return 0.5 * (np.tanh(0.5 * x) + 1)

    @staticmethod
    def layer_norm(x, gamma, beta):  # ufuncs, not ndarray.mean: the runtime calls it on single vectors each step
        inverse_n = 1.0 / x.shape[-1]
        centred = x - np.add.reduce(x, -1, keepdims=True) * inverse_n
        variance = np.add.reduce(centred * centred, -1, keepdims=True) * inverse_n
        return centred / np.sqrt(variance + LAYER_NORM_EPSILON) * gamma + beta

    @staticmethod
    def log_softmax(x):
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


NUMPY = NumpyOps()


def state_size(hp):
    """Size of the decoder state vector that z initialises: [h, c] (+ [h, c] of the hyper cell)."""
    size = 2 * hp["dec_rnn_size"]
    return size + 2 * hp["hyper_rnn_size"] if hp["decoder"] == "hyper" else size


def split_state(state, hp):
    """A flat state vector -> the tuple the decoder step takes."""
    n, m = hp["dec_rnn_size"], hp.get("hyper_rnn_size", 0)
    if hp["decoder"] == "hyper":
        return state[..., :n], state[..., n:2 * n], state[..., 2 * n:2 * n + m], state[..., 2 * n + m:]
    return state[..., :n], state[..., n:]


def _lstm_update(ops, gates, c, mask):
    """c' = sigma(f + 1) c + sigma(i) d(tanh(j)); recurrent dropout d on the candidate only (Semeniuta et al.)."""
    n = c.shape[-1]
    i, j, f, o = gates[..., :n], gates[..., n:2 * n], gates[..., 2 * n:3 * n], gates[..., 3 * n:]
    candidate = ops.tanh(j) if mask is None else ops.tanh(j) * mask
    return ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * candidate, ops.sigmoid(o)


def _layer_norm_gates(ops, gates, gamma, beta, n):
    """Layer normalisation of each gate separately (the reference's ``layer_norm_all``)."""
    shape = gates.shape
    grouped = gates.reshape(*shape[:-1], 4, n)
    return ops.layer_norm(grouped, gamma.reshape(4, n), beta.reshape(4, n)).reshape(shape)


def lstm_step(ops, W_h, b, x_projected, state, mask=None):
    """The plain LSTM (Hochreiter & Schmidhuber 1997): gates = x W_x + h W_h + b -> (h, c)."""
    h, c = state
    c, o = _lstm_update(ops, x_projected + h @ W_h + b, c, mask)
    return ops.tanh(c) * o, c


def project_inputs(p, x, prefix="decoder."):
    """x W_x for every time step at once: the input half of every gate, hoisted out of the loop."""
    return x @ p[prefix + "W_x"]


def decoder_step(ops, p, hp, x, x_projected, state, mask=None):
    """One decoder step -> (output h, new state tuple).

    ``x`` is the step's input [S_{i-1}, z] and ``x_projected`` its ``x @ W_x`` (computed for all
    steps beforehand).  LSTM: gates = x W_x + h W_h + b.  LayerNorm-LSTM (Ba et al. 2016): gates and
    the cell are layer-normalised.  HyperLSTM (Ha et al. 2016): a small LSTM reads [x, h] and its
    output scales the input and recurrent contributions of each gate and generates its bias.
    """
    kind, n = hp["decoder"], hp["dec_rnn_size"]
    if kind == "lstm":
        h, c = lstm_step(ops, p["decoder.W_h"], p["decoder.b"], x_projected, state, mask)
        return h, (h, c)
    if kind == "layernorm":
        h, c = state
        gates = _layer_norm_gates(ops, x_projected + h @ p["decoder.W_h"], p["decoder.ln_gamma"], p["decoder.ln_beta"], n)
        c, o = _lstm_update(ops, gates, c, mask)
        h = ops.tanh(ops.layer_norm(c, p["decoder.ln_c_gamma"], p["decoder.ln_c_beta"])) * o
        return h, (h, c)
    h, c, hyper_h, hyper_c = state
    hyper_gates = ops.concat([x, h]) @ p["hyper.W_x"] + hyper_h @ p["hyper.W_h"] + p["hyper.b"]
    hyper_c, hyper_o = _lstm_update(ops, hyper_gates, hyper_c, None)
    hyper_h = ops.tanh(hyper_c) * hyper_o
    e = hp["hyper_embedding_size"]

    def per_gate(weights):  # hyper_h -> 4 embeddings -> 4 gate-sized vectors (one projection per gate)
        embedding = hyper_h @ p[f"hyper.{weights}_z"] + p.get(f"hyper.{weights}_zb", 0.0)
        return ops.einsum("...ge,gen->...gn", embedding.reshape(*embedding.shape[:-1], 4, e),
                          p[f"hyper.{weights}_d"]).reshape(*embedding.shape[:-1], 4 * n)

    gates = per_gate("x") * x_projected + per_gate("h") * (h @ p["decoder.W_h"]) + per_gate("b") + p["decoder.b"]
    gates = _layer_norm_gates(ops, gates, p["decoder.ln_gamma"], p["decoder.ln_beta"], n)
    c, o = _lstm_update(ops, gates, c, mask)
    h = ops.tanh(ops.layer_norm(c, p["decoder.ln_c_gamma"], p["decoder.ln_c_beta"])) * o
    return h, (h, c, hyper_h, hyper_c)


def mixture_parameters(ops, y, num_mixture):
    """Split the decoder output y_i (eq. 4-6) into the GMM and pen-state parameters, in log space.

    Returns ``log_pi, mu_x, mu_y, log_sigma_x, log_sigma_y, rho, pen_logits``.  log sigma is clipped
    to [-10, 5] and rho's pre-activation to [-5, 5] (|rho| < 0.9999) so the density never divides by 0.
    """
    m = num_mixture
    pieces = [y[..., k * m:(k + 1) * m] for k in range(6)]
    log_pi = ops.log_softmax(pieces[0])
    rho = ops.tanh(pieces[5].clip(*RHO_RANGE))
    return (log_pi, pieces[1], pieces[2], pieces[3].clip(*LOG_SIGMA_RANGE), pieces[4].clip(*LOG_SIGMA_RANGE), rho,
            y[..., 6 * m:])


def log_bivariate_normal(ops, dx, dy, mu_x, mu_y, log_sigma_x, log_sigma_y, rho):
    """log N(dx, dy | mu, sigma, rho) (eq. 24-25 of Graves 2013), never exponentiated."""
    zx = (dx - mu_x) * ops.exp(-log_sigma_x)
    zy = (dy - mu_y) * ops.exp(-log_sigma_y)
    one_minus_rho2 = 1 - rho * rho
    z = zx * zx + zy * zy - 2 * rho * zx * zy
    return -z / (2 * one_minus_rho2) - math.log(2 * math.pi) - log_sigma_x - log_sigma_y - 0.5 * ops.log(one_minus_rho2)

