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
from scipy.special import xlogy
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastnn import losses
from fastnn.kernels.network import NO_UNITS
from fastnn.kernels.outputs import (
    LOSS_CODES,
    _bias_output,
    _inplace_l2_mean,
    _inplace_output_loss_grad,
    _l2_penalty,
)
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


@pytest.mark.parametrize("name", ["binary", "multilabel", "multiclass"])
def test_reference_clips_saturated_probabilities_as_sklearn(name):
    """Weights scaled up until outputs reach 0 and 1 within ``eps``: the losses' clipping decides
    the value (a wrong clip bound, or none, gives another loss or ``inf``)."""
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem, hidden=(), seed=14)
    theta *= 200
    want_loss, want_grad = sklearn_backprop(layout, theta, "relu", problem, X, Y, 0.0, None)
    loss, grad = reference(layout, theta, "relu", problem, X, Y)
    assert np.isfinite(want_loss)
    assert loss == pytest.approx(want_loss, rel=1e-12, abs=0)
    assert_gradient_close(grad, want_grad, 1e-12)


EDGES = np.array([[0.0, 0.0], [0.0, np.nan], [0.0, np.inf], [0.0, 2.0], [1.5, 0.0], [2.0, np.nan],
                  [1.5, 2.0]])


def test_xlogy_follows_scipy_at_the_edges():
    """``0 · ln 0 = 0``, but ``0 · ln NaN`` is NaN: a Poisson output that underflows to 0 gives
    ``0 / 0`` and a NaN loss, in scikit-learn too."""
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(losses.xlogy(EDGES[:, 0], EDGES[:, 1]), xlogy(EDGES[:, 0], EDGES[:, 1]))


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


# The kernels, in the (samples, features) layout: a kernel array K is the reference's K.T.

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = [(1, 1), (5, 3), (33, 4)]
LOSS_NAMES = list(losses.LOSSES)


def assert_close(got, want, dtype):
    """``|got − want| ≤ RTOL · (|want| + max(1, max|want|))``: the README's bound."""
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def output_case(loss, shape, dtype, seed=9):
    """Pre-bias outputs ``Z``, biases ``b``, targets ``Y`` and weights ``s`` in ``dtype``."""
    rng = np.random.default_rng(seed)
    m, n = shape
    Z, b = rng.standard_normal(shape) * 2, rng.standard_normal(n)
    Y = targets(rng, Problem(loss, n), m)
    s = rng.uniform(0.1, 3.0, m)
    return tuple(a.astype(dtype) for a in (Z, b, Y, s))


def kernel_loss_grad(Z, b, Y, weights, loss):
    """The kernel's ``(dZ, per-row losses)``, ``Z`` left as it was."""
    dZ, per_row = Z.copy(), np.empty(Z.shape[0])
    _inplace_output_loss_grad(dZ, b, Y, weights, LOSS_CODES[loss], per_row)
    return dZ, per_row


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_output_loss_grad_kernel_matches_reference(loss, shape, dtype, weighted):
    Z, b, Y, s = output_case(loss, shape, dtype)
    output, per_sample, delta = losses.LOSSES[loss]
    A = output(Z.T + b[:, None])
    sample_weight = s if weighted else None
    dZ, per_row = kernel_loss_grad(Z, b, Y, s if weighted else np.empty(0, dtype), loss)
    want = delta(A, Y.T, sample_weight).T
    if loss == "squared_error":  # the same elementwise operations
        np.testing.assert_array_equal(dZ, want)
    else:
        assert_close(dZ, want, dtype)
    assert_close(per_row, per_sample(A, Y.T) * (1 if sample_weight is None else sample_weight), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["binary_log_loss", "log_loss"])
def test_output_loss_grad_kernel_clips_as_reference(loss, dtype):
    """Outputs within ``eps`` of 0 and 1, where the clipping decides the loss."""
    Z, b, Y, s = output_case(loss, (33, 4), dtype)
    Z *= 50
    output, per_sample, _ = losses.LOSSES[loss]
    _, per_row = kernel_loss_grad(Z, b, Y, s, loss)
    assert_close(per_row, per_sample(output(Z.T + b[:, None]), Y.T) * s, dtype)


def test_poisson_kernel_loss_at_the_edges():
    """The kernel's ``x · ln y`` where the reference's is at its edges: ``y = 0`` with the output
    ``e^z`` at 0 (NaN, as scikit-learn) and not (0)."""
    Z = np.array([[-800.0], [-800.0], [0.5]])
    b, Y = np.zeros(1), np.array([[0.0], [1.0], [0.0]])
    _, per_row = kernel_loss_grad(Z, b, Y, np.empty(0), "poisson")
    with np.errstate(divide="ignore", invalid="ignore"):
        want = losses.poisson(np.exp(Z.T), Y.T)
    np.testing.assert_array_equal(per_row, want)
    assert np.isnan(per_row[0]) and np.isinf(per_row[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_output_loss_grad_kernel_empty_weights_are_ones(loss, dtype):
    Z, b, Y, s = output_case(loss, (7, 3), dtype)
    empty = kernel_loss_grad(Z, b, Y, np.empty(0, dtype), loss)
    ones = kernel_loss_grad(Z, b, Y, np.ones_like(s), loss)
    for got, want in zip(ones, empty):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_bias_output_kernel_matches_reference(loss, dtype):
    Z, b, _, _ = output_case(loss, (33, 4), dtype)
    out = np.empty_like(Z)
    _bias_output(Z, b, LOSS_CODES[loss], out)
    want = losses.LOSSES[loss].output(Z.T + b[:, None]).T
    if loss == "squared_error":
        np.testing.assert_array_equal(out, want)
    else:
        assert_close(out, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_penalty_kernel_counts_weights_only(dtype):
    layout = Layout((4, 5, 3, 2))
    theta = np.random.default_rng(10).standard_normal(layout.size).astype(dtype)
    want = losses.l2_penalty(theta, layout)
    np.testing.assert_allclose(_l2_penalty(theta, layout.table, 0, 1, NO_UNITS), want, rtol=RTOL[dtype])
    for b in layout.biases(theta):  # biases are not penalised
        b[...] = 1e3
    np.testing.assert_allclose(_l2_penalty(theta, layout.table, 0, 1, NO_UNITS), want, rtol=RTOL[dtype])


@pytest.mark.parametrize("units", [NO_UNITS, np.array([0, 1, 3, 5])], ids=["rows", "units"])
def test_l2_penalty_shares_of_workers_add_up_to_the_whole(units):
    """Three workers' shares of Σ‖W‖² (near-equal blocks of every layer, or of the first layer
    the rows of each worker's units) cover every weight once."""
    layout = Layout((4, 5, 3, 2))
    theta = np.random.default_rng(11).standard_normal(layout.size)
    shares = [_l2_penalty(theta, layout.table, w, 3, units) for w in range(3)]
    assert min(shares) > 0
    np.testing.assert_allclose(sum(shares), losses.l2_penalty(theta, layout), rtol=1e-14)


@pytest.mark.parametrize("divisor", [1.0, 7.3, 64.0, 0.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_mean_kernel_is_bitwise_the_reference(dtype, divisor):
    layout = Layout((4, 5, 3, 2))
    rng = np.random.default_rng(11)
    theta, summed = (rng.standard_normal(layout.size).astype(dtype) for _ in range(2))
    _, want = losses.regularised_mean(theta, layout, losses.Sums(0.0, summed, divisor), 0.3)
    grad = summed.copy()
    _inplace_l2_mean(grad, theta, layout.table, 0.3, divisor)
    np.testing.assert_array_equal(grad, want)


@pytest.mark.parametrize("name", PROBLEMS)
def test_kernels_assemble_the_reference_loss_and_gradient(name):
    """A network without hidden layers, its GEMMs in NumPy and the rest by the kernels: the
    caller's sum of the per-row losses, over ``S``, plus the L2 term, is the reference's loss."""
    problem = PROBLEMS[name]
    layout, theta, X, Y = make_case(problem, hidden=(), seed=12)
    s = np.random.default_rng(13).uniform(0.1, 3.0, X.shape[0])
    (W,), (b,) = layout.weights(theta), layout.biases(theta)
    dZ, per_row = kernel_loss_grad(X @ W.T, b.ravel(), Y, s, problem.loss)
    grad = layout.pack([dZ.T @ X], [dZ.sum(axis=0)], np.float64)
    _inplace_l2_mean(grad, theta, layout.table, 0.3, s.sum())
    loss = per_row.sum() / s.sum() + 0.15 * _l2_penalty(theta, layout.table, 0, 1, NO_UNITS) / s.sum()
    want_loss, want_grad = reference(layout, theta, "relu", problem, X, Y, 0.3, s)
    assert loss == pytest.approx(want_loss, rel=1e-12, abs=0)
    assert_gradient_close(grad, want_grad, 1e-12)
