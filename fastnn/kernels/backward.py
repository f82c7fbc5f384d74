"""Backward-pass epilogues: the activation mask and the bias-gradient reductions.

.. math:: dZ_{ij} \\mathrel{*}= g'(Z_{ij}) \\qquad dB_j = \\sum_i dZ_{ij}

The mask is parallel over rows. The column sums split the rows into a fixed
number of chunks (not one per thread, so the sum's rounding does not depend on
the thread count), sum each chunk into its own row of partial sums in parallel,
then add those in order: no two threads write the same memory.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel
from ._scalar import derivative_from_output, like
from ._stack import stack_empty
from .blas import _gemm

SUM_CHUNKS = 8
COLUMN_BLOCK = 256
PARTIAL_SUMS = SUM_CHUNKS * COLUMN_BLOCK  # a constant, as stack_empty's size must be
CHUNK_BOUNDS = SUM_CHUNKS + 1


@kernel
def _inplace_activation_backward(dA, A, code):
    """``dA ← dA ∗ g'(Z)`` with ``g'`` taken from ``A = g(Z)``: ``dA`` becomes ``dZ``."""
    for i in prange(dA.shape[0]):
        for j in range(dA.shape[1]):
            dA[i, j] *= derivative_from_output(A[i, j], code)


@kernel
def _column_sums(D, out):
    """``out[j] = Σ_i D[i, j]``: the bias gradient (before the 1/m) of a layer. Columns are
    taken :data:`COLUMN_BLOCK` at a time, so each chunk's partial sums fit a stack buffer,
    and each row of a block is read as a slice, a loop that LLVM vectorizes."""
    m, n = D.shape
    n_chunks = max(1, min(SUM_CHUNKS, m))
    buffer = stack_empty(PARTIAL_SUMS, out.dtype)
    for lo in range(0, n, COLUMN_BLOCK):
        hi = min(lo + COLUMN_BLOCK, n)
        for c in prange(n_chunks):
            partial = buffer[c * COLUMN_BLOCK:c * COLUMN_BLOCK + hi - lo]
            partial[:] = 0
            for i in range(c * m // n_chunks, (c + 1) * m // n_chunks):
                row = D[i, lo:hi]
                for j in range(partial.shape[0]):
                    partial[j] += row[j]
        total = out[lo:hi]
        for c in range(n_chunks):
            partial = buffer[c * COLUMN_BLOCK:c * COLUMN_BLOCK + hi - lo]
            for j in range(partial.shape[0]):
                total[j] = partial[j] if c == 0 else total[j] + partial[j]


@kernel
def _row_sums(Dt, out):
    """``out[j] = Σ_i Dt[j, i]`` for ``Dt = Dᵀ``: :func:`_column_sums` of ``D``, adding in the
    same chunks and order, so bitwise the same sums."""
    n, m = Dt.shape
    n_chunks = max(1, min(SUM_CHUNKS, m))
    # The chunks' bounds once, not two integer divisions per chunk of every row: at a worker's
    # 64 units × 32 rows those cost more than the additions (bench/test_bench_kernels.py, "bias sums").
    bounds = stack_empty(CHUNK_BOUNDS, np.int64)
    for c in range(n_chunks + 1):
        bounds[c] = c * m // n_chunks
    for j in prange(n):
        row = Dt[j]
        total = like(out, 0)
        for c in range(n_chunks):
            part = like(out, 0)
            for i in range(bounds[c], bounds[c + 1]):
                part += row[i]
            total = part if c == 0 else total + part
        out[j] = total


@kernel
def _frobenius_norm(A):
    """``sqrt(Σ A²)`` accumulated in float64."""
    total = 0.0
    for value in A.reshape(-1):
        v = np.float64(value)
        total += v * v
    return np.sqrt(total)


@helper
def _backpropagate(dZ, W, A, code, out):
    """``out = (dZ · W) ∗ g'(Z)``: the next layer down's ``dZ`` from this layer's, ``A = g(Z)``."""
    _gemm(False, False, 1.0, dZ, W, 0.0, out)
    _inplace_activation_backward(out, A, code)
