"""scikit-learn's output layers fused with their losses, and the L2 term over the flat vector.

In the ``(samples, features)`` layout, for output ``f`` and per-sample loss ``ℓ`` of
:mod:`fastnn.losses` (which these kernels must match), row ``i`` with weight ``s_i``:

.. math:: A_{ij} = f(Z_{ij} + b_j) \\qquad dZ_{ij} = (A_{ij} - Y_{ij})\\, s_i
          \\qquad \\text{losses}_i = s_i\\, \\ell_i(A_i, Y_i)

One kernel serves every output / loss pair; the pair is a run-time ``code`` of
:data:`LOSS_CODES`, so Numba compiles it once per dtype. Losses are written per row
and summed by the caller in order, so the total does not depend on the thread
count; the caller divides by ``S = Σ s_i`` and adds the L2 term
(:func:`_l2_penalty`, :func:`_inplace_l2_mean`) once per batch, or once after a
reduction across batches or processes.
"""

import math

import numpy as np
from numba import njit, prange

from ..layout import BIAS_OFFSET, N_IN, N_OUT, WEIGHT_OFFSET
from ._jit import helper, ieee_kernel, kernel, sum_kernel
from ._scalar import SIGMOID, activate, like
from .network import _owned
from .softmax import _row_softmax

LOG_LOSS, BINARY_LOG_LOSS, SQUARED_ERROR, POISSON = range(4)
LOSS_CODES = {"log_loss": LOG_LOSS, "binary_log_loss": BINARY_LOG_LOSS, "squared_error": SQUARED_ERROR,
              "poisson": POISSON}


@njit(inline="always")
def _output(z, code):
    """``f(z)`` for the elementwise outputs: identity, exp or logistic (not softmax)."""
    if code == SQUARED_ERROR:
        return z
    if code == POISSON:
        return np.exp(z)
    return activate(z, SIGMOID)


@njit(inline="always")
def _xlogy(x, y):
    """``x · ln y``, and 0 where ``x = 0`` and ``y`` is not NaN (:func:`fastnn.losses.xlogy`)."""
    return like(x, 0) if x == 0 and y == y else x * np.log(y)


@njit(inline="always")
def _loss_term(a, y, code, eps):
    """One output's term of ``ℓ`` (before squared_error's ``½ · mean``); log-losses clip ``a``
    to ``[eps, 1 − eps]``."""
    if code == SQUARED_ERROR:
        d = y - a
        return d * d
    if code == POISSON:
        return _xlogy(y, y / a) - y + a
    one = like(a, 1)
    p = min(max(a, eps), one - eps)
    if code == LOG_LOSS:
        return -_xlogy(y, p)
    return -(_xlogy(y, p) + _xlogy(one - y, one - p))


@njit(inline="always")
def _row_outputs(Z, b, code, i, out):
    """Row ``i`` of ``out = f(Z + b)``; ``out`` may be ``Z``."""
    if code == LOG_LOSS:
        _row_softmax(Z, b, i, out)
    else:
        for j in range(Z.shape[1]):
            out[i, j] = _output(Z[i, j] + b[j], code)


@kernel
def _bias_output(Z, b, code, out):
    """``out = f(Z + b)`` row by row, ``f`` the output of the loss ``code``; ``out`` may be ``Z``."""
    for i in prange(Z.shape[0]):
        _row_outputs(Z, b, code, i, out)


@ieee_kernel
def _inplace_output_loss_grad(Z, b, Y, weights, code, losses):
    """Overwrite ``Z`` (the output layer's ``A_in · Wᵀ``) with ``dZ = (f(Z + b) − Y) ∗ s`` and
    ``losses[i]`` (float64) with ``s_i ℓ_i``; ``Y`` has ``Z``'s shape and dtype, ``weights``
    (Z's dtype) holds ``s``, or is empty for all ones.

    The loss terms are accumulated in float64. The per-row weight multiplies ``dZ`` even
    when it is 1, which is exact, so empty weights and ones give the same bits.
    """
    m, n = Z.shape
    eps = like(Z, np.finfo(Z.dtype).eps)
    weighted = weights.shape[0] > 0
    for i in prange(m):
        _row_outputs(Z, b, code, i, Z)
        total = 0.0
        for j in range(n):
            total += _loss_term(Z[i, j], Y[i, j], code, eps)
        if code == SQUARED_ERROR:
            total = 0.5 * (total / n)
        s = weights[i] if weighted else like(Z, 1)
        losses[i] = s * total
        for j in range(n):
            Z[i, j] = (Z[i, j] - Y[i, j]) * s


@sum_kernel
def _squares_sum(x):
    """``Σ x²`` over a 1-D array, accumulated in float64, in an order LLVM may regroup into
    vector lanes (:data:`._jit.sum_kernel`)."""
    total = 0.0
    for k in range(x.shape[0]):
        v = np.float64(x[k])
        total += v * v
    return total


@helper
def _l2_penalty(theta, table, worker, n_workers, units):
    """``Σ_l ‖W[l]‖²`` over the weights (no bias) of the flat ``theta`` that worker ``worker``
    of ``n_workers`` updates (:func:`.network._owned`; worker 0 of 1: every weight), in
    float64: each layer's share by :func:`_squares_sum`, then the layers in order. Workers
    that sum their shares before a barrier share out the pass over θ."""
    total = 0.0
    for l in range(table.shape[0]):
        W = _part(theta, table, l, True)
        lo, hi = _owned(W.shape[0], table, l, True, worker, n_workers, units)
        total += _squares_sum(W[lo:hi])
    return total


@helper
def _part_start(table, l, weights):
    """Where layer ``l``'s weights (``weights``) or biases start in a flat vector."""
    return table[l, WEIGHT_OFFSET] if weights else table[l, BIAS_OFFSET]


@helper
def _part(flat, table, l, weights):
    """Layer ``l``'s weights (``weights``) or biases as one contiguous 1-D slice of ``flat``:
    loops over a slice vectorize where loops over offsets into ``flat`` did not (5x faster
    here)."""
    size = table[l, N_OUT] * table[l, N_IN] if weights else table[l, N_OUT]
    start = _part_start(table, l, weights)
    return flat[start:start + size]


@njit(inline="always")
def _exact_reciprocal(S):
    """``1/S`` where ``S`` (positive) is a power of two, else 0. Then ``x·(1/S)`` is bitwise
    ``x/S``: both are the exact ``x·2⁻ᵏ`` rounded once (flushed alike when subnormal). A
    multiplication costs a fraction of a division, which bounds the update kernels' loops
    (batches of 32, 64, 128… unweighted rows)."""
    mantissa, _ = math.frexp(np.float64(S))
    return like(S, 1) / S if mantissa == 0.5 else like(S, 0)


@njit(inline="always")
def _mean_element(g, w, a, S, inv, weights):
    """An element of the regularised mean gradient from the summed gradient's ``g`` and θ's
    ``w``: ``(g + a·w) / S`` for a weight, ``g / S`` for a bias, in ``g``'s dtype (``a`` and
    ``S`` are), multiplied by ``inv`` instead where it is not 0 (:func:`_exact_reciprocal`).
    The update kernels read a summed gradient through it too (:mod:`.optimizers`)."""
    v = g + a * w if weights else g
    return like(g, v * inv if inv != 0 else v / S)


@ieee_kernel
def _inplace_l2_mean(grad, theta, table, alpha, divisor):
    """From a summed gradient to the regularised mean, in place over the flat ``grad``:
    ``dW ← (dW + α·W) / S``, ``db ← db / S`` (``S = divisor``; with ``S = 1``, just the
    ``α·W`` term)."""
    a, S = like(grad, alpha), like(grad, divisor)
    inv = _exact_reciprocal(S)
    for l in range(table.shape[0]):
        for weights in (True, False):
            g, w = _part(grad, table, l, weights), _part(theta, table, l, weights)
            for k in prange(g.shape[0]):
                g[k] = _mean_element(g[k], w[k], a, S, inv, weights)
