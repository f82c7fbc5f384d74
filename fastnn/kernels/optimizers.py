"""The update rules of :mod:`fastnn.optimizers`, fused: one pass over the flat arrays per step.

Each kernel updates ``theta`` and the rule's state in place, element by element, with
the reference's operations in the reference's order, so float64 and float32 results are
bitwise equal to it. The arrays are 1-D and contiguous; the state has the dtype
:func:`fastnn.optimizers.state_dtype` gives. Constants are cast as NumPy casts a Python
float (:func:`._scalar.like`), except Adam's step size, which stays float64 as in
scikit-learn. Plain SGD is :func:`.update._inplace_sgd`, whose ``step`` the caller casts
with ``like(grad, learning_rate)``.

Division and square roots follow IEEE (NumPy's error model): Python's zero-division check
kept Adam's loop from vectorizing (3x slower). Scalars are float64 and the Nesterov flag a bool; from compiled code, pass a constant
flag through :func:`._scalar.opaque`, so that one compiled signature per dtype serves
every call.
"""

import numpy as np
from numba import njit, prange

from ._jit import ieee_kernel
from ._scalar import like


@ieee_kernel
def _inplace_momentum(theta, grad, velocity, learning_rate, momentum, nesterov):
    """``v ← μ v − η g``, then ``θ ← θ + v``, or with ``nesterov`` ``θ ← θ + (μ v − η g)``
    from the new ``v`` (:func:`fastnn.optimizers.momentum_step`, ``nesterov_step``)."""
    eta, mu = like(velocity, learning_rate), like(velocity, momentum)
    for k in prange(theta.shape[0]):
        v = mu * velocity[k] - eta * grad[k]
        velocity[k] = v
        theta[k] += mu * v - eta * grad[k] if nesterov else v


@ieee_kernel
def _inplace_adam(theta, grad, m, v, learning_rate, beta_1, beta_2, epsilon):
    """``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``, ``θ ← θ + ((−η_t) m) / (√v + ε)``
    (:func:`fastnn.optimizers.adam_step`), ``learning_rate`` being ``η_t``."""
    # 1 − β is formed in float64, then cast, as NumPy casts scikit-learn's Python float.
    b1, c1 = like(m, beta_1), like(m, 1.0 - beta_1)
    b2, c2 = like(v, beta_2), like(v, 1.0 - beta_2)
    eps = like(v, epsilon)
    # A float64 step promotes a float32 update to float64, as scikit-learn's NumPy scalar does.
    step = -np.float64(learning_rate)
    for k in prange(theta.shape[0]):
        g = grad[k]
        m_k = b1 * m[k] + c1 * g
        v_k = b2 * v[k] + c2 * (g * g)
        m[k] = m_k
        v[k] = v_k
        theta[k] += step * m_k / (np.sqrt(v_k) + eps)


# A scalar function, inlined like those of ._scalar (a parallel build has nothing to parallelize).
@njit(inline="always")
def _adam_learning_rate(learning_rate_init, beta_1, beta_2, t):
    """Adam's step size at step ``t`` (:func:`fastnn.optimizers.adam_learning_rate`)."""
    # A float exponent: an integer one compiles to repeated multiplication, which rounds
    # differently from the C library's pow that Python calls.
    power = np.float64(t)
    return learning_rate_init * np.sqrt(1.0 - beta_2 ** power) / (1.0 - beta_1 ** power)
