"""scikit-learn's output layers and losses: the reference (fastnn.losses) against scikit-learn,
against central differences, and the kernels (fastnn.kernels.outputs) against the reference.

Bounds:

- reference against scikit-learn's ``_backprop``, float64: the loss within ``rtol 1e-12``,
  every gradient entry within ``1e-12 · max|gradient|``. Not bitwise: the reference works
  in the transposed layout (its GEMMs and sums add in another order), sums each sample's
  loss over outputs before the weighted mean over samples (scikit-learn the other way
  round), and evaluates the logistic function from ``exp(−|z|)`` (scikit-learn: ``expit``);
- reference against central differences, float64: ``rtol 1e-5``, ``atol 1e-8``;
- all-ones sample weights against none: bitwise; integer weights against repeated rows:
  ``1e-12`` (the sums are grouped differently);
- kernels against the reference: bitwise where both do the same elementwise operations
  (the identity output's ``dZ``, the L2 gradient term); otherwise the README's
  ``rtol 1e-5`` (float32) / ``1e-12`` (float64) relative to ``max(1, max|x|)``.
"""

from typing import NamedTuple

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastnn import losses
from fastnn.layout import Layout

HIDDEN = ["identity", "logistic", "tanh", "relu"]  # scikit-learn's hidden activations
SKLEARN_OUTPUT = {"log_loss": "softmax", "binary_log_loss": "logistic", "squared_error": "identity",
                  "poisson": "exp"}


class Problem(NamedTuple):
    loss: str
    n_outputs: int


PROBLEMS = {
    "binary": Problem("binary_log_loss", 1),
    "multilabel": Problem("binary_log_loss", 3),
    "multiclass": Problem("log_loss", 4),
    "regression": Problem("squared_error", 1),
    "regression-3": Problem("squared_error", 3),
    "poisson": Problem("poisson", 1),
    "poisson-2": Problem("poisson", 2),
}


def targets(rng, problem, m):
    """``(m, n_outputs)`` targets of the problem's kind, float64."""
    k = problem.n_outputs
    if problem.loss == "log_loss":
        return np.eye(k)[rng.integers(0, k, m)]
    if problem.loss == "binary_log_loss":
        return rng.integers(0, 2, (m, k)).astype(np.float64)
    if problem.loss == "poisson":
        return rng.poisson(1.5, (m, k)).astype(np.float64)  # zeros too: 0 · ln 0 = 0
    return rng.standard_normal((m, k))


def make_case(problem, hidden=(5, 3), n_features=4, m=9, seed=0):
    """A random network (flat theta and its layout) and batch, in scikit-learn's layout."""
    rng = np.random.default_rng(seed)
    layout = Layout((n_features, *hidden, problem.n_outputs))
    theta = rng.standard_normal(layout.size) * 0.5
    return layout, theta, rng.standard_normal((m, n_features)), targets(rng, problem, m)


def reference(layout, theta, activation, problem, X, Y, alpha=0.0, sample_weight=None):
    """The reference's loss and mean gradient, given scikit-learn's ``(samples, features)`` arrays."""
    return losses.loss_and_gradient(theta, layout, activation, problem.loss, X.T, Y.T, alpha, sample_weight)


def sklearn_backprop(layout, theta, activation, problem, X, Y, alpha, sample_weight):
    """scikit-learn's ``_backprop`` on an estimator holding ``theta``'s weights; its gradient
    packed into fastnn's layout."""
    if problem.loss in ("log_loss", "binary_log_loss"):
        est, y = MLPClassifier(activation=activation, alpha=alpha), Y.astype(bool)  # as its fit binarizes
    else:
        est, y = MLPRegressor(loss=problem.loss, activation=activation, alpha=alpha), Y
    est.coefs_ = [W.T.copy() for W in layout.weights(theta)]
    est.intercepts_ = [b.ravel().copy() for b in layout.biases(theta)]
    est.n_layers_ = layout.n_layers + 1
    est.out_activation_ = SKLEARN_OUTPUT[problem.loss]
    L = layout.n_layers
    loss, coef_grads, intercept_grads = est._backprop(X, y, sample_weight, [X] + [None] * L, [None] * L,
                                                      [None] * L, [None] * L)
    return loss, layout.pack([g.T for g in coef_grads], intercept_grads, np.float64)


def assert_gradient_close(got, want, rtol):
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.max(np.abs(want)))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("name", PROBLEMS)
def test_reference_matches_sklearn_backprop(name, activation, alpha, weighted):
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem)
    sample_weight = np.random.default_rng(1).uniform(0.1, 3.0, X.shape[0]) if weighted else None
    want_loss, want_grad = sklearn_backprop(layout, theta, activation, problem, X, Y, alpha, sample_weight)
    loss, grad = reference(layout, theta, activation, problem, X, Y, alpha, sample_weight)
    assert loss == pytest.approx(want_loss, rel=1e-12, abs=0)
    assert_gradient_close(grad, want_grad, 1e-12)


def objective(layout, theta, activation, problem, X, Y, alpha, sample_weight):
    """The function whose gradient :func:`fastnn.losses.loss_and_gradient` returns: its loss,
    but for squared_error with ``k`` outputs the data term counted ``k`` times (the
    gradient is the sum over outputs', the loss their mean: scikit-learn's choice)."""
    loss, _ = reference(layout, theta, activation, problem, X, Y, alpha, sample_weight)
    if problem.loss != "squared_error":
        return loss
    sums = losses.batch_sums(theta, layout, activation, problem.loss, X.T, Y.T, sample_weight)
    return loss + (problem.n_outputs - 1) * sums.loss / sums.weight


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("name", PROBLEMS)
def test_reference_gradient_matches_central_differences(name, activation):
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem, seed=2)
    sample_weight = np.random.default_rng(3).uniform(0.1, 3.0, X.shape[0])
    args = (activation, problem, X, Y, 0.3, sample_weight)
    _, grad = reference(layout, theta, *args)
    h = 1e-6
    numeric = np.empty_like(theta)
    for k in range(theta.size):
        step = np.zeros_like(theta)
        step[k] = h
        up, down = objective(layout, theta + step, *args), objective(layout, theta - step, *args)
        numeric[k] = (up - down) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", PROBLEMS)
def test_all_ones_sample_weight_is_no_sample_weight(name):
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem, seed=4)
    plain = reference(layout, theta, "tanh", problem, X, Y, 0.3)
    ones = reference(layout, theta, "tanh", problem, X, Y, 0.3, np.ones(X.shape[0]))
    assert ones[0] == plain[0]
    np.testing.assert_array_equal(ones[1], plain[1])


@pytest.mark.parametrize("name", PROBLEMS)
def test_integer_sample_weight_is_repeated_rows(name):
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem, seed=5)
    counts = np.random.default_rng(6).integers(0, 4, X.shape[0])
    counts[0] = 1  # at least one row counts
    weighted = reference(layout, theta, "tanh", problem, X, Y, 0.3, counts.astype(np.float64))
    repeated = reference(layout, theta, "tanh", problem, np.repeat(X, counts, axis=0),
                         np.repeat(Y, counts, axis=0), 0.3)
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-12, abs=0)
    assert_gradient_close(weighted[1], repeated[1], 1e-12)


def test_batch_sums_add_up_over_batches():
    """What a data-parallel reduction relies on: the sums of two halves, added field by field
    and then regularised, are the whole batch's loss and gradient."""
    problem = PROBLEMS["multilabel"]
    layout, theta, X, Y = make_case(problem, m=12, seed=7)
    sample_weight = np.random.default_rng(8).uniform(0.1, 3.0, X.shape[0])
    halves = [losses.batch_sums(theta, layout, "relu", problem.loss, X[rows].T, Y[rows].T,
                                sample_weight[rows]) for rows in (slice(0, 5), slice(5, None))]
    total = losses.Sums(*(a + b for a, b in zip(*halves)))
    loss, grad = losses.regularised_mean(theta, layout, total, 0.3)
    want_loss, want_grad = reference(layout, theta, "relu", problem, X, Y, 0.3, sample_weight)
    assert loss == pytest.approx(want_loss, rel=1e-12, abs=0)
    assert_gradient_close(grad, want_grad, 1e-12)
