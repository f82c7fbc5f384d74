"""The update rules, schedules and stopping rules (fastnn/optimizers.py) against scikit-learn,
and their kernels (fastnn/kernels/optimizers.py) against them.

Bounds: everything here is bitwise but one. The reference performs scikit-learn's
operations in scikit-learn's order with scikit-learn's dtypes, so its parameters, state
arrays and rates equal scikit-learn's exactly, in float64, in float32 and with float32
parameters and float64 gradients; the exception is Adam's float32 update, which the
reference forms in float32 where scikit-learn forms it in float64 (fastnn/optimizers.py,
"Dtypes"): one step from the same state then lands within a rounding bound of
scikit-learn's, derived below. The kernels perform the same operations per element, so
they equal the reference exactly. The stopping rules are comparisons and a counter: exact.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit, types
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from fastnn import optimizers as opt
from fastnn.kernels._scalar import like, opaque
from fastnn.kernels.optimizers import AS_GIVEN, Mean, _adam_learning_rate, _inplace_adam, _inplace_momentum
from fastnn.kernels.update import _inplace_sgd_summed
from fastnn.layout import Layout

LAYOUT = Layout((7, 5, 3))
N_STEPS = 8
# (parameters, gradient): scikit-learn keeps float32 parameters with a float64 gradient
# when a regressor's float32 X meets a float64 y.
DTYPE_PAIRS = [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)]
SGD_SETTINGS = [  # (learning_rate_init, momentum)
    (0.1, 0.9), (0.037, 0.5), (0.2, 0.0), (0.01, 1.0)]
ADAM_SETTINGS = [  # (learning_rate_init, beta_1, beta_2, epsilon)
    (0.001, 0.9, 0.999, 1e-8), (0.03, 0.8, 0.95, 1e-3), (0.5, 0.0, 0.0, 1e-8)]


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def random_vector(rng, dtype):
    """Values over six decades, some exactly zero, so every rounding path is taken."""
    x = rng.standard_normal(LAYOUT.size) * 10.0 ** rng.uniform(-3, 3, LAYOUT.size)
    x[::9] = 0
    return x.astype(dtype)


def layer_views(flat):
    """scikit-learn's parameter list (weights, then biases) as views of one flat vector."""
    return LAYOUT.weights(flat) + [b.reshape(-1) for b in LAYOUT.biases(flat)]


def flatten(arrays, dtype):
    """scikit-learn's per-layer state, gathered into a flat vector of our layout."""
    flat = np.empty(LAYOUT.size, dtype=dtype)
    for view, array in zip(layer_views(flat), arrays):
        view[...] = array
    return flat


def sklearn_rule(nesterov):
    return "nesterov" if nesterov else "momentum"


# ------------------------------------------------------- (a) the reference against scikit-learn


@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{d[0].__name__}-{d[1].__name__}")
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("learning_rate_init, momentum", SGD_SETTINGS)
def test_sgd_rules_equal_scikit_learns_bitwise(rng, dtypes, nesterov, schedule, learning_rate_init, momentum):
    """Step by step, with the rate scikit-learn's optimizer holds (invscaling moves it every
    other step, to non-round values)."""
    theta_dtype, grad_dtype = dtypes
    theta = random_vector(rng, theta_dtype)
    theirs = theta.copy()
    sk = SGDOptimizer(layer_views(theirs), learning_rate_init, schedule, momentum, nesterov, power_t=0.3)
    rule = sklearn_rule(nesterov)
    (velocity,) = opt.init_state(rule, theta.size, opt.state_dtype(theta, np.empty(0, grad_dtype)))
    for step in range(1, N_STEPS + 1):
        grad = random_vector(rng, grad_dtype)
        rate = sk.learning_rate
        sk.update_params(layer_views(theirs), layer_views(grad))
        opt.RULES[rule].update(theta, grad, velocity, rate, momentum)
        np.testing.assert_array_equal(theta, theirs)
        np.testing.assert_array_equal(velocity, flatten(sk.velocities, velocity.dtype))
        if step % 2 == 0:
            t = step * 13
            sk.iteration_ends(t)
            assert opt.rate_after_epoch(schedule, rate, learning_rate_init, 0.3, t) == sk.learning_rate


def float32_adam_step_bound(before, ours, theirs):
    """How far a float32 Adam step (``before`` to ``ours``) may land from scikit-learn's
    float64-formed one (``before`` to ``theirs``), per element. Both share ``m``, ``v`` and
    ``d = sqrt(v) + ε`` (float32, bitwise). Our update ``u = (−η)·m/d`` rounds three times in
    float32 (η, the product, the quotient), theirs in float64, so they differ by at most
    ``3·2⁻²⁴|u|``, and ``|u| ≤ |theirs − before| + ulp``. Each sum ``θ + u`` is rounded to
    float32 once (theirs through float64 first, ``2⁻⁵³`` relative more): half an ulp each,
    the ulp at the largest of the three values."""
    before, ours, theirs = (x.astype(np.float64) for x in (before, ours, theirs))
    ulp = np.spacing(np.maximum.reduce([np.abs(before), np.abs(ours), np.abs(theirs)]).astype(np.float32))
    return ulp * (1 + 2.0**-29) + 3 * 2.0**-24 * (np.abs(theirs - before) + ulp)


@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{d[0].__name__}-{d[1].__name__}")
@pytest.mark.parametrize("learning_rate_init, beta_1, beta_2, epsilon", ADAM_SETTINGS)
def test_adam_equals_scikit_learns(rng, dtypes, learning_rate_init, beta_1, beta_2, epsilon):
    """Each step, taken from scikit-learn's parameters: rate, step count and state bitwise
    scikit-learn's. With a float64 state (float64 parameters, or float32 ones with a float64
    gradient) both form the update in float64, so the parameters are bitwise equal too (and,
    step by step, so are whole runs). With float32 parameters and gradient ours is formed in
    float32: each step lands within :func:`float32_adam_step_bound` of theirs, and some
    elements differ (it is float32's update, not float64's)."""
    theta_dtype, grad_dtype = dtypes
    theta = random_vector(rng, theta_dtype)
    theirs = theta.copy()
    sk = AdamOptimizer(layer_views(theirs), learning_rate_init, beta_1, beta_2, epsilon)
    m, v = opt.init_state("adam", theta.size, opt.state_dtype(theta, np.empty(0, grad_dtype)))
    float32_update = m.dtype == np.float32
    differ = 0
    for t in range(1, N_STEPS + 1):
        grad = random_vector(rng, grad_dtype)
        theta[...] = before = theirs.copy()
        sk.update_params(layer_views(theirs), layer_views(grad))
        rate = opt.adam_learning_rate(learning_rate_init, beta_1, beta_2, t)
        opt.adam_step(theta, grad, m, v, rate, beta_1, beta_2, epsilon)
        assert rate == sk.learning_rate and sk.t == t
        np.testing.assert_array_equal(m, flatten(sk.ms, m.dtype))
        np.testing.assert_array_equal(v, flatten(sk.vs, v.dtype))
        if float32_update:
            gap = np.abs(theta.astype(np.float64) - theirs)
            assert np.all(gap <= float32_adam_step_bound(before, theta, theirs))
            differ += np.count_nonzero(gap)
        else:
            np.testing.assert_array_equal(theta, theirs)
    assert differ > 0 or not float32_update


def test_plain_sgd_is_momentum_zero(rng):
    """Plain SGD, which scikit-learn does not have, is its momentum-0 SGD for finite values."""
    theta = random_vector(rng, np.float64)
    theirs = theta.copy()
    sk = SGDOptimizer(layer_views(theirs), 0.05, "constant", 0.0, True)
    for _ in range(N_STEPS):
        grad = random_vector(rng, np.float64)
        sk.update_params(layer_views(theirs), layer_views(grad))
        opt.sgd_step(theta, grad, 0.05)
        np.testing.assert_array_equal(theta, theirs)


def test_scalars_round_like_python_floats(rng):
    """A float64 NumPy scalar rate must not promote a float32 SGD step to float64 (scikit-learn's
    rates are Python floats); Adam's step size is computed in float64 whatever it is given
    (and rounded to the state's dtype where the update is formed)."""
    theta, grad = random_vector(rng, np.float32), random_vector(rng, np.float32)
    a, b = theta.copy(), theta.copy()
    opt.sgd_step(a, grad, np.float64(0.1))
    opt.sgd_step(b, grad, 0.1)
    np.testing.assert_array_equal(a, b)
    assert type(opt.adam_learning_rate(np.float32(0.001), 0.9, 0.999, 3)) is np.float64


# -------------------------------------------------------------------- the registry and its state


HYPER = {"momentum": 0.9, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
DIRECT = {  # each rule called by hand, to check the registry's order of state and hyper-parameters
    "sgd": lambda theta, grad, state, rate: opt.sgd_step(theta, grad, rate),
    "momentum": lambda theta, grad, state, rate: opt.momentum_step(theta, grad, state[0], rate, momentum=0.9),
    "nesterov": lambda theta, grad, state, rate: opt.nesterov_step(theta, grad, state[0], rate, momentum=0.9),
    "adam": lambda theta, grad, state, rate: opt.adam_step(theta, grad, m=state[0], v=state[1],
                                                           learning_rate=rate, beta_1=0.9, beta_2=0.999,
                                                           epsilon=1e-8),
}


@pytest.mark.parametrize("name", sorted(opt.RULES))
def test_registry_calls_each_rule_with_its_state_and_hyper_parameters(rng, name):
    rule = opt.RULES[name]
    assert set(DIRECT) == set(opt.RULES)
    theta, grad = random_vector(rng, np.float32), random_vector(rng, np.float32)
    by_registry, by_hand = theta.copy(), theta.copy()
    state = opt.init_state(name, theta.size, np.float32)
    state_by_hand = opt.init_state(name, theta.size, np.float32)
    assert len(state) == len(rule.state)
    for array, (_, initial) in zip(state, rule.state):
        assert array.shape == theta.shape and array.dtype == np.float32 and np.all(array == initial)
    for _ in range(3):
        rule.update(by_registry, grad, *state, 0.01, *(HYPER[h] for h in rule.hyper))
        DIRECT[name](by_hand, grad, state_by_hand, 0.01)
    np.testing.assert_array_equal(by_registry, by_hand)


def test_state_takes_the_dtype_of_the_update():
    f32, f64 = np.empty(0, np.float32), np.empty(0, np.float64)
    assert opt.state_dtype(f32, f32) == np.float32
    assert opt.state_dtype(f32, f64) == np.float64
    assert opt.state_dtype(f64, f64) == np.float64


# ----------------------------------------------------------------- (b) the kernels, bitwise


# The size the update kernels check the values they write against: it changes only their
# answer, which tests/test_kernels.py checks.
BOUND = 1e18


def kernel_step(name, theta, grad, state, rate, mean=AS_GIVEN, last=None):
    """One step of rule ``name`` by its kernel, with the hyper-parameters of :data:`HYPER`,
    reading ``grad`` (``grad + last`` where ``last`` is given) through ``mean``."""
    last = grad[:0] if last is None else last
    if name == "sgd":
        assert mean == AS_GIVEN, "the plain SGD kernel reads its gradient as it is"
        _inplace_sgd_summed(theta, grad, last, like(grad, rate))
    elif name == "adam":
        _inplace_adam(theta, grad, last, *state, rate, HYPER["beta_1"], HYPER["beta_2"], HYPER["epsilon"],
                      mean, BOUND)
    else:
        _inplace_momentum(theta, grad, last, *state, rate, HYPER["momentum"], name == "nesterov", mean, BOUND)


@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{d[0].__name__}-{d[1].__name__}")
@pytest.mark.parametrize("name", sorted(opt.RULES))
def test_kernels_equal_the_reference_bitwise(rng, dtypes, name):
    theta_dtype, grad_dtype = dtypes
    rule = opt.RULES[name]
    theta = random_vector(rng, theta_dtype)
    fused = theta.copy()
    state_dtype = opt.state_dtype(theta, np.empty(0, grad_dtype))
    state = opt.init_state(name, theta.size, state_dtype)
    fused_state = opt.init_state(name, theta.size, state_dtype)
    for t in range(1, N_STEPS + 1):
        grad = random_vector(rng, grad_dtype)
        rate = opt.adam_learning_rate(0.01, HYPER["beta_1"], HYPER["beta_2"], t) if name == "adam" else 0.1
        rule.update(theta, grad, *state, rate, *(HYPER[h] for h in rule.hyper))
        kernel_step(name, fused, grad, fused_state, rate)
        np.testing.assert_array_equal(fused, theta)
        for got, want in zip(fused_state, state):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("weights", [True, False], ids=["weights", "biases"])
@pytest.mark.parametrize("dtypes", DTYPE_PAIRS + [(np.float64, np.float32)],
                         ids=lambda d: f"{d[0].__name__}-{d[1].__name__}")
@pytest.mark.parametrize("S", [29.0, 32.0, 1.0, 0.25], ids=["29", "32", "1", "0.25"])
@pytest.mark.parametrize("name", ["adam", "momentum", "nesterov"])
def test_reading_a_summed_gradient_through_its_mean_is_bitwise_the_stored_mean(rng, dtypes, name, weights, S):
    """The solver epoch hands the update a batch's summed gradient: read through ``Mean`` it
    gives bitwise the step from the regularised mean scikit-learn stores,
    ``(g + α·θ) / S`` (weights) or ``g / S`` (biases), rounded to the gradient's dtype; with
    ``S`` a power of two the kernels multiply by ``1/S`` instead of dividing."""
    theta_dtype, grad_dtype = dtypes
    alpha = 0.37
    theta = random_vector(rng, theta_dtype)
    fused = theta.copy()
    state_dtype = opt.state_dtype(theta, np.empty(0, grad_dtype))
    state, fused_state = (opt.init_state(name, theta.size, state_dtype) for _ in range(2))
    for t in range(1, N_STEPS + 1):
        summed = random_vector(rng, grad_dtype) * 40
        a, divisor = like(summed, alpha), like(summed, S)
        mean = ((summed + a * theta) / divisor if weights else summed / divisor).astype(grad_dtype)
        rate = opt.adam_learning_rate(0.01, HYPER["beta_1"], HYPER["beta_2"], t) if name == "adam" else 0.1
        kernel_step(name, theta, mean, state, rate)
        kernel_step(name, fused, summed, fused_state, rate, Mean(alpha, S, weights))
        np.testing.assert_array_equal(fused, theta)
        for got, want in zip(fused_state, state):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{d[0].__name__}-{d[1].__name__}")
@pytest.mark.parametrize("name", sorted(opt.RULES))
def test_kernels_add_a_last_gradient_as_a_stored_sum_would(rng, dtypes, name):
    """The solver and rows epochs leave the pieces' last gradient for the update to add as it
    reads it: bitwise the step from the stored, rounded sum ``grad + last``, read through a
    mean where the rule takes one (weights, ``S`` not a power of two)."""
    theta_dtype, grad_dtype = dtypes
    theta = random_vector(rng, theta_dtype)
    fused = theta.copy()
    state_dtype = opt.state_dtype(theta, np.empty(0, grad_dtype))
    state, fused_state = (opt.init_state(name, theta.size, state_dtype) for _ in range(2))
    mean = AS_GIVEN if name == "sgd" else Mean(0.37, 29.0, True)
    for _ in range(N_STEPS):
        # Same-scale parts whose sum rounds: summed in a wider dtype it would differ.
        grad, last = random_vector(rng, grad_dtype) * 40, random_vector(rng, grad_dtype) * 40
        kernel_step(name, theta, grad + last, state, 0.1, mean)
        kernel_step(name, fused, grad, fused_state, 0.1, mean, last)
        np.testing.assert_array_equal(fused, theta)
        for got, want in zip(fused_state, state):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("beta_1, beta_2", [(0.9, 0.999), (0.8, 0.95), (0.123456789, 0.987654321)])
def test_adam_learning_rate_helper_equals_the_reference(beta_1, beta_2):
    """Over many steps: the helper's pow must be the C library's, as Python's is."""
    for t in range(1, 3000, 7):
        want = opt.adam_learning_rate(0.001, beta_1, beta_2, t)
        assert _adam_learning_rate(0.001, beta_1, beta_2, t) == want


@njit
def _momentum_both_ways(theta, grad, velocity, mean):
    _inplace_momentum(theta, grad, grad[:0], velocity, 0.1, 0.9, opaque(True), mean, BOUND)
    _inplace_momentum(theta, grad, grad[:0], velocity, 0.1, 0.9, opaque(False), mean, BOUND)


def test_one_compiled_momentum_kernel_per_dtype(rng):
    """Called from Python and from compiled code, with either flag: one signature per dtype."""
    theta, grad = random_vector(rng, np.float64), random_vector(rng, np.float64)
    velocity = np.zeros_like(theta)
    _inplace_momentum(theta, grad, grad[:0], velocity, 0.1, 0.9, True, AS_GIVEN, BOUND)
    _momentum_both_ways(theta, grad, velocity, AS_GIVEN)
    float64_signatures = [s for s in _inplace_momentum.signatures
                          if s[0].dtype == s[1].dtype == types.float64]
    assert len(float64_signatures) == 1


# -------------------------------------------------------------- (c) schedules, hand-worked


def test_invscaling_by_hand():
    assert opt.invscaling_rate(0.1, 0.5, 3) == 0.05
    assert opt.invscaling_rate(0.1, 0.0, 10**6) == 0.1
    assert opt.invscaling_rate(1, 1.0, 4) == 0.2
    assert opt.rate_after_epoch("constant", 0.07, 0.1, 0.5, 3) == 0.07
    assert opt.rate_after_epoch("adaptive", 0.07, 0.1, 0.5, 3) == 0.07
    assert opt.rate_after_epoch("invscaling", 0.07, 0.1, 0.5, 3) == 0.05


def test_on_stall_by_hand():
    assert opt.on_stall("constant", 0.1) == (True, 0.1)
    assert opt.on_stall("invscaling", 0.1) == (True, 0.1)
    assert opt.on_stall("adaptive", 0.1) == (False, 0.1 / 5)
    assert opt.on_stall("adaptive", 1e-6) == (True, 1e-6)  # at the floor: stop
    # just above the floor: one more division, to below it
    assert opt.on_stall("adaptive", 1.25e-6) == (False, 1.25e-6 / 5)


@pytest.mark.parametrize("schedule", opt.SCHEDULES)
@pytest.mark.parametrize("learning_rate_init", [0.1, 3e-6, 1e-6, 7e-7])
def test_on_stall_equals_scikit_learns_trigger_stopping(schedule, learning_rate_init):
    """Stall after stall until it stops: the same decisions and the same rates."""
    sk = SGDOptimizer([np.zeros(1)], learning_rate_init, schedule)
    rate, stop, stalls = learning_rate_init, False, 0
    while not stop:
        stop, rate = opt.on_stall(schedule, rate)
        assert sk.trigger_stopping("", False) == stop
        assert rate == sk.learning_rate
        stalls += 1
    assert stalls <= 12  # 0.1 / 5**k ≤ 1e-6 by k = 8


def test_adam_stops_on_a_stall_and_keeps_its_rate():
    """Adam's stall is scikit-learn's base optimizer's: pass schedule "constant"."""
    assert AdamOptimizer([np.zeros(1)]).trigger_stopping("", False)
    assert opt.on_stall("constant", 0.001) == (True, 0.001)


# ---------------------------------------------------------- (c) stopping rules, hand-worked


def replay(values, higher_is_better, tol):
    """``(count, best, new_best)`` after each of ``values``, from the start."""
    best, count, out = opt.initial_best(higher_is_better), 0, []
    for value in values:
        count = opt.no_improvement_count(count, value, best, tol, higher_is_better)
        new = opt.is_new_best(value, best, higher_is_better)
        best = value if new else best
        out.append((count, best, new))
    return out


def test_loss_bookkeeping_by_hand():
    """tol = 1/8, in binary fractions so the thresholds are exact."""
    nan = float("nan")
    got = replay([1.0, 0.9375, 0.875, 0.75, 0.625, nan, 0.75, 0.625], False, 0.125)
    want = [(0, 1.0, True),        # first epoch: x > inf - tol is false
            (1, 0.9375, True),     # better, but by less than tol: counted, and still the best
            (2, 0.875, True),
            (0, 0.75, True),       # 0.75 > 0.875 - 0.125 is false: improved by exactly tol counts
            (0, 0.625, True),
            (0, 0.625, False),     # NaN compares false: restarts the count, is no best
            (1, 0.625, False),
            (2, 0.625, False)]     # a tie is not a new best
    assert got == want


def test_score_bookkeeping_by_hand():
    nan = float("nan")
    got = replay([0.5, 0.625, 0.6875, 0.6875, nan, 0.5], True, 0.125)
    want = [(0, 0.5, True),        # first epoch: x < -inf + tol is false
            (0, 0.625, True),      # improved by exactly tol
            (1, 0.6875, True),
            (2, 0.6875, False),
            (0, 0.6875, False),
            (1, 0.6875, False)]
    assert got == want


def test_should_stall_is_strict():
    assert not opt.should_stall(2, 2)
    assert opt.should_stall(3, 2)
    assert not opt.should_stall(10**9, np.inf)


def test_end_epoch_by_hand():
    """n_iter_no_change = 1, adaptive: the second stalled epoch divides the rate and restarts
    the count; invscaling's rate moves at every epoch end."""
    rules = dict(higher_is_better=False, tol=0.125, n_iter_no_change=1, learning_rate_init=0.1, power_t=0.5)
    end = opt.end_epoch(1.0, np.inf, 0, 0.1, 10, schedule="adaptive", **rules)
    assert end == (1.0, 0, True, 0.1, False)
    end = opt.end_epoch(1.0, end.best, end.count, end.learning_rate, 20, schedule="adaptive", **rules)
    assert end == (1.0, 1, False, 0.1, False)
    end = opt.end_epoch(1.0, end.best, end.count, end.learning_rate, 30, schedule="adaptive", **rules)
    assert end == (1.0, 0, False, 0.1 / 5, False)
    end = opt.end_epoch(1.0, 1.0, 1, 0.1, 3, schedule="invscaling", **rules)
    assert end == (1.0, 2, False, 0.05, True)


# ------------------------------------------------ (c) stopping rules against scikit-learn's code


VALUES = st.sampled_from([0.0, 0.25, 0.5, 0.5625, 0.75, 1.0, 2.0, float("nan"), float("inf")])


@given(values=st.lists(VALUES, min_size=1, max_size=12), tol=st.sampled_from([0.0, 1e-4, 0.0625, 0.25, 1.0]),
       early_stopping=st.booleans())
def test_bookkeeping_equals_scikit_learns_method(values, tol, early_stopping):
    """scikit-learn's own ``_update_no_improvement_count``, driven on a stand-in estimator
    with the same history: the same count and best value after every epoch."""
    fake = SimpleNamespace(tol=tol, verbose=False, _no_improvement_count=0, loss_curve_=[],
                           validation_scores_=[], best_loss_=np.inf, best_validation_score_=-np.inf,
                           coefs_=[], intercepts_=[])
    scores = iter(values)
    fake._score = lambda X, y, sample_weight: next(scores)
    for value, (count, best, _) in zip(values, replay(values, early_stopping, tol)):
        fake.loss_curve_.append(value)
        SkMLPClassifier._update_no_improvement_count(fake, early_stopping, None, None, None)
        assert count == fake._no_improvement_count
        theirs = fake.best_validation_score_ if early_stopping else fake.best_loss_
        assert best == theirs or (np.isnan(best) and np.isnan(theirs))


def replay_fit(history, n_train, **rules):
    """:func:`fastnn.optimizers.end_epoch` over a fit's history: the epochs run, and the last decision."""
    best, count, rate = opt.initial_best(rules["higher_is_better"]), 0, rules["learning_rate_init"]
    for epoch, value in enumerate(history, start=1):
        end = opt.end_epoch(value, best, count, rate, epoch * n_train, **rules)
        best, count, rate = end.best, end.count, end.learning_rate
        if end.stop:
            break
    return epoch, end


FITS = [  # scikit-learn settings whose fits stop early, lower the rate, or run to max_iter
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2, learning_rate_init=0.05),
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=1, learning_rate_init=1e-5),
    dict(solver="sgd", learning_rate="invscaling", tol=1e-3, n_iter_no_change=3, power_t=0.25),
    dict(solver="sgd", learning_rate="constant", tol=1e-3, n_iter_no_change=3),
    dict(solver="sgd", learning_rate="adaptive", early_stopping=True, tol=1e-2, n_iter_no_change=2),
    dict(solver="adam", tol=1e-3, n_iter_no_change=2, learning_rate_init=0.01),
    dict(solver="adam", early_stopping=True, tol=1e-2, n_iter_no_change=2),
]


@pytest.mark.parametrize("estimator", [SkMLPClassifier, SkMLPRegressor])
@pytest.mark.parametrize("params", FITS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_end_epoch_replays_scikit_learns_fits(estimator, params):
    """A real scikit-learn fit, then its loss (or validation) history replayed through
    ``end_epoch``: it stops at the same epoch with the same count, best value and rate."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) if estimator is SkMLPClassifier else X @ [1.0, -2, 0, 0.5]
    sk = estimator(hidden_layer_sizes=(5,), max_iter=80, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)
    early = params.get("early_stopping", False)
    n_train = sk.t_ // sk.n_iter_
    schedule = params.get("learning_rate", "constant") if params["solver"] == "sgd" else "constant"
    epochs, end = replay_fit(sk.validation_scores_ if early else sk.loss_curve_, n_train,
                             higher_is_better=early, tol=sk.tol, n_iter_no_change=sk.n_iter_no_change,
                             schedule=schedule, learning_rate_init=sk.learning_rate_init, power_t=sk.power_t)
    assert epochs == sk.n_iter_
    assert end.stop == (sk.n_iter_ < sk.max_iter) or epochs == sk.max_iter
    assert end.count == sk._no_improvement_count
    assert end.best == (sk.best_validation_score_ if early else sk.best_loss_)
    if params["solver"] == "sgd":
        assert end.learning_rate == sk._optimizer.learning_rate
    else:
        assert opt.adam_learning_rate(sk.learning_rate_init, sk.beta_1, sk.beta_2, sk._optimizer.t) \
            == sk._optimizer.learning_rate


def test_the_replayed_fits_exercise_every_branch():
    """Guards the test above against vacuity: some fits stop early, some lower the rate."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    outcomes = []
    for params in FITS:
        sk = SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=80, random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X, y)
        outcomes.append((sk.n_iter_ < sk.max_iter, sk._optimizer.learning_rate < sk.learning_rate_init))
    stopped, lowered = zip(*outcomes)
    assert any(stopped) and not all(stopped)
    assert any(lowered[:2])


# ---------------------------------------------------------------------------- (d) validation


def test_hyper_parameters_are_the_estimators_to_validate():
    """The rules take what they are given (scikit-learn's optimizers do too); the estimator
    validates with scikit-learn's constraints. An unknown rule name is a KeyError."""
    with pytest.raises(KeyError):
        opt.init_state("rmsprop", 3, np.float64)
