"""The scikit-learn contract of MLPClassifier."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn import MLPClassifier, MLPRegressor
from fastnn._aligned import ALIGNMENT

from .conftest import flat_vector, placed


def float32_rounding(estimator):
    """scikit-learn compares predict_proba of permuted rows at rtol 1e-7, below float32's
    epsilon (1.2e-7). OpenBLAS's float32 GEMM (its small-matrix kernels, on AVX-512
    machines) rounds a column by its position in the product, so a float32 model's
    probabilities for a permuted batch may differ in the last bit: measured 7e-7 in the
    second layer of the reference engine. test_predictions_ignore_row_order holds them
    to the float32 bound instead."""
    if estimator.get_params()["dtype"] not in ("float32", np.float32):
        return {}
    return {"check_methods_sample_order_invariance": "float32 GEMM rounds by column position"}


NO_CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"  # max_iter epochs, no early stop
# The old engine's training rule: plain mini-batch SGD at rate 0.1 (no momentum, no L2 term).
PLAIN_SGD = {"solver": "sgd", "momentum": 0.0, "alpha": 0.0, "learning_rate_init": 0.1, "batch_size": 32,
             "n_iter_no_change": float("inf")}


@parametrize_with_checks([MLPClassifier(max_iter=5, random_state=0),
                          MLPClassifier(max_iter=5, random_state=0, engine="reference"),
                          MLPRegressor(max_iter=5, random_state=0),
                          MLPRegressor(max_iter=5, random_state=0, engine="reference")],
                         expected_failed_checks=float32_rounding)
@pytest.mark.filterwarnings("error::fastnn.TrainingFailedWarning")  # their small data sets train fine
def test_sklearn_estimator_checks(estimator, check):
    # These two require a good score on their data: 5 epochs are too few for it, for scikit-learn's own
    # MLPs too, which scikit-learn checks with max_iter=100 (its PER_ESTIMATOR_CHECK_PARAMS).
    name = getattr(check, "func", check).__name__
    if name in ("check_classifiers_train", "check_regressors_train"):
        estimator.set_params(max_iter=100)
    check(estimator)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float64", 1e-14)])
def test_predictions_ignore_row_order(digits, engine, dtype, rtol):
    """Permuting the rows permutes the probabilities (to the dtype's rounding) and the labels."""
    X_train, X_test, y_train, _ = digits
    model = MLPClassifier(max_iter=3, random_state=0, engine=engine, dtype=dtype).fit(X_train, y_train)
    idx = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(model.predict_proba(X_test[idx]), model.predict_proba(X_test)[idx],
                               rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.predict(X_test[idx]), model.predict(X_test)[idx])


def test_get_set_params_and_clone():
    model = MLPClassifier(hidden_layer_sizes=(16, 8), learning_rate_init=0.05)
    assert model.get_params()["hidden_layer_sizes"] == (16, 8)
    assert model.get_params()["learning_rate_init"] == 0.05
    model.set_params(max_iter=4, activation="tanh")
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.get_params()["max_iter"] == 4 and copy.get_params()["activation"] == "tanh"
    assert not hasattr(copy, "coefs_")


def test_defaults_are_scikit_learns():
    """Every parameter scikit-learn's estimators have, with scikit-learn's default."""
    from sklearn import neural_network

    for ours, theirs in ((MLPClassifier(), neural_network.MLPClassifier()),
                         (MLPRegressor(), neural_network.MLPRegressor())):
        mine = ours.get_params()
        for name, value in theirs.get_params().items():
            assert mine[name] == value, name
        assert set(mine) - set(theirs.get_params()) == {"engine", "dtype", "n_threads", "init",
                                                        "track_gradients"}


def untrained(model, X, y, monkeypatch):
    """``model`` fitted with epochs that change nothing: its initial coefficients and intercepts."""
    from fastnn import solvers

    for cls in (solvers.FastSolver, solvers.ReferenceSolver):
        monkeypatch.setattr(cls, "epoch", lambda self, order, optimizer: 0.0)
    return model.fit(X, y)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "logistic", "tanh", "identity"])
def test_default_init_is_scikit_learns_glorot_uniform(digits, monkeypatch, activation, engine):
    """init=None: scikit-learn's draws from RandomState(random_state), layer by layer the
    coefficients then the intercepts, U(±sqrt(6 / (fan_in + fan_out))), 2 instead of 6 for logistic."""
    from .test_training import glorot_uniform

    X_train, _, y_train, _ = digits
    model = MLPClassifier(activation=activation, max_iter=1, random_state=0, hidden_layer_sizes=(16, 8),
                          engine=engine)
    untrained(model, X_train, y_train, monkeypatch)
    coefs, intercepts = glorot_uniform([64, 16, 8, 10], activation, 0)
    for got, want in zip(model.coefs_ + model.intercepts_, coefs + intercepts):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("init, gain", [("kaiming", 2), ("xavier", 1)])
def test_named_inits_are_the_tutorials(monkeypatch, init, gain):
    """init="kaiming" / "xavier": N(0, gain / fan_in) coefficients, zero intercepts."""
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 400)), np.arange(50) % 3
    model = untrained(MLPClassifier(hidden_layer_sizes=(300,), init=init, max_iter=1, random_state=0), X, y,
                      monkeypatch)
    assert model.coefs_[0].shape == (400, 300) and not any(b.any() for b in model.intercepts_)
    assert np.std(model.coefs_[0]) == pytest.approx(np.sqrt(gain / 400), rel=0.02)
    assert abs(np.mean(model.coefs_[0])) < 0.01 * np.sqrt(gain / 400)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_string_labels_and_shapes(digits, dtype):
    X_train, X_test, y_train, y_test = (np.asarray(a, dtype) if k < 2 else a for k, a in enumerate(digits))
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = MLPClassifier(hidden_layer_sizes=(32, 16), random_state=0).fit(X_train, names[y_train])
    np.testing.assert_array_equal(model.classes_, np.sort(names))
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and proba.dtype == dtype  # dtype=None follows X
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert set(model.predict(X_test)) <= set(names)
    assert model.score(X_test, names[y_test]) > 0.9
    # scikit-learn's layout: coefs_[l] (n_in, n_out), intercepts_[l] (n_out,), views of one vector.
    assert [W.shape for W in model.coefs_] == [(64, 32), (32, 16), (16, 10)]
    assert [B.shape for B in model.intercepts_] == [(32,), (16,), (10,)]
    assert all(p.dtype == dtype for p in model.coefs_ + model.intercepts_)
    theta, owner = flat_vector(model)
    assert owner.nbytes <= theta.nbytes + ALIGNMENT  # one vector, with at most its alignment to spare
    assert all(np.shares_memory(p, theta) for p in model.coefs_ + model.intercepts_)
    assert model.n_layers_ == 4 and model.n_outputs_ == 10 and model.out_activation_ == "softmax"
    assert len(model.loss_curve_) == model.n_iter_ and 1 <= model.n_iter_ <= 200
    assert model.t_ == model.n_iter_ * len(X_train)


def test_binary_classification_has_one_logistic_unit(digits):
    X_train, X_test, y_train, _ = digits
    y = np.where(y_train < 5, "low", "high")
    model = MLPClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X_train, y)
    assert model.coefs_[-1].shape == (8, 1) and model.intercepts_[-1].shape == (1,)
    assert model.n_outputs_ == 1 and model.out_activation_ == "logistic"
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X_test), model.classes_[(proba[:, 1] > 0.5).astype(int)])


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_partial_fit_is_one_epoch_from_the_current_state(digits):
    """Three partial_fit calls are three epochs of fit, Adam's state carried over. Without shuffling:
    as in scikit-learn, each call shuffles anew the rows in their stored order (fit shuffles the
    previous epoch's order again), with a new RandomState from an int random_state."""
    X_train, _, y_train, _ = digits
    full = MLPClassifier(max_iter=3, random_state=0, shuffle=False,
                         n_iter_no_change=float("inf")).fit(X_train, y_train)
    step = MLPClassifier(random_state=0, shuffle=False)
    for _ in range(3):
        step.partial_fit(X_train, y_train, classes=np.arange(10))
    assert step.n_iter_ == 1 and full.n_iter_ == 3  # scikit-learn counts the iterations of the last call
    assert step.t_ == full.t_ == 3 * len(X_train)
    for got, want in zip(step.coefs_ + step.intercepts_, full.coefs_ + full.intercepts_):
        np.testing.assert_array_equal(got, want)
    assert step.loss_curve_ == full.loss_curve_


def test_partial_fit_needs_classes_first_and_accepts_subsets(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
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
    for a, b in zip(got.coefs_ + got.intercepts_, want.coefs_ + want.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.predict(X_test), want.predict(X_test))
    # A later call may name the same set in any order too; another set is refused.
    got.partial_fit(X_train[few], y_train[few], classes=classes)
    with pytest.raises(ValueError, match="is not the same as on last call"):
        got.partial_fit(X_train[few], y_train[few], classes=[0, 1, 2, 3])


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_warm_start_continues(digits):
    """Plain SGD keeps no optimizer state: without shuffling (see the partial_fit test), two warm fits
    of 2 epochs are one of 4. As in scikit-learn, n_iter_ counts the last fit's epochs, t_ every
    sample seen."""
    X_train, _, y_train, _ = digits
    once = MLPClassifier(max_iter=4, random_state=0, shuffle=False, **PLAIN_SGD).fit(X_train, y_train)
    twice = MLPClassifier(max_iter=2, random_state=0, shuffle=False, warm_start=True, **PLAIN_SGD)
    twice.fit(X_train, y_train).fit(X_train, y_train)
    assert twice.n_iter_ == 2 and twice.t_ == once.t_ == 4 * len(X_train)
    for got, want in zip(twice.coefs_ + twice.intercepts_, once.coefs_ + once.intercepts_):
        np.testing.assert_array_equal(got, want)
    assert twice.loss_curve_ == once.loss_curve_
    cold = MLPClassifier(max_iter=2, random_state=0, **PLAIN_SGD).fit(X_train, y_train).fit(X_train, y_train)
    assert cold.n_iter_ == 2 and cold.t_ == 2 * len(X_train) and len(cold.loss_curve_) == 2


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_verbose_prints_each_epoch(digits, capsys):
    X_train, _, y_train, _ = digits
    MLPClassifier(max_iter=2, verbose=True).fit(X_train, y_train)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["Iteration 1", "Iteration 2"]


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_history_records_each_epoch(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(max_iter=3, track_gradients=True, hidden_layer_sizes=(8, 8), early_stopping=True,
                          n_iter_no_change=float("inf")).fit(X_train, y_train)
    assert set(model.history_) == {"loss", "validation_score", "time", "grad_norms"}
    assert all(len(v) == 3 for v in model.history_.values())
    assert model.history_["loss"] == model.loss_curve_
    assert model.history_["validation_score"] == model.validation_scores_
    assert all(0 <= a <= 1 for a in model.history_["validation_score"])
    assert all(t > 0 for t in model.history_["time"])
    assert np.shape(model.history_["grad_norms"]) == (3, 3)
    plain = MLPClassifier(max_iter=3, hidden_layer_sizes=(8,)).fit(X_train, y_train)
    assert set(plain.history_) == {"loss", "time"} and all(len(v) == 3 for v in plain.history_.values())


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_pipeline_and_grid_search_in_parallel(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=3, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__learning_rate_init": [0.01, 0.1]}, cv=2, n_jobs=2)
    grid.fit(X_train, y_train)
    assert grid.best_params_["mlpclassifier__learning_rate_init"] in (0.01, 0.1)
    assert grid.score(X_test, y_test) > 0.85


def blas_threads():
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("n_threads, outer, inside", [(None, None, None), (1, None, 1), (None, 1, 1)])
# 64 x 512 first-layer weights: what fastnn.split.split_workers shares out to worker threads, whose
# one-thread BLAS limit holds inside an epoch only; on_epoch sees the fit's threads.
@pytest.mark.parametrize("engine, hidden", [("fast", (512,)), ("fast", (512, 16)), ("fast", (32,)),
                                            ("fast", (32, 16)), ("reference", (32,))])
def test_threads_during_fit(digits, made_engines, n_threads, outer, inside, engine, hidden):
    """fit uses every core (or n_threads), never more than an outer limit (a joblib worker's), all
    of them BLAS's; Numba's pool runs one thread. The old engines (fastnn.fast) are not used."""
    import numba
    from threadpoolctl import threadpool_limits

    from fastnn._threads import available_cores

    X_train, _, y_train, _ = digits
    seen = []
    model = MLPClassifier(max_iter=1, n_threads=n_threads, engine=engine, hidden_layer_sizes=hidden)
    with threadpool_limits(outer):
        # Every core unless the environment (OPENBLAS_NUM_THREADS, ...) already allows fewer.
        threads = inside or min(available_cores(), *blas_threads())
        model.fit(X_train, y_train, on_epoch=lambda record: seen.append(
            (blas_threads(), numba.get_num_threads())))
    assert seen == [({threads}, 1)]
    assert made_engines == []


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("hidden, want", [((512,), 1), ((32,), 2)], ids=["split", "serial"])
def test_validation_scored_with_the_epochs_blas_threads(digits, monkeypatch, hidden, want):
    """Early stopping's score between two epochs of split workers calls BLAS with one thread, as
    the epochs do (OpenBLAS's threads spin on after a wider call, on the workers' cores:
    bench/validation_threads.py); a serial fit scores with its own threads (here 2)."""
    from fastnn import estimator, split
    from fastnn.layout import Layout

    monkeypatch.setattr(split, "available_cores", lambda: 2)
    seen = []

    def spy(*args):
        seen.append(blas_threads())
        return predict_output(*args)

    predict_output = estimator.predict_output
    monkeypatch.setattr(estimator, "predict_output", spy)
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden, max_iter=3, n_threads=2, early_stopping=True, random_state=0,
                          n_iter_no_change=float("inf")).fit(X_train, y_train)
    assert model._solver_workers(Layout([64, *hidden, 10])) == (2 if want == 1 else 1)
    assert seen[:3] == [{want}] * 3  # then the training rows' check at the end of fit (fastnn._diagnostics)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_fit_restores_thread_settings(digits):
    import numba
    from threadpoolctl import threadpool_info

    X_train, _, y_train, _ = digits
    before_numba = numba.get_num_threads()
    before_blas = [pool["num_threads"] for pool in threadpool_info()]
    MLPClassifier(max_iter=1, n_threads=1, batch_size=128).fit(X_train, y_train)
    assert numba.get_num_threads() == before_numba
    assert [pool["num_threads"] for pool in threadpool_info()] == before_blas


def fit_and_report_blas_threads(X, y):
    seen = []
    MLPClassifier(max_iter=1, random_state=0).fit(X, y, on_epoch=lambda record: seen.append(blas_threads()))
    return seen


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_joblib_workers_do_not_oversubscribe(digits):
    """GridSearchCV(n_jobs=2) runs fits in joblib workers: each gets one BLAS thread on 2 cores."""
    from joblib import Parallel, delayed

    from fastnn._threads import available_cores

    X_train, _, y_train, _ = digits
    per_worker = max(1, available_cores() // 2)
    seen = Parallel(n_jobs=2)(delayed(fit_and_report_blas_threads)(X_train, y_train) for _ in range(2))
    assert seen == [[{per_worker}], [{per_worker}]]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_where_the_input_starts(gemm_blocks, dtype):
    """The GEMMs go in blocks for OpenBLAS's small-matrix kernels by shape, never by address
    (blocks round differently from the whole product): a fit on rows as stored (784-128-10 at
    batch 32, two workers sharing units) and predictions (100 rows, the first layer in blocks of
    8) from copies of ``X`` on a cache line, 16 and 32 bytes past one, agree bitwise."""
    rng = np.random.default_rng(0)
    X, y = rng.random((256, 784)).astype(dtype), rng.integers(0, 10, 256)
    fits, probas = [], []
    for offset in (0, 16, 32):
        model = MLPClassifier(hidden_layer_sizes=(128,), batch_size=32, max_iter=1, shuffle=False,
                              dtype=dtype, random_state=0).fit(placed(X, offset), y)
        fits.append(flat_vector(model)[0].copy())
        probas.append(model.predict_proba(placed(X[:100], offset)))
    for theta, proba in zip(fits[1:], probas[1:]):
        np.testing.assert_array_equal(theta, fits[0])
        np.testing.assert_array_equal(proba, probas[0])
