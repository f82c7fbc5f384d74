"""fastnn's estimators land on scikit-learn's models: same weights to a stated bound, same
iteration counts, loss curves and predictions, for every solver and option, on both engines.

Bounds, relative to the largest parameter of scikit-learn's model: ``1e-10`` in float64 (the
two differ only in the order of sums inside GEMMs and reductions, and the runs here are short
and well conditioned: see ``conftest.assert_stable``); ``1e-4`` in float32. L-BFGS is held
to the same bounds: both call ``scipy.optimize.minimize`` with the same objective.
"""

import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

import fastnn

BOUND = {np.float64: 1e-10, np.float32: 1e-4}

digits_X, digits_y = load_digits(return_X_y=True)
digits_X = digits_X[:300] / 16
digits_y = digits_y[:300]
multilabel_X, multilabel_Y = make_multilabel_classification(n_samples=200, n_features=12, n_classes=4,
                                                            random_state=0)
regression_X, regression_Y = make_regression(n_samples=200, n_features=8, n_targets=2, noise=0.1,
                                             random_state=0)
regression_X = regression_X / 3
regression_Y = regression_Y / regression_Y.std(axis=0)

DATA = {
    "multiclass": (digits_X, digits_y),
    "binary": (digits_X, digits_y % 2),
    "multilabel": (multilabel_X / 8, multilabel_Y),
    "regression": (regression_X, regression_Y[:, 0]),
    "two targets": (regression_X, regression_Y),
    "poisson": (regression_X, np.exp(regression_Y[:, 0] / 2)),
}

# (data, constructor arguments): every solver, rule, schedule and option at least once.
CASES = [
    ("multiclass", dict(solver="adam")),
    ("multiclass", dict(solver="sgd")),
    ("multiclass", dict(solver="sgd", nesterovs_momentum=False, alpha=0.01)),
    ("multiclass", dict(solver="sgd", momentum=0, alpha=0, learning_rate_init=0.1)),
    ("multiclass", dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5)),
    ("multiclass", dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=2, tol=0.05, max_iter=25)),
    ("multiclass", dict(solver="adam", early_stopping=True, n_iter_no_change=3)),
    # Adam has no schedule: "adaptive" must not divide its rate; it stops on the first stall.
    ("multiclass", dict(solver="adam", learning_rate="adaptive", n_iter_no_change=2, tol=0.05, max_iter=25)),
    ("multiclass", dict(solver="adam", activation="tanh", hidden_layer_sizes=(12, 8), batch_size=64)),
    ("multiclass", dict(solver="sgd", activation="logistic", shuffle=False, learning_rate_init=0.2)),
    ("multiclass", dict(solver="lbfgs", activation="tanh", max_iter=30)),
    ("binary", dict(solver="adam", activation="identity")),
    ("binary", dict(solver="sgd", early_stopping=True)),
    ("binary", dict(solver="lbfgs", max_iter=20)),
    ("multilabel", dict(solver="adam")),
    ("multilabel", dict(solver="sgd", alpha=0.1)),
    ("regression", dict(solver="adam", learning_rate_init=0.01)),
    ("regression", dict(solver="sgd", learning_rate_init=0.01)),
    ("regression", dict(solver="lbfgs", max_iter=30)),
    ("two targets", dict(solver="adam", early_stopping=True, learning_rate_init=0.01)),
    ("poisson", dict(solver="adam", learning_rate_init=0.01)),
    # 64 × 600 first-layer weights: the fast engine shares each batch between worker threads, its
    # rows at batch 200 ("auto" here) and the first hidden layer's units at batch 50.
    ("multiclass", dict(solver="adam", hidden_layer_sizes=(600,), max_iter=5)),
    ("multiclass", dict(solver="sgd", hidden_layer_sizes=(600,), alpha=0.01, batch_size=50, max_iter=5)),
]


def _pair(name, kwargs, engine, dtype, weighted=False):
    X, y = DATA[name]
    X = X.astype(dtype)
    kind = "MLPRegressor" if name in ("regression", "two targets", "poisson") else "MLPClassifier"
    settings = {"hidden_layer_sizes": (16,), "max_iter": 15, "random_state": 0, **kwargs}
    if name == "poisson":
        settings["loss"] = "poisson"
    sample_weight = np.random.default_rng(0).uniform(0.5, 2, X.shape[0]) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = getattr(sk, kind)(**settings).fit(X, y, sample_weight=sample_weight)
        ours = getattr(fastnn, kind)(engine=engine, **settings).fit(X, y, sample_weight=sample_weight)
    return X, theirs, ours


def assert_same_model(X, theirs, ours, dtype):
    bound = BOUND[dtype]
    largest = max(np.abs(p).max() for p in theirs.coefs_ + theirs.intercepts_)
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=bound * largest)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.out_activation_ == theirs.out_activation_
    if hasattr(theirs, "loss_curve_"):
        assert len(ours.loss_curve_) == len(theirs.loss_curve_)
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=bound)
        assert ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=bound)
    if theirs.validation_scores_ if hasattr(theirs, "validation_scores_") else None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=bound)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=bound)
    if hasattr(theirs, "classes_"):
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=bound * 10)
    else:
        scale = np.abs(theirs.predict(X)).max()
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=0, atol=bound * 10 * scale)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in a.items())}"
                                                     for n, a in CASES])
def test_same_model_as_sklearn_float64(name, kwargs, engine):
    X, theirs, ours = _pair(name, kwargs, engine, np.float64)
    assert_same_model(X, theirs, ours, np.float64)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("name, kwargs", [CASES[0], CASES[2], CASES[11], CASES[16]])
def test_same_model_with_sample_weight(name, kwargs, engine):
    X, theirs, ours = _pair(name, kwargs, engine, np.float64, weighted=True)
    assert_same_model(X, theirs, ours, np.float64)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("name, kwargs", [CASES[0], CASES[1], CASES[14], CASES[15]])
def test_same_model_as_sklearn_float32(name, kwargs, engine):
    X, theirs, ours = _pair(name, kwargs, engine, np.float32)
    assert ours.coefs_[0].dtype == theirs.coefs_[0].dtype == np.float32
    assert_same_model(X, theirs, ours, np.float32)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_partial_fit_same_as_sklearn(engine):
    X, y = DATA["multiclass"]
    settings = dict(hidden_layer_sizes=(16,), solver="adam", random_state=0)
    theirs, ours = sk.MLPClassifier(**settings), fastnn.MLPClassifier(engine=engine, **settings)
    for start in range(0, 300, 100):
        theirs.partial_fit(X[start:start + 100], y[start:start + 100], classes=np.arange(10))
        ours.partial_fit(X[start:start + 100], y[start:start + 100], classes=np.arange(10))
    assert_same_model(X, theirs, ours, np.float64)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_warm_start_same_as_sklearn(engine):
    X, y = DATA["multiclass"]
    settings = dict(hidden_layer_sizes=(16,), solver="sgd", max_iter=5, warm_start=True, random_state=0)
    theirs, ours = sk.MLPClassifier(**settings), fastnn.MLPClassifier(engine=engine, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            theirs.fit(X, y)
            ours.fit(X, y)
    assert_same_model(X, theirs, ours, np.float64)


def test_wide_first_layers_share_batches_between_workers():
    """The two cases above run the shared epoch wherever there are two cores (the rule of the
    split epoch: enough first-layer weights, one worker per core)."""
    from fastnn._threads import available_cores
    from fastnn.layout import Layout

    model = fastnn.MLPClassifier(hidden_layer_sizes=(600,))
    assert model._solver_workers(Layout([64, 600, 10])) == min(2, available_cores())
    assert model._solver_workers(Layout([64, 16, 10])) == 1
    assert fastnn.MLPClassifier(engine="reference")._solver_workers(Layout([64, 600, 10])) == 1


@pytest.mark.parametrize("n", [1, 2, 7, 1797])
@pytest.mark.parametrize("seed", [0, 42])
def test_epoch_shuffle_draws_as_scikit_learn(n, seed):
    """fastnn's per-epoch shuffle gives scikit-learn's order, twice in a row (the second from a
    reordered index), and leaves the generator where scikit-learn's leaves it."""
    from sklearn.utils import shuffle

    from fastnn.estimator import shuffled

    ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
    a = b = np.arange(n)
    for _ in range(2):
        a, b = shuffled(a, ours), shuffle(b, random_state=theirs)
        np.testing.assert_array_equal(a, b)
    assert ours.randint(1 << 30) == theirs.randint(1 << 30)
