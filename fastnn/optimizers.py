"""The stochastic update rules, their learning-rate schedules and stopping rules: the NumPy reference.

scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer`` step lists of per-layer arrays.
Here ``theta``, its gradient and every state array (velocity, moments) are flat vectors
of one layout (:mod:`fastnn.layout`), so each rule is one elementwise formula. Each
function performs scikit-learn's operations in scikit-learn's order, so its results are
bitwise equal to scikit-learn's, in float64 and in float32 (``tests/test_optimizers.py``).
:mod:`fastnn.kernels.optimizers` does the same in compiled loops.

What an update function expects
-------------------------------
``theta``
    The flat parameter vector; updated in place.
``grad``
    What scikit-learn hands its optimizer for one batch, in ``theta``'s layout: the
    gradient of the batch's summed loss plus ``alpha · W`` (weights only, no biases),
    divided by the batch's sample count (or its sample-weight sum). Not modified.
state arrays
    Flat, of ``theta``'s size and dtype :func:`state_dtype`, made by :func:`init_state`
    (all zero, as scikit-learn starts them) and passed in the order of the rule's
    :attr:`Rule.state`; updated in place.
``learning_rate``
    The rate of this step, which is what scikit-learn's ``optimizer.learning_rate`` holds while
    it takes the step: the schedule's rate for SGD (:func:`end_epoch`), the bias-corrected
    step size for Adam (:func:`adam_learning_rate`, from the step count).

Hyper-parameters are not validated here: the estimator checks them, with scikit-learn's
constraints and messages, before anything is trained.

Dtypes
------
NumPy casts a Python float to the dtype of the array it meets (NEP 50), so scikit-learn's
float32 SGD runs in float32 with its hyper-parameters rounded to float32. The functions
here convert their scalars to Python floats first, so that they round the same way
whatever scalar type they are given. Adam's update is formed in the state's dtype too,
its step size rounded to it, as PyTorch and JAX form theirs. There fastnn departs from
scikit-learn on purpose: scikit-learn computes the step size with ``np.sqrt``, which makes
it a float64 NumPy scalar that NumPy does not round, so its float32 Adam divides in float64
and rounds the update into ``theta``. That division, at half the vector lanes of a float32
one, bounded Adam's pass over the parameters. Only float32 runs differ: in float64 (and
with a float64 state) the two are bitwise equal, in float32 they differ by rounding.

When ``theta`` is float32 and the gradient float64 (scikit-learn's regressor on float32
``X`` and float64 ``y``), scikit-learn's state arrays become float64 after the first step.
Here they are float64 from the start (:func:`state_dtype`), which gives the same numbers:
their first use multiplies zeros.
"""

from typing import Callable, NamedTuple

import numpy as np

SCHEDULES = ("constant", "invscaling", "adaptive")
# "adaptive" divides the rate by this when the training stalls...
ADAPTIVE_DIVISOR = 5.0
# ...unless the rate is already at most this, in which case training stops.
ADAPTIVE_FLOOR = 1e-6


# ---------------------------------------------------------------------------- update rules


def sgd_step(theta, grad, learning_rate):
    """Plain SGD, in place: :math:`\\theta \\leftarrow \\theta - \\eta g`.

    scikit-learn has no such rule (its SGD always keeps a velocity); for finite values it
    equals :func:`momentum_step` with ``momentum = 0`` bitwise, up to the sign of zeros.
    """
    theta -= float(learning_rate) * grad


def _momentum_update(velocity, grad, learning_rate, momentum):
    """:math:`\\mu v - \\eta g`: the new velocity, and (applied to it) Nesterov's step."""
    return float(momentum) * velocity - float(learning_rate) * grad


def momentum_step(theta, grad, velocity, learning_rate, momentum):
    """SGD with momentum, in place:

    .. math::
        v \\leftarrow \\mu v - \\eta g, \\qquad \\theta \\leftarrow \\theta + v
    """
    velocity[...] = _momentum_update(velocity, grad, learning_rate, momentum)
    theta += velocity


def nesterov_step(theta, grad, velocity, learning_rate, momentum):
    """SGD with Nesterov's momentum as scikit-learn writes it, in place:

    .. math::
        v \\leftarrow \\mu v - \\eta g, \\qquad \\theta \\leftarrow \\theta + (\\mu v - \\eta g)

    the second formula taking the new ``v`` and the same gradient ``g``.
    """
    velocity[...] = _momentum_update(velocity, grad, learning_rate, momentum)
    theta += _momentum_update(velocity, grad, learning_rate, momentum)


def adam_learning_rate(learning_rate_init, beta_1, beta_2, t):
    """Adam's step size at step ``t`` (1 for the first batch), its bias correction folded in:

    .. math::
        \\eta_t = \\eta_0 \\sqrt{1 - \\beta_2^t} \\,/\\, (1 - \\beta_1^t)

    evaluated as ``(η₀ · sqrt(1 − β₂ᵗ)) / (1 − β₁ᵗ)`` with float powers; a float64 NumPy
    scalar. ``t`` counts the optimizer's steps (batches), not samples.
    """
    t = int(t)
    return float(learning_rate_init) * np.sqrt(1 - float(beta_2) ** t) / (1 - float(beta_1) ** t)


def adam_step(theta, grad, m, v, learning_rate, beta_1, beta_2, epsilon):
    """Adam as scikit-learn writes it, in place, with ``learning_rate`` from :func:`adam_learning_rate`:

    .. math::
        m \\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\qquad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2, \\qquad
        \\theta \\leftarrow \\theta - \\eta_t m / (\\sqrt{v} + \\epsilon)

    ``epsilon`` is added to the square root of the uncorrected ``v``; the update is
    ``((−η_t) · m) / (sqrt(v) + ε)`` in the state's dtype, ``η_t`` rounded to it (scikit-learn
    forms a float32 update in float64: see "Dtypes" above).
    """
    beta_1, beta_2 = float(beta_1), float(beta_2)
    m[...] = beta_1 * m + (1 - beta_1) * grad
    v[...] = beta_2 * v + (1 - beta_2) * (grad * grad)
    theta += -m.dtype.type(learning_rate) * m / (np.sqrt(v) + float(epsilon))


class Rule(NamedTuple):
    """An update rule: the flat state arrays it keeps, as ``(name, initial value)`` pairs in
    the order its update takes them; the hyper-parameters its update takes after
    ``learning_rate``; and its reference update,
    ``update(theta, grad, *state, learning_rate, *hyper)``."""

    state: tuple
    hyper: tuple
    update: Callable


RULES = {
    "sgd": Rule((), (), sgd_step),
    "momentum": Rule((("velocity", 0.0),), ("momentum",), momentum_step),
    "nesterov": Rule((("velocity", 0.0),), ("momentum",), nesterov_step),
    "adam": Rule((("m", 0.0), ("v", 0.0)), ("beta_1", "beta_2", "epsilon"), adam_step),
}


def state_dtype(theta, grad):
    """The dtype of a rule's state: that of the update, NumPy's promotion of ``theta`` and ``grad``."""
    return np.result_type(theta, grad)


def init_state(rule, size, dtype):
    """The state arrays of ``rule`` (a name of :data:`RULES`) for ``size`` parameters, as a tuple."""
    return tuple(np.full(size, initial, dtype=dtype) for _, initial in RULES[rule].state)


# ---------------------------------------------------------------------- learning-rate schedules


def invscaling_rate(learning_rate_init, power_t, t):
    """The "invscaling" rate once ``t`` samples have been seen: :math:`\\eta_0 / (t + 1)^{p}`."""
    return float(learning_rate_init) / (t + 1) ** power_t


def rate_after_epoch(schedule, learning_rate, learning_rate_init, power_t, t):
    """The rate for the next epoch, when ``t`` samples have been seen in all: "invscaling"
    recomputes it from ``t``; "constant" and "adaptive" keep it."""
    if schedule == "invscaling":
        return invscaling_rate(learning_rate_init, power_t, t)
    return learning_rate


def on_stall(schedule, learning_rate):
    """``(stop, learning_rate)`` once training has stalled for too long: "adaptive" divides
    the rate by 5 and goes on, unless the rate is already ``≤ 1e-6`` (tested before the
    division, so the last rate may end below it); every other schedule stops."""
    if schedule != "adaptive" or learning_rate <= ADAPTIVE_FLOOR:
        return True, learning_rate
    return False, learning_rate / ADAPTIVE_DIVISOR


# ------------------------------------------------------------------------------ stopping rules


def initial_best(higher_is_better):
    """The best value before any epoch: ``-inf`` for a validation score, ``inf`` for a loss."""
    return -np.inf if higher_is_better else np.inf


def no_improvement_count(count, value, best, tol, higher_is_better):
    """The count of consecutive epochs without enough improvement, after an epoch ending with ``value``.

    A loss has not improved enough when ``value > best − tol``, a validation score when
    ``value < best + tol``; the count then grows by one, else it restarts at 0. A NaN
    compares false, so it restarts the count.
    """
    if higher_is_better:
        stalled = value < best + tol
    else:
        stalled = value > best - tol
    return count + 1 if stalled else 0


def is_new_best(value, best, higher_is_better):
    """Whether ``value`` beats ``best`` strictly (``tol`` plays no part here)."""
    return value > best if higher_is_better else value < best


def should_stall(count, n_iter_no_change):
    """Whether training has stalled for too long: strictly more than ``n_iter_no_change`` epochs."""
    return count > n_iter_no_change


class EpochEnd(NamedTuple):
    """What an epoch's end decides: the new best value and no-improvement count, whether
    the epoch set a new best (the estimator then keeps a copy of the parameters, for
    early stopping), the rate of the next epoch, and whether to stop."""

    best: float
    count: int
    new_best: bool
    learning_rate: float
    stop: bool


def end_epoch(value, best, count, learning_rate, t, *, higher_is_better, tol, n_iter_no_change,
              schedule, learning_rate_init, power_t):
    """The bookkeeping after an epoch, in scikit-learn's order: the count and the best value
    from ``value`` (the epoch's training loss, or its validation score when
    ``higher_is_better``); the schedule's rate for ``t`` samples seen in all; then, if
    training has stalled for too long, :func:`on_stall`, whose new rate restarts the count.

    ``learning_rate`` is the rate the epoch trained with. Adam has no schedule: pass
    ``schedule="constant"`` (it stops on a stall and never changes the rate).
    """
    new_count = no_improvement_count(count, value, best, tol, higher_is_better)
    new_best = is_new_best(value, best, higher_is_better)
    rate = rate_after_epoch(schedule, learning_rate, learning_rate_init, power_t, t)
    stop = False
    if should_stall(new_count, n_iter_no_change):
        stop, rate = on_stall(schedule, rate)
        new_count = new_count if stop else 0
    return EpochEnd(value if new_best else best, new_count, new_best, rate, stop)
