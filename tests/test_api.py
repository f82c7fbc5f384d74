"""The scikit-learn contract of MLPClassifier."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn import MLPClassifier


def float32_rounding(estimator):
    """scikit-learn compares predict_proba of permuted rows at rtol 1e-7, below float32's
    epsilon (1.2e-7). OpenBLAS's float32 GEMM (its small-matrix kernels, on AVX-512
    machines) rounds a column by its position in the product, so a float32 model's
    probabilities for a permuted batch may differ in the last bit: measured 7e-7 in the
    second layer of the reference engine. test_predictions_ignore_row_order holds them
    to the float32 bound instead."""
    if estimator.get_params()["dtype"] != "float32":
        return {}
    return {"check_methods_sample_order_invariance": "float32 GEMM rounds by column position"}


@parametrize_with_checks([MLPClassifier(epochs=3, random_state=0),
                          MLPClassifier(epochs=3, random_state=0, engine="reference")],
                         expected_failed_checks=float32_rounding)
@pytest.mark.filterwarnings("error::fastnn.TrainingFailedWarning")  # their small data sets train fine
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float64", 1e-14)])
def test_predictions_ignore_row_order(digits, engine, dtype, rtol):
    """Permuting the rows permutes the probabilities (to the dtype's rounding) and the labels."""
    X_train, X_test, y_train, _ = digits
    model = MLPClassifier(epochs=3, random_state=0, engine=engine, dtype=dtype).fit(X_train, y_train)
    idx = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(model.predict_proba(X_test[idx]), model.predict_proba(X_test)[idx],
                               rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.predict(X_test[idx]), model.predict(X_test)[idx])


def test_get_set_params_and_clone():
    model = MLPClassifier(hidden_layer_sizes=(16, 8), learning_rate=0.05)
    assert model.get_params()["hidden_layer_sizes"] == (16, 8)
    model.set_params(epochs=4, activation="tanh")
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "weights_")


@pytest.mark.parametrize("activation, init", [("relu", "kaiming"), ("leaky_relu", "kaiming"),
                                              ("sigmoid", "xavier"), ("tanh", "xavier")])
def test_default_init_follows_the_activation(digits, activation, init):
    """init=None: Kaiming for ReLU and Leaky ReLU, Xavier for sigmoid and tanh (README)."""
    X_train, _, y_train, _ = digits
    model = MLPClassifier(activation=activation, epochs=1, random_state=0, hidden_layer_sizes=(16,))
    default = clone(model).fit(X_train, y_train)
    named = clone(model).set_params(init=init).fit(X_train, y_train)
    for got, want in zip(default.weights_, named.weights_):
        np.testing.assert_array_equal(got, want)


def test_string_labels_and_shapes(digits):
    X_train, X_test, y_train, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = MLPClassifier(hidden_layer_sizes=(32, 16), random_state=0).fit(X_train, names[y_train])
    np.testing.assert_array_equal(model.classes_, np.sort(names))
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert set(model.predict(X_test)) <= set(names)
    assert model.score(X_test, names[y_test]) > 0.9
    assert [W.shape for W in model.weights_] == [(32, 64), (16, 32), (10, 16)]
    assert [B.shape for B in model.biases_] == [(32, 1), (16, 1), (10, 1)]
    assert len(model.loss_curve_) == model.n_iter_ == 10


def test_partial_fit_is_one_epoch_from_the_current_state(digits):
    X_train, _, y_train, _ = digits
    full = MLPClassifier(epochs=3, random_state=0).fit(X_train, y_train)
    step = MLPClassifier(random_state=0)
    for _ in range(3):
        step.partial_fit(X_train, y_train, classes=np.arange(10))
    assert step.n_iter_ == 3
    for got, want in zip(step.weights_, full.weights_):
        np.testing.assert_array_equal(got, want)
    assert step.loss_curve_ == full.loss_curve_


def test_partial_fit_needs_classes_first_and_accepts_subsets(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be given"):
        model.partial_fit(X_train, y_train)
    few = y_train < 3
    model.partial_fit(X_train[few], y_train[few], classes=np.arange(10))
    assert model.predict_proba(X_train[:2]).shape == (2, 10)


@pytest.mark.parametrize("classes", [[2, 1, 0], [0, 1, 1, 2], np.array([1, 2, 0])],
                         ids=["reversed", "repeated", "shuffled array"])
def test_partial_fit_classes_in_any_order(digits, classes):
    """classes names a set: its order and repeats must not change the model."""
    X_train, X_test, y_train, _ = digits
    few = y_train < 3
    want = MLPClassifier(random_state=0).partial_fit(X_train[few], y_train[few], classes=[0, 1, 2])
    got = MLPClassifier(random_state=0).partial_fit(X_train[few], y_train[few], classes=classes)
    np.testing.assert_array_equal(got.classes_, [0, 1, 2])
    for a, b in zip(got.weights_ + got.biases_, want.weights_ + want.biases_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.predict(X_test), want.predict(X_test))


def test_warm_start_continues(digits):
    X_train, _, y_train, _ = digits
    once = MLPClassifier(epochs=4, random_state=0).fit(X_train, y_train)
    twice = MLPClassifier(epochs=2, random_state=0, warm_start=True)
    twice.fit(X_train, y_train).fit(X_train, y_train)
    assert twice.n_iter_ == 4
    for got, want in zip(twice.weights_, once.weights_):
        np.testing.assert_array_equal(got, want)
    cold = MLPClassifier(epochs=2, random_state=0).fit(X_train, y_train).fit(X_train, y_train)
    assert cold.n_iter_ == 2


def test_verbose_prints_each_epoch(digits, capsys):
    X_train, _, y_train, _ = digits
    MLPClassifier(epochs=2, verbose=True).fit(X_train, y_train)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]


def test_history_records_each_epoch(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(epochs=3, track_gradients=True, hidden_layer_sizes=(8, 8)).fit(X_train, y_train)
    assert set(model.history_) == {"loss", "accuracy", "time", "grad_norms"}
    assert all(len(v) == 3 for v in model.history_.values())
    assert all(0 <= a <= 1 for a in model.history_["accuracy"])
    assert all(t > 0 for t in model.history_["time"])
    assert np.shape(model.history_["grad_norms"]) == (3, 3)


def test_pipeline_and_grid_search_in_parallel(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(epochs=3, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__learning_rate": [0.01, 0.1]}, cv=2, n_jobs=2)
    grid.fit(X_train, y_train)
    assert grid.best_params_["mlpclassifier__learning_rate"] in (0.01, 0.1)
    assert grid.score(X_test, y_test) > 0.85


def blas_threads():
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize("n_threads, outer, inside", [(None, None, None), (1, None, 1), (None, 1, 1)])
# 64 x 512 first-layer weights: just big enough to split (fastnn.split.MIN_SPLIT_WEIGHTS).
@pytest.mark.parametrize("engine, hidden", [("fast", (512,)), ("fast", (512, 16)), ("fast", (32,)),
                                            ("fast", (32, 16)), ("reference", (32,))])
def test_threads_during_fit(digits, made_engines, n_threads, outer, inside, engine, hidden):
    """fit uses every core (or n_threads), never more than an outer limit (a joblib worker's).
    The fast engine trains a network with a large first layer with that many workers over one-thread
    BLAS; otherwise BLAS gets the threads. Numba's pool runs one thread."""
    import numba
    from threadpoolctl import threadpool_limits

    from fastnn._threads import available_cores

    X_train, _, y_train, _ = digits
    seen = []
    model = MLPClassifier(epochs=1, n_threads=n_threads, engine=engine, hidden_layer_sizes=hidden)
    with threadpool_limits(outer):
        # Every core unless the environment (OPENBLAS_NUM_THREADS, ...) already allows fewer.
        threads = inside or min(available_cores(), *blas_threads())
        model.fit(X_train, y_train, on_epoch=lambda record: seen.append(
            (blas_threads(), numba.get_num_threads())))
    split = engine == "fast" and hidden[0] == 512 and threads > 1
    assert seen == [({1 if split else threads}, 1)]
    assert [e.n_workers for e in made_engines] == ([threads] if split else [1] if engine == "fast" else [])


def test_fit_restores_thread_settings(digits):
    import numba
    from threadpoolctl import threadpool_info

    X_train, _, y_train, _ = digits
    before_numba = numba.get_num_threads()
    before_blas = [pool["num_threads"] for pool in threadpool_info()]
    MLPClassifier(epochs=1, n_threads=1, batch_size=128).fit(X_train, y_train)
    assert numba.get_num_threads() == before_numba
    assert [pool["num_threads"] for pool in threadpool_info()] == before_blas


def fit_and_report_blas_threads(X, y):
    seen = []
    MLPClassifier(epochs=1, random_state=0).fit(X, y, on_epoch=lambda record: seen.append(blas_threads()))
    return seen


def test_joblib_workers_do_not_oversubscribe(digits):
    """GridSearchCV(n_jobs=2) runs fits in joblib workers: each gets one BLAS thread on 2 cores."""
    from joblib import Parallel, delayed

    from fastnn._threads import available_cores

    X_train, _, y_train, _ = digits
    per_worker = max(1, available_cores() // 2)
    seen = Parallel(n_jobs=2)(delayed(fit_and_report_blas_threads)(X_train, y_train) for _ in range(2))
    assert seen == [[{per_worker}], [{per_worker}]]
