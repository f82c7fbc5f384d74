"""The update rules of :mod:`fastnn.optimizers`, fused: one pass over the flat arrays per step.

Each kernel updates ``theta`` and the rule's state in place, element by element, with
the reference's operations in the reference's order, so float64 and float32 results are
bitwise equal to it. The arrays are 1-D and contiguous; the state has the dtype
:func:`fastnn.optimizers.state_dtype` gives. Constants are cast as NumPy casts a Python
float (:func:`._scalar.like`), Adam's step size included. Plain SGD is
:func:`.update._inplace_sgd`, whose ``step`` the caller casts with ``like(grad, learning_rate)``.

Each kernel reads its gradient through a :class:`Mean`: the solver epoch hands it a batch's
summed gradient, and the kernel forms each element of the regularised mean gradient as it
reads it, with :func:`.outputs._inplace_l2_mean`'s element function ``_mean_element``
(bitwise the same numbers), which saves a pass over the parameters per step.

Division and square roots follow IEEE (NumPy's error model): Python's zero-division check
kept Adam's loop from vectorizing (3x slower). Where the mean's divisor is a power of two
the kernels multiply by its reciprocal, bitwise the same
(:func:`.outputs._exact_reciprocal`). Scalars are float64 and the Nesterov flag a bool;
from compiled code, pass a constant flag through :func:`._scalar.opaque`, so that one
compiled signature per dtype serves every call.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._jit import ieee_kernel
from ._scalar import like, magnitude_bits, summed
from .outputs import _exact_reciprocal, _mean_element


class Mean(NamedTuple):
    """How an update reads element ``g`` of the gradient it is given: as ``(g + alpha·θ) /
    divisor`` where ``weights`` (L2-penalised weights), else as ``g / divisor`` (biases), in
    the gradient's dtype. :data:`AS_GIVEN` reads the gradient as it is."""

    alpha: float
    divisor: float
    weights: bool


AS_GIVEN = Mean(0.0, 1.0, False)


@ieee_kernel
def _inplace_momentum(theta, grad, last, velocity, learning_rate, momentum, nesterov, mean, bound):
    """``v ← μ v − η g``, then ``θ ← θ + v``, or with ``nesterov`` ``θ ← θ + (μ v − η g)``
    from the new ``v`` (:func:`fastnn.optimizers.momentum_step`, ``nesterov_step``); ``g``
    is ``grad + last`` (``grad`` where ``last`` is empty: :func:`._scalar.summed`) read
    through ``mean``. Return whether every new value of θ is within ``±bound``
    (:func:`_within`)."""
    eta, mu = like(velocity, learning_rate), like(velocity, momentum)
    a, S, weights = like(grad, mean.alpha), like(grad, mean.divisor), mean.weights
    inv = _exact_reciprocal(S)
    largest = magnitude_bits(like(theta, 0))
    for k in prange(theta.shape[0]):
        g = _mean_element(summed(grad, last, k), theta[k], a, S, inv, weights)
        v = mu * velocity[k] - eta * g
        velocity[k] = v
        new = theta[k] + (mu * v - eta * g if nesterov else v)
        theta[k] = new
        largest = max(largest, magnitude_bits(new))
    return _within(largest, theta, bound)


@ieee_kernel
def _inplace_adam(theta, grad, last, m, v, learning_rate, beta_1, beta_2, epsilon, mean, bound):
    """``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``, ``θ ← θ + ((−η_t) m) / (√v + ε)``
    (:func:`fastnn.optimizers.adam_step`), ``learning_rate`` being ``η_t`` and ``g``
    ``grad + last`` (as :func:`_inplace_momentum`'s) read through ``mean``. Return whether
    every new value of θ is within ``±bound`` (:func:`_within`)."""
    # 1 − β is formed in float64, then cast, as NumPy casts scikit-learn's Python float.
    b1, c1 = like(m, beta_1), like(m, 1.0 - beta_1)
    b2, c2 = like(v, beta_2), like(v, 1.0 - beta_2)
    eps = like(v, epsilon)
    # The update in the state's dtype, as the reference forms it (not scikit-learn's float64).
    step = -like(m, learning_rate)
    a, S, weights = like(grad, mean.alpha), like(grad, mean.divisor), mean.weights
    inv = _exact_reciprocal(S)
    largest = magnitude_bits(like(theta, 0))
    for k in prange(theta.shape[0]):
        g = _mean_element(summed(grad, last, k), theta[k], a, S, inv, weights)
        m_k = b1 * m[k] + c1 * g
        v_k = b2 * v[k] + c2 * (g * g)
        m[k] = m_k
        v[k] = v_k
        new = theta[k] + step * m_k / (np.sqrt(v_k) + eps)
        theta[k] = new
        largest = max(largest, magnitude_bits(new))
    return _within(largest, theta, bound)


@njit(inline="always")
def _within(largest, theta, bound):
    """Whether ``largest``, the :func:`._scalar.magnitude_bits` of the largest value an update
    wrote to ``theta`` (NaN the largest of all), is within ``±bound``: kept as the update writes
    θ, so that the solver epoch knows without another pass over θ whether the squares of the
    weights it wrote could overflow (:func:`.solver._worker_squares`)."""
    return largest <= magnitude_bits(like(theta, bound))


# A scalar function, inlined like those of ._scalar (a parallel build has nothing to parallelize).
@njit(inline="always")
def _adam_learning_rate(learning_rate_init, beta_1, beta_2, t):
    """Adam's step size at step ``t`` (:func:`fastnn.optimizers.adam_learning_rate`)."""
    # A float exponent: an integer one compiles to repeated multiplication, which rounds
    # differently from the C library's pow that Python calls.
    power = np.float64(t)
    return learning_rate_init * np.sqrt(1.0 - beta_2 ** power) / (1.0 - beta_1 ** power)
