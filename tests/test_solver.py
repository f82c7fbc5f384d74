"""The solver engines (fastnn/solvers.py): the fused step against its parts, and the fast epoch
and objective against the reference, for every output layer, update rule and sample weighting."""

import numpy as np
import pytest

from fastnn.kernels.optimizers import _adam_learning_rate, _inplace_adam, _inplace_momentum
from fastnn.kernels.outputs import _inplace_l2_mean, _l2_penalty
from fastnn.kernels.solver import ADAM, MOMENTUM, Solver, _regularised_step
from fastnn.layout import Layout
from fastnn.solvers import Optimizer, Problem, make_solver

from .conftest import DTYPES

RULES = ["momentum", "nesterov", "adam"]
# Whole epochs, relative to the largest reference parameter: the bounds of the engines' whole runs.
BOUND = {np.float32: 1e-5, np.float64: 1e-12}


def _solver(rule, state, alpha, learning_rate=0.05):
    code = ADAM if rule == "adam" else MOMENTUM
    return Solver(0, alpha, code, learning_rate, 0.9, rule == "nesterov", 0.9, 0.999, 1e-8, *state)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_fused_step_is_bitwise_its_parts(dtype, rule, alpha):
    """One pass (L2 mean, penalty, update) equals _inplace_l2_mean then the rule's kernel, bitwise."""
    rng = np.random.default_rng(1)
    layout = Layout([5, 4, 3])
    theta = rng.standard_normal(layout.size).astype(dtype)
    grad = rng.standard_normal(layout.size).astype(dtype)
    state = tuple(np.abs(rng.standard_normal(layout.size)).astype(dtype) for _ in range(2))
    S, t = 7.0, 3
    fused = [theta.copy(), *(s.copy() for s in state)]
    penalty = _regularised_step(fused[0], grad.copy(), layout.table, _solver(rule, fused[1:], alpha), S, t)
    parts = [theta.copy(), *(s.copy() for s in state)]
    mean = grad.copy()
    _inplace_l2_mean(mean, parts[0], layout.table, alpha, S)
    if rule == "adam":
        _inplace_adam(parts[0], mean, parts[1], parts[2], _adam_learning_rate(0.05, 0.9, 0.999, t + 1),
                      0.9, 0.999, 1e-8)
    else:
        _inplace_momentum(parts[0], mean, parts[1], 0.05, 0.9, rule == "nesterov")
    for a, b in zip(fused, parts):
        np.testing.assert_array_equal(a, b)
    assert penalty == _l2_penalty(theta, layout.table)


def _problem(loss, dtype, weighted, rng):
    n, k = 50, {"log_loss": 3, "binary_log_loss": 2, "squared_error": 2, "poisson": 1}[loss]
    X = rng.random((n, 5)).astype(dtype)
    Y = {"log_loss": lambda: np.eye(k)[rng.integers(0, k, n)],
         "binary_log_loss": lambda: (rng.random((n, k)) > 0.5) * 1.0,
         "squared_error": lambda: rng.random((n, k)),
         "poisson": lambda: rng.poisson(2, (n, k)) * 1.0}[loss]().astype(dtype)
    layout = Layout([5, 7, 6, k])
    theta = rng.uniform(-0.5, 0.5, layout.size).astype(dtype)
    weights = rng.uniform(0.5, 2, n).astype(dtype) if weighted else None
    return Problem(X, Y, weights, loss, 1e-3, layout, theta, "tanh")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["log_loss", "binary_log_loss", "squared_error", "poisson"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("weighted", [False, True])
def test_fast_epochs_and_objective_match_the_reference(dtype, loss, rule, weighted):
    """Three shuffled epochs of batches of 16 (the last one short), then the objective."""
    problem = _problem(loss, dtype, weighted, np.random.default_rng(0))
    order = np.random.default_rng(1).permutation(problem.X.shape[0])
    results = []
    for engine in ("reference", "fast"):
        theta = problem.theta.copy()
        solver = make_solver(engine, problem._replace(theta=theta), 16)
        optimizer = Optimizer(rule, theta, 0.01)
        losses = [solver.epoch(order, optimizer) for _ in range(3)]
        results.append((theta, losses, *solver.objective(theta), optimizer.t))
    (theta_r, losses_r, loss_r, grad_r, t_r), (theta_f, losses_f, loss_f, grad_f, t_f) = results
    bound = BOUND[dtype]
    np.testing.assert_allclose(theta_f, theta_r, rtol=0, atol=bound * np.abs(theta_r).max())
    np.testing.assert_allclose(losses_f, losses_r, rtol=bound)
    np.testing.assert_allclose(loss_f, loss_r, rtol=bound)
    np.testing.assert_allclose(grad_f, grad_r, rtol=0, atol=bound * np.abs(grad_r).max())
    assert t_f == t_r == 12  # 3 epochs of 4 batches
