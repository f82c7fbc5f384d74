"""Elementwise activation kernels, in the engine's ``(samples, features)`` layout.

.. math:: A_{ij} = g(Z_{ij} + b_j) \\qquad G_{ij} = g'(Z_{ij}) \\text{ from } A_{ij}

Parallel over rows: each element is independent.
"""

from numba import prange

from ._jit import kernel
from ._scalar import activate, derivative_from_output


@kernel
def _activate(Z, code, out):
    """``out = g(Z)``; ``out`` may be ``Z``."""
    for i in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            out[i, j] = activate(Z[i, j], code)


@kernel
def _bias_activate(Z, b, code, out):
    """``out = g(Z + b)`` with ``b`` of shape ``(n_features,)`` broadcast over rows; ``out`` may be ``Z``."""
    for i in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            out[i, j] = activate(Z[i, j] + b[j], code)


@kernel
def _bias_activate_transposed(Zt, b, code, out):
    """``out = g(Ztᵀ + b)``: ``Zt`` is ``(n_features, n_samples)``, ``out`` its transpose's shape."""
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = activate(Zt[j, i] + b[j], code)


@kernel
def _inplace_row_bias_activate(Zt, b, code):
    """``Zt ← g(Zt + b)`` with ``b`` of shape ``(n_features,)`` broadcast over columns: a layer's
    pre-activations kept in the ``(n_features, n_samples)`` layout."""
    for j in prange(Zt.shape[0]):
        for i in range(Zt.shape[1]):
            Zt[j, i] = activate(Zt[j, i] + b[j], code)


@kernel
def _activation_derivative(A, code, out):
    """``out = g'(Z)`` computed from ``A = g(Z)`` (the ReLU mask for ReLU)."""
    for i in prange(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, j] = derivative_from_output(A[i, j], code)
