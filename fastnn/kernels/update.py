"""The SGD update, in place: :math:`\\theta \\leftarrow \\theta - \\alpha \\, d\\theta`.

Parallel over elements. :func:`_inplace_sgd_layer` steps a whole layer, its
weight gradient fused into the GEMM (:mod:`.blas`). ``step`` must already have the dtype of ``theta`` so
that float32 arithmetic matches :func:`fastnn.reference.sgd_update` bitwise.
"""

from numba import prange

from ._jit import helper, kernel
from ._scalar import summed
from .backward import _column_sums
from .blas import _inplace_gemm_update


@kernel
def _inplace_sgd_summed(theta, grad, last, step):
    """``theta -= step * (grad + last)`` for 1-D contiguous arrays, ``grad + last`` rounded as
    a stored sum would be (:func:`._scalar.summed`: ``grad`` alone where ``last`` is empty)."""
    for k in prange(theta.shape[0]):
        theta[k] -= step * summed(grad, last, k)


@kernel
def _inplace_sgd(theta, grad, step):
    """``theta -= step * grad`` for contiguous arrays of the same shape."""
    flat_grad = grad.reshape(-1)
    _inplace_sgd_summed(theta.reshape(-1), flat_grad, flat_grad[:0], step)


@helper
def _inplace_sgd_layer(dZ, A_in, W, b, grad_b, step):
    """One layer's step from its ``dZ`` (m, n_out) and input ``A_in`` (m, n_in):
    ``W -= step · dZᵀ·A_in``, ``b -= step · Σ_rows dZ`` (``grad_b`` is work space)."""
    _column_sums(dZ, grad_b)
    _inplace_gemm_update(A_in, dZ, W, -step)
    _inplace_sgd(b, grad_b, step)
