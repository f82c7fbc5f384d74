"""What crosses the Python–kernel boundary: named tuples of arrays, and views into them.

A network's parameters are one flat vector with a layer table
(:mod:`fastnn.layout`); the work buffers of a batch are flat too, one block per
layer, sized for batches of up to ``capacity`` rows. The kernels take these
tuples whole and cut out each layer's 2-D view with the helpers below, so a
kernel has a handful of named arguments whatever the depth, and Numba compiles
it once per dtype (not once per depth, as it would for tuples of arrays).
"""

from typing import NamedTuple

import numpy as np

from ._jit import helper


class Net(NamedTuple):
    """A network's parameters: ``theta`` (flat, :mod:`fastnn.layout`), its ``table``
    (int64, one row per layer: weight offset, n_out, n_in, bias offset) and the
    hidden layers' activation ``code`` (:data:`fastnn.kernels._scalar.ACTIVATION_CODES`)."""

    theta: np.ndarray
    table: np.ndarray
    code: int


class Work(NamedTuple):
    """Buffers for training on batches of up to ``capacity = losses.shape[0]`` rows.

    ``acts`` holds each layer's output (``capacity × Σ widths``; the output layer's
    block becomes its ``dZ``), ``deltas`` each hidden layer's ``dZ`` (``capacity ×
    Σ hidden widths``), ``grad_b`` the bias-gradient sums of a fused step (``Σ
    widths``). ``grad`` (theta's layout, or empty) receives the batch's summed
    gradient; while it is empty the update is fused into the weight-gradient GEMM.
    ``norms`` (float64, one per layer, or empty) accumulates ``‖dW[l]‖`` (batch mean).
    ``losses`` (float64) and ``hits`` (int64) receive each row's loss and hit.
    """

    acts: np.ndarray
    deltas: np.ndarray
    grad_b: np.ndarray
    grad: np.ndarray
    norms: np.ndarray
    losses: np.ndarray
    hits: np.ndarray


class Batches(NamedTuple):
    """An epoch's data: ``X`` (n, n_features, C order), ``y`` (int64 class indices), the
    row ``order`` (int64; empty: as stored), ``batch_size``, and the buffers that a
    shuffled batch is gathered into (``x_batch`` rows × n_features, ``y_batch``)."""

    X: np.ndarray
    y: np.ndarray
    order: np.ndarray
    batch_size: int
    x_batch: np.ndarray
    y_batch: np.ndarray


def make_work(table, capacity, dtype, grad_size=0, track_norms=False):
    """:class:`Work` for the network ``table`` and batches of up to ``capacity`` rows."""
    widths = table[:, 1]
    return Work(acts=np.empty(capacity * int(widths.sum()), dtype),
                deltas=np.empty(capacity * int(widths[:-1].sum()), dtype),
                grad_b=np.empty(int(widths.sum()), dtype),
                grad=np.empty(grad_size, dtype),
                norms=np.zeros(len(widths) if track_norms else 0, np.float64),
                losses=np.empty(capacity, np.float64),
                hits=np.empty(capacity, np.int64))


@helper
def _weights(theta, table, l):
    """``W[l]``, shape ``(n_out, n_in)``, a view into ``theta`` (or a gradient of its layout)."""
    start, n_out, n_in = table[l, 0], table[l, 1], table[l, 2]
    return theta[start:start + n_out * n_in].reshape(n_out, n_in)


@helper
def _bias(theta, table, l):
    """``b[l]``, shape ``(n_out,)``, a view into ``theta``."""
    start = table[l, 3]
    return theta[start:start + table[l, 1]]


@helper
def _layer(theta, table, l):
    """Layer ``l``'s ``W`` and ``b`` together: one contiguous slice of ``theta``."""
    start = table[l, 0]
    return theta[start:start + table[l, 1] * (table[l, 2] + 1)]


@helper
def _units_below(table, l):
    """``Σ_{k<l} n_out[k]``: where layer ``l``'s block starts, in units, in a flat work buffer."""
    total = 0
    for k in range(l):
        total += table[k, 1]
    return total


@helper
def _block(buffer, table, l, capacity, m):
    """Layer ``l``'s ``m × n_out`` block of a work buffer of ``capacity`` rows per layer."""
    start = capacity * _units_below(table, l)
    return buffer[start:start + m * table[l, 1]].reshape(m, table[l, 1])


# No layer's units are shared out (:func:`_owned`); a global array is a constant of the compiled code.
NO_UNITS = np.empty(0, np.int64)


@helper
def _share(m, worker, n_workers):
    """Worker ``worker``'s rows ``[lo, hi)`` of ``m``: ``n_workers`` near-equal blocks."""
    return worker * m // n_workers, (worker + 1) * m // n_workers


@helper
def _owned(size, table, l, weights, worker, n_workers, units):
    """The elements ``[lo, hi)`` of layer ``l``'s weights (``weights``) or biases, ``size`` of
    them, that worker ``worker`` updates: a near-equal block, but of the first layer the rows of
    its units when they are shared out (``units``: their bounds; :data:`NO_UNITS`: they are not)."""
    if l > 0 or units.shape[0] == 0:
        return _share(size, worker, n_workers)
    per_unit = table[0, 2] if weights else 1
    return units[worker] * per_unit, units[worker + 1] * per_unit
