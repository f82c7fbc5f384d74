"""Row-wise stable softmax and the fused softmax + cross-entropy gradient.

.. math:: p_{ij} = \\frac{e^{z_{ij} - \\max_k z_{ik}}}{\\sum_k e^{z_{ik} - \\max_k z_{ik}}}
          \\qquad dZ_{ij} = p_{ij} - [y_i = j]
          \\qquad \\ell = -\\sum_i \\ln \\max(p_{i y_i}, \\text{tiny})

Each row is one sample; parallel over rows. Losses are written per row and
summed by the caller in order, so the total does not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

from ._jit import kernel
from ._scalar import like


@njit(inline="always")
def _row_softmax(Z, b, i, out):
    n = Z.shape[1]
    for j in range(n):
        out[i, j] = Z[i, j] + b[j]
    top = out[i, 0]
    for j in range(1, n):
        top = max(top, out[i, j])
    total = like(Z, 0)
    for j in range(n):
        e = np.exp(out[i, j] - top)
        out[i, j] = e
        total += e
    for j in range(n):
        out[i, j] = out[i, j] / total


@kernel
def _bias_softmax(Z, b, out):
    """``out = softmax(Z + b)`` row by row; ``out`` may be ``Z``."""
    for i in prange(Z.shape[0]):
        _row_softmax(Z, b, i, out)


@kernel
def _inplace_softmax_cross_entropy_grad(Z, b, y, losses, hits):
    """Overwrite ``Z`` with ``softmax(Z + b) − onehot(y)``, ``losses[i]`` with row ``i``'s loss
    and ``hits[i]`` with 1 where the row's first largest probability is class ``y[i]``.

    The probability of the true class is clipped at the dtype's ``tiny`` so the
    loss stays finite when it underflows to 0.
    """
    tiny = np.finfo(Z.dtype).tiny
    for i in prange(Z.shape[0]):
        _row_softmax(Z, b, i, Z)
        hits[i] = np.argmax(Z[i]) == y[i]
        losses[i] = -np.log(max(Z[i, y[i]], tiny))
        Z[i, y[i]] -= like(Z, 1)
