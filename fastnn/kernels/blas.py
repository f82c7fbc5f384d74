"""A BLAS GEMM that updates the weights in place: the SGD step fused into the weight gradient.

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
def _inplace_gemm_update(A, dZ, W, alpha):
    """``W += alpha · dZᵀ · A`` for C-ordered ``A`` (m, n_in), ``dZ`` (m, n_out), ``W`` (n_out, n_in).

    In BLAS's column-major view the C-ordered ``W`` is ``Wᵀ`` (n_in × n_out),
    so the call computes ``Wᵀ ← Aᵀ·dZ·alpha + Wᵀ``.
    """
    m, n_in = A.shape
    n_out = dZ.shape[1]
    ints = np.empty(6, np.int32)
    ints[0], ints[1], ints[2] = n_in, n_out, m  # M, N, K
    ints[3], ints[4], ints[5] = n_in, n_out, n_in  # lda, ldb, ldc
    trans = np.empty(2, np.uint8)
    trans[0], trans[1] = ord("N"), ord("T")
    scalars = np.empty(2, W.dtype)
    scalars[0], scalars[1] = alpha, 1
    args = (trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
            scalars[0:].ctypes, A.ctypes, ints[3:].ctypes, dZ.ctypes, ints[4:].ctypes,
            scalars[1:].ctypes, W.ctypes, ints[5:].ctypes)
    if W.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)
