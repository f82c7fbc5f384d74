"""The SGD update, in place: :math:`\\theta \\leftarrow \\theta - \\alpha \\, d\\theta`.

Parallel over elements. ``step`` must already have the dtype of ``theta`` so
that float32 arithmetic matches :func:`fastnn.reference.sgd_update` bitwise.
"""

from numba import prange

from ._jit import kernel


@kernel
def _inplace_sgd(theta, grad, step):
    """``theta -= step * grad`` for contiguous arrays of the same shape."""
    flat_theta, flat_grad = theta.reshape(-1), grad.reshape(-1)
    for k in prange(flat_theta.shape[0]):
        flat_theta[k] -= step * flat_grad[k]
