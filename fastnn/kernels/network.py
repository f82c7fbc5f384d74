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

from .._aligned import aligned_empty
from ..layout import N_IN, N_OUT
from ._jit import helper
from .blas import small_input_blocks


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
    ``inputs_t`` (``n_in × capacity``, flat, or empty) receives a batch's inputs transposed
    where the first layer's forward product reads them so (:func:`.dense._dense_forward`).
    ``weights_t`` (``n_in × n_out`` of the first layer, flat, or empty) receives ``W[0]ᵀ`` once
    per step where the first layer's forward product reads the weights so
    (:func:`transposes_weights`; :func:`.epoch._transpose_weights`).
    """

    acts: np.ndarray
    deltas: np.ndarray
    grad_b: np.ndarray
    grad: np.ndarray
    norms: np.ndarray
    losses: np.ndarray
    hits: np.ndarray
    inputs_t: np.ndarray
    weights_t: np.ndarray


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


# Widest input that the first layer's short-batch forward transposes before its GEMM
# (W · Aᵀ as the product of two untransposed operands). A hidden layer's whole forward pass
# at batch 32 with one-thread OpenBLAS 0.3.34 (bench/test_bench_kernels.py, group
# "first-layer forward at batch 32", min, µs, float32 / float64): 64 inputs and 100 units
# 5.8 / 8.6 transposing against 9.8 / 11.4; 128 inputs 8.9 / 14.5 against 11.9 / 18.6; but
# 256 inputs and 128 units 25.9 / 49.2 against 24.6 / 44.6. The digits' solver epoch
# (64-100-10, batch 32) took 1-5% less time with it (bench/test_bench_epoch.py, group
# "solver epoch on the digits, inputs transposed or not", min; 5-7% in a run alternating
# the two, best of 4 × 30 epochs).
MAX_TRANSPOSED_INPUTS = 128
# Fewest rows of a step whose first-layer forward products read the weights transposed, from a
# copy made once per step (transposes_weights): ``X·(Wᵀ)``, an untransposed product, which
# OpenBLAS's small-matrix kernels ran 1.2-1.9x faster than ``X·Wᵀ`` for 64 or 128 units over 64
# to 128 rows of 784 inputs (bench/test_bench_kernels.py, group "first-layer forward reading W or
# Wᵀ", Cascade Lake Xeon, 2026-11-28), while the copy took 19 / 40 µs. Whole epochs of two workers
# (bench/ab.py, 784-128-10, new/old) with the copy from 384 rows rather than 1024: at batch 384 /
# 512 Nesterov 0.96 / 0.93 (a repeat: 1.01 / 0.94), Adam 0.95 / 0.94, plain SGD 0.98 / 0.91; at 256
# 0.99 (Nesterov); at 128 (pieces of 64 rows) 1.16, the product no faster (docs/design.md).
MIN_TRANSPOSED_WEIGHTS_ROWS = 384


@helper
def _short_batch(m, n_out):
    """Whether the forward GEMM of ``m`` rows and ``n_out`` units runs as ``W · A_prevᵀ``
    (:func:`.dense._dense_forward`)."""
    return 2 * m <= n_out


def transposes_inputs(table, capacity):
    """Whether the first layer's forward transposes its batch of up to ``capacity`` rows first:
    a short batch (:func:`_short_batch`, called as Python) of at most
    :data:`MAX_TRANSPOSED_INPUTS` inputs."""
    return (table.shape[0] > 1 and _short_batch.py_func(capacity, table[0, N_OUT])
            and table[0, N_IN] <= MAX_TRANSPOSED_INPUTS)


def transposes_weights(table, step_rows, dtype):
    """Whether the first layer's forward products of a step of ``step_rows`` rows read ``W[0]ᵀ``,
    transposed once per step: float32 steps of at least :data:`MIN_TRANSPOSED_WEIGHTS_ROWS` rows
    whose product ``X·(W[0]ᵀ)`` OpenBLAS's small-matrix kernels take in blocks
    (:func:`.blas.small_input_blocks`)."""
    return (table.shape[0] > 0 and np.dtype(dtype) == np.float32 and step_rows >= MIN_TRANSPOSED_WEIGHTS_ROWS
            and small_input_blocks(int(table[0, N_OUT]), int(table[0, N_IN])))


def make_work(table, capacity, dtype, grad_size=0, track_norms=False, step_rows=None):
    """:class:`Work` for the network ``table`` and batches of up to ``capacity`` rows, which are
    pieces of steps of ``step_rows`` rows (None: ``capacity``)."""
    widths = table[:, 1]
    n_inputs_t = capacity * int(table[0, N_IN]) if transposes_inputs(table, capacity) else 0
    transposed = transposes_weights(table, capacity if step_rows is None else step_rows, dtype)
    return Work(acts=aligned_empty(capacity * int(widths.sum()), dtype),
                deltas=aligned_empty(capacity * int(widths[:-1].sum()), dtype),
                grad_b=np.empty(int(widths.sum()), dtype),
                grad=aligned_empty(grad_size, dtype),
                norms=np.zeros(len(widths) if track_norms else 0, np.float64),
                losses=np.empty(capacity, np.float64),
                hits=np.empty(capacity, np.int64),
                inputs_t=aligned_empty(n_inputs_t, dtype),
                weights_t=aligned_empty(int(table[0, N_IN] * table[0, N_OUT]) if transposed else 0, dtype))


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
def _with_grad(work, grad):
    """``work`` with ``grad`` as its gradient (a piece's row of the pieces' gradients)."""
    return Work(work.acts, work.deltas, work.grad_b, grad, work.norms, work.losses, work.hits, work.inputs_t,
                work.weights_t)


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
