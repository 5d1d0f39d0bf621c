"""The recurrent cells and the output mixture of Sketch-RNN, written once for numpy and torch.

Papers: Sketch-RNN, Ha & Eck 2017, https://arxiv.org/abs/1704.03477 (the decoder's output mixture);
LSTM, Hochreiter & Schmidhuber 1997, with recurrent dropout, Semeniuta et al. 2016,
https://arxiv.org/abs/1603.05118; layer normalisation, Ba et al. 2016, https://arxiv.org/abs/1607.06450;
HyperLSTM, Ha, Dai & Le 2016, https://arxiv.org/abs/1609.09106; the bivariate normal mixture,
Graves 2013, https://arxiv.org/abs/1308.0850.

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
    """The cell update of every LSTM here, from the pre-activations ``gates = [i, j, f, o]``::

        c_t = sigma(f + 1) * c_{t-1} + sigma(i) * d(tanh(j))        (returned with sigma(o))

    i: input gate, j: the candidate (often called g), f: forget gate with the reference's +1 bias,
    o: output gate; d is recurrent dropout, on the candidate only (Semeniuta et al.), so the memory
    itself is never dropped.
    """
    n = c.shape[-1]
    i, j, f, o = gates[..., :n], gates[..., n:2 * n], gates[..., 2 * n:3 * n], gates[..., 3 * n:]
    candidate = ops.tanh(j) if mask is None else ops.tanh(j) * mask
    return ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * candidate, ops.sigmoid(o)


def _layer_norm_gates(ops, gates, gamma, beta, n):
    """Layer normalisation of each gate separately (the reference's ``layer_norm_all``)::

        LN(a) = gamma * (a - mean(a)) / sqrt(var(a) + epsilon) + beta     over the n units of one gate
    """
    shape = gates.shape
    grouped = gates.reshape(*shape[:-1], 4, n)
    return ops.layer_norm(grouped, gamma.reshape(4, n), beta.reshape(4, n)).reshape(shape)


def lstm_step(ops, W_h, b, x_projected, state, mask=None):
    """The plain LSTM (Hochreiter & Schmidhuber 1997) -> (h_t, c_t)::

        [i, j, f, o] = x_t W_x + h_{t-1} W_h + b
        c_t = sigma(f + 1) * c_{t-1} + sigma(i) * tanh(j)          (:func:`_lstm_update`)
        h_t = sigma(o) * tanh(c_t)
    """
    h, c = state
    c, o = _lstm_update(ops, x_projected + h @ W_h + b, c, mask)
    return ops.tanh(c) * o, c


def project_inputs(p, x, prefix="decoder."):
    """x W_x for every time step at once: the input half of every gate, hoisted out of the loop."""
    return x @ p[prefix + "W_x"]


def decoder_step(ops, p, hp, x, x_projected, state, mask=None):
    """One decoder step -> (output h, new state tuple).

    ``x`` is the step's input [S_{i-1}, z] and ``x_projected`` its ``x @ W_x`` (computed for all
    steps beforehand).  With ``LN`` of :func:`_layer_norm_gates` and the cell update c_t of
    :func:`_lstm_update`:

    * LSTM: :func:`lstm_step`.
    * LayerNorm-LSTM (Ba et al. 2016), each gate normalised on its own and the cell before tanh::

        [i, j, f, o] = LN(x_t W_x + h_{t-1} W_h),   h_t = sigma(o) * tanh(LN(c_t))

    * HyperLSTM (Ha et al. 2016): a small LSTM reads [x_t; h_{t-1}]; its output hat_h_t gives, for
      each gate y in (i, j, f, o), an embedding z^y = hat_h_t W_z^y + b_z^y and from it the scales
      d(z^y) = z^y W_d^y of the input and recurrent terms and a generated bias::

        [hat_h_t, hat_c_t] = LSTM([x_t; h_{t-1}], [hat_h_{t-1}, hat_c_{t-1}])
        y = LN(d_x(z_x^y) * (x_t W_x^y) + d_h(z_h^y) * (h_{t-1} W_h^y) + d_b(z_b^y) + b^y)
        h_t = sigma(o) * tanh(LN(c_t))
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

    def per_gate(weights):  # d(z^y) for the 4 gates: hat_h -> 4 embeddings z^y -> 4 gate-sized vectors
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

    y_i (6M + 3 numbers) holds M values of each of hat_Pi, mu_x, mu_y, hat_sigma_x, hat_sigma_y,
    hat_rho_xy, one block per parameter, then the pen logits hat_q_1..3; the distribution of the
    next offset and pen state is::

        p(dx, dy) = sum_{j=1..M} Pi_j N(dx, dy | mu_{x,j}, mu_{y,j}, sigma_{x,j}, sigma_{y,j}, rho_{xy,j})
        Pi = softmax(hat_Pi),  sigma = exp(hat_sigma),  rho_xy = tanh(hat_rho_xy),  q = softmax(hat_q)

    Returns ``log_pi, mu_x, mu_y, log_sigma_x, log_sigma_y, rho, pen_logits`` (log Pi and log sigma,
    never their exponentials).  log sigma is clipped to [-10, 5] and rho's pre-activation to [-5, 5]
    (|rho| < 0.9999) so the density never divides by 0.
    """
    m = num_mixture
    pieces = [y[..., k * m:(k + 1) * m] for k in range(6)]
    log_pi = ops.log_softmax(pieces[0])
    rho = ops.tanh(pieces[5].clip(*RHO_RANGE))
    return (log_pi, pieces[1], pieces[2], pieces[3].clip(*LOG_SIGMA_RANGE), pieces[4].clip(*LOG_SIGMA_RANGE), rho,
            y[..., 6 * m:])


def log_bivariate_normal(ops, dx, dy, mu_x, mu_y, log_sigma_x, log_sigma_y, rho):
    """log N(dx, dy | mu, sigma, rho) (eq. 24-25 of Graves 2013), never exponentiated::

        N(x, y) = 1 / (2 pi sigma_x sigma_y sqrt(1 - rho^2)) exp(-Z / (2 (1 - rho^2)))
        Z = (x - mu_x)^2 / sigma_x^2 + (y - mu_y)^2 / sigma_y^2 - 2 rho (x - mu_x)(y - mu_y) / (sigma_x sigma_y)
    """
    zx = (dx - mu_x) * ops.exp(-log_sigma_x)
    zy = (dy - mu_y) * ops.exp(-log_sigma_y)
    one_minus_rho2 = 1 - rho * rho
    z = zx * zx + zy * zy - 2 * rho * zx * zy      # Z, with zx = (x - mu_x) / sigma_x
    return -z / (2 * one_minus_rho2) - math.log(2 * math.pi) - log_sigma_x - log_sigma_y - 0.5 * ops.log(one_minus_rho2)

