"""The solver engines (fastnn/solvers.py): the fast epoch and objective against the reference, for
every output layer, update rule and sample weighting; subnormals flushed only inside the kernels."""

import numpy as np
import pytest

from fastnn.kernels._fpu import X86
from fastnn.layout import Layout
from fastnn.solvers import Optimizer, Problem, make_solver

from .conftest import DTYPES

RULES = ["momentum", "nesterov", "adam"]
# Whole epochs, relative to the largest reference parameter: the bounds of the engines' whole runs.
BOUND = {np.float32: 1e-5, np.float64: 1e-12}


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


@pytest.mark.skipif(not X86, reason="flushing subnormals is x86's MXCSR")
def test_subnormals_flush_inside_an_epoch_only():
    """A subnormal weight whose gradient is exactly 0 (it leaves a dead ReLU unit) is read as
    zero inside the epoch and so written back as 0; outside, NumPy still keeps subnormals."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(2))
    theta = problem.theta.copy()
    layout = problem.layout
    W0, b0 = layout.weights(theta)[0], layout.biases(theta)[0]
    W0[0], b0[0] = -1.0, -100.0  # unit 0 of the first hidden layer: dead for inputs in [0, 1)
    W1 = layout.weights(theta)[1]
    W1[:, 0] = 1e-39  # subnormal in float32; its gradient is dZ · A[unit 0] = 0
    assert W1[0, 0] > 0
    solver = make_solver("fast", problem._replace(theta=theta, activation="relu", alpha=0.0), 16)
    solver.epoch(None, Optimizer("momentum", theta, 0.1))
    np.testing.assert_array_equal(W1[:, 0], 0)
    assert np.float32(1e-20) * np.float32(1e-20) > 0  # the flag does not outlive the kernel
