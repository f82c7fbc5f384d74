"""A dense layer's forward pass: one BLAS GEMM, then one fused epilogue pass.

.. math:: A = g(A_{prev} W^T + b)

``A_prev`` is ``(m, n_in)``, ``W`` the reference's ``(n_out, n_in)`` and ``b``
``(n_out,)``; the engine's ``(samples, features)`` layout is the transpose of
the reference's ``Z = W·A + B``. ``np.dot`` inside ``@njit`` calls BLAS
through SciPy, with ``W.T`` passed as a transposed operand, not copied.
"""

import numpy as np

from ._jit import kernel
from .activations import _bias_activate
from .softmax import _bias_softmax


@kernel
def _dense_forward(A_prev, W, b, code, out):
    """``out = g(A_prev · Wᵀ + b)``, ``out`` of shape ``(m, n_out)``."""
    np.dot(A_prev, W.T, out)
    _bias_activate(out, b, code, out)


@kernel
def _dense_softmax(A_prev, W, b, out):
    """``out = softmax(A_prev · Wᵀ + b)`` row by row: the output layer."""
    np.dot(A_prev, W.T, out)
    _bias_softmax(out, b, out)

