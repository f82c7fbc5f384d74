"""BLAS GEMM with its ``alpha`` and ``beta``: the SGD step fused into the weight gradient.

.. math:: W \\leftarrow W + \\alpha \\, dZ^T A \\qquad (\\alpha = -\\text{lr}/m)

One ``?gemm`` call with ``beta = 1`` writes straight into ``W``, so the
gradient ``dW`` is never stored and ``W`` is read and written once. At batch
32 the weight-gradient GEMM and its separate update pass cost about as much as
the forward GEMM (DESIGN.md §4). SciPy's ``cython_blas`` exports the Fortran
BLAS; its addresses are registered with LLVM under fixed names, so the compiled
kernels call them by name and can be cached on disk.
"""

import numpy as np
from llvmlite import binding
from numba import types
from numba.extending import get_cython_function_address

for _name in ("sgemm", "dgemm"):
    binding.add_symbol(f"fastnn_{_name}",
                       get_cython_function_address("scipy.linalg.cython_blas", _name))

# ?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every argument by pointer.
_GEMM = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction("fastnn_sgemm", _GEMM)
_dgemm = types.ExternalFunction("fastnn_dgemm", _GEMM)

from ._jit import kernel  # noqa: E402  (the symbols above must exist before any kernel loads)


@kernel
def _gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """``C = alpha · op(A) · op(B) + beta · C`` for C-contiguous 2-D arrays, ``op(X)`` being
    ``Xᵀ`` when ``trans_X``. With ``beta = 0``, ``C``'s old values are not read (BLAS rule).

    BLAS is column-major, where a C-ordered array is its own transpose, so the
    call computes ``Cᵀ = op(B)ᵀ · op(A)ᵀ``: the operands swap places.
    """
    m, n = C.shape
    ints = np.empty(6, np.int32)
    ints[0], ints[1], ints[2] = n, m, A.shape[0] if trans_a else A.shape[1]  # M, N, K
    ints[3], ints[4], ints[5] = B.shape[1], A.shape[1], n  # lda, ldb, ldc
    trans = np.empty(2, np.uint8)
    trans[0], trans[1] = ord("T") if trans_b else ord("N"), ord("T") if trans_a else ord("N")
    scalars = np.empty(2, C.dtype)
    scalars[0], scalars[1] = alpha, beta
    args = (trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
            scalars[0:].ctypes, B.ctypes, ints[3:].ctypes, A.ctypes, ints[4:].ctypes,
            scalars[1:].ctypes, C.ctypes, ints[5:].ctypes)
    if C.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)


@kernel
def _inplace_gemm_update(A, dZ, W, alpha):
    """``W += alpha · dZᵀ · A`` for ``A`` (m, n_in), ``dZ`` (m, n_out), ``W`` (n_out, n_in)."""
    _gemm(True, False, alpha, dZ, A, 1, W)
