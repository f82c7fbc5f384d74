"""Whole training runs: fast engine against reference, accuracy, reproducibility, divergence."""

import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLPClassifier, MLPRegressor, TrainingDivergedError, fast, reference, solvers
from fastnn.testing import TRAINING_RTOL, assert_engines_equal, parameters

from .conftest import ACTIVATIONS, PLAIN_SGD, assert_stable, network

NO_CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"  # max_iter epochs, no early stop


def tutorial_init(activation):
    """The old estimator's default init: Kaiming for the ReLU family, Xavier otherwise."""
    return "kaiming" if activation in ("relu", "leaky_relu") else "xavier"


# Plain SGD at rate 0.1 for 10 epochs, with the tutorial's init of each activation: stable with
# every activation (test_whole_run_settings_are_stable). With scikit-learn's Glorot-uniform init
# the ReLU batch-32 run is chaotic instead (a one-ulp nudge moves it by 8e-5; the engines then
# differ by 2e-5 > 1e-5 in float32): test_engines_agree_with_glorot_init covers the rest.
SETTINGS = [
    {"batch_size": 32, "hidden_layer_sizes": (64,)},
    {"batch_size": 1437, "hidden_layer_sizes": (32,)},  # full-batch gradient descent (all the rows)
    {"batch_size": 50, "hidden_layer_sizes": (40, 20)},  # last batch partial, two hidden layers
]
SETTING_IDS = ["batch32", "full", "batch50-2layers"]


def training_accuracies(X, y, **params):
    """The training accuracy after each epoch (the old history_["accuracy"])."""
    model = MLPClassifier(random_state=0, **params)
    accuracies = []
    model.fit(X, y, on_epoch=lambda record: accuracies.append(model.score(X, y)))
    return accuracies


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
def test_engines_agree_on_digits(digits, dtype, activation, settings):
    X_train, X_test, y_train, _ = digits
    params = dict(dtype=dtype, activation=activation, init=tutorial_init(activation), max_iter=10,
                  **PLAIN_SGD, **settings)
    fast, ref = assert_engines_equal(X_train, y_train, X_test=X_test, **params)
    assert fast.n_iter_ == ref.n_iter_ == 10
    assert len(fast.loss_curve_) == len(ref.loss_curve_) == 10
    got, want = (training_accuracies(X_train, y_train, engine=engine, **params)
                 for engine in ("fast", "reference"))
    assert len(got) == len(want) == 10
    np.testing.assert_allclose(got, want, atol=1e-3)


# float32 only: one ulp is a larger share of its bound (1e-5) than of float64's (1e-12), so
# its check is the stricter. With Leaky ReLU's slope at 0.1 the batch-50 run moved by 6e-3.
@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
def test_whole_run_settings_are_stable(digits, activation, settings):
    X_train, _, y_train, _ = digits
    assert_stable(X_train, y_train, dtype="float32", activation=activation, init=tutorial_init(activation),
                  max_iter=10, **PLAIN_SGD, **settings)


# scikit-learn's Glorot-uniform init (init=None) on the settings it keeps stable.
GLOROT = [(a, s) for a in ACTIVATIONS for s, name in zip(SETTINGS, SETTING_IDS)
          if (a, name) != ("relu", "batch32")]


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation, settings", GLOROT)
def test_engines_agree_with_glorot_init(digits, dtype, activation, settings):
    X_train, X_test, y_train, _ = digits
    params = dict(activation=activation, max_iter=10, **PLAIN_SGD, **settings)
    assert_engines_equal(X_train, y_train, X_test=X_test, dtype=dtype, **params)
    if dtype == "float32":
        assert_stable(X_train, y_train, dtype=dtype, **params)


# scikit-learn's solvers at their defaults otherwise (Adam, alpha=1e-4, batch 200), 20 epochs of 32
# hidden units: each stable (assert_stable) and within the bounds.
SOLVERS = [{}, {"solver": "sgd"}, {"solver": "sgd", "nesterovs_momentum": False},
           {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.1},
           {"solver": "sgd", "learning_rate": "adaptive"}, {"early_stopping": True}]
SOLVER_IDS = ["adam", "nesterov", "momentum", "invscaling", "adaptive", "early-stopping"]


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("settings", SOLVERS, ids=SOLVER_IDS)
def test_engines_agree_for_each_solver(digits, dtype, settings):
    X_train, X_test, y_train, _ = digits
    params = dict(max_iter=20, hidden_layer_sizes=(32,), **settings)
    fast, ref = assert_engines_equal(X_train, y_train, X_test=X_test, dtype=dtype, **params)
    assert fast.n_iter_ == ref.n_iter_
    if dtype == "float32":
        assert_stable(X_train, y_train, dtype=dtype, **params)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_engines_agree_for_a_regressor(digits, dtype):
    X_train, X_test, y_train, _ = digits
    assert_engines_equal(X_train, y_train.astype(float), X_test=X_test, estimator=MLPRegressor, dtype=dtype,
                         max_iter=20, hidden_layer_sizes=(32,))


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_engines_agree_with_gradient_tracking(digits):
    X_train, _, y_train, _ = digits
    # Batch 32 at rate 0.1 like the stable SETTINGS, for 3 epochs instead of 10.
    fast, ref = assert_engines_equal(X_train, y_train, dtype="float64", max_iter=3, batch_size=32,
                                     hidden_layer_sizes=(20, 20), track_gradients=True, **PLAIN_SGD)
    assert np.shape(fast.history_["grad_norms"]) == (3, 3)
    np.testing.assert_allclose(fast.history_["grad_norms"], ref.history_["grad_norms"], rtol=1e-10)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_assert_engines_equal_catches_a_wrong_step(digits, monkeypatch):
    """A fast engine whose step is off by 0.1% must fail the check."""
    X_train, _, y_train, _ = digits
    epoch_call = solvers.FastSolver._epoch_call

    def wrong(self, order, optimizer, worker=0):
        kernel, (samples, net, work, solver, t, team) = epoch_call(self, order, optimizer, worker)
        solver = solver._replace(learning_rate=solver.learning_rate * 1.001)
        return kernel, (samples, net, work, solver, t, team)

    monkeypatch.setattr(solvers.FastSolver, "_epoch_call", wrong)
    # Plain SGD for 2 epochs, as stable as SETTINGS' batch-32 run: only the wrong step fails it.
    with pytest.raises(AssertionError, match="differs between engines"):
        assert_engines_equal(X_train, y_train, max_iter=2, batch_size=32, dtype="float64", **PLAIN_SGD)


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_assert_engines_equal_sees_float32_rounding(digits):
    """With no tolerance the check fails: the engines round differently."""
    X_train, _, y_train, _ = digits
    with pytest.raises(AssertionError):
        assert_engines_equal(X_train, y_train, dtype="float32", max_iter=1, rtol=0.0)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_default_model_learns_digits(digits, engine):
    """scikit-learn's defaults (Adam, 100 hidden units, up to 200 epochs with its stopping rule)
    reach at least 93% held-out accuracy on the digits."""
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(engine=engine, random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.93
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 3


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_repeated_fits_are_bitwise_equal(digits, engine):
    X_train, _, y_train, _ = digits
    a = MLPClassifier(engine=engine, random_state=3, max_iter=3).fit(X_train, y_train)
    b = MLPClassifier(engine=engine, random_state=3, max_iter=3).fit(X_train, y_train)
    for got, want in zip(parameters(a), parameters(b)):
        np.testing.assert_array_equal(got, want)
    assert a.loss_curve_ == b.loss_curve_


FIT_IN_NEW_PROCESS = """
import sys, warnings, numpy as np
from sklearn.datasets import load_digits
from fastnn import MLPClassifier
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
m = MLPClassifier(engine=sys.argv[1], random_state=3, max_iter=3, batch_size=int(sys.argv[2]),
                  n_threads=int(sys.argv[3]), dtype="float32").fit(X / 16, y)
sys.stdout.write(np.concatenate([p.ravel() for p in m.coefs_ + m.intercepts_]).tobytes().hex())
"""


def fit_elsewhere(engine, batch_size, n_threads):
    out = subprocess.run([sys.executable, "-c", FIT_IN_NEW_PROCESS, engine, str(batch_size),
                          str(n_threads)], capture_output=True, text=True, check=True)
    return out.stdout


@pytest.mark.filterwarnings(NO_CONVERGENCE)
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_fit_in_a_new_process_is_bitwise_equal(digits, engine):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    m = MLPClassifier(engine=engine, random_state=3, max_iter=3, batch_size=128,
                      n_threads=2, dtype="float32").fit(X / 16, y)
    here = np.concatenate([p.ravel() for p in parameters(m)]).tobytes().hex()
    assert fit_elsewhere(engine, 128, 2) == here


def test_fast_engine_thread_count_changes_only_rounding():
    """OpenBLAS splits a GEMM differently on 1 and 2 threads, so the rounding differs;
    the README states the bound: the training-run bound of :mod:`fastnn.testing`."""
    # Batch 128 for 3 epochs: fewer, larger steps than SETTINGS' stable batch-32 run.
    one, two = (np.frombuffer(bytes.fromhex(fit_elsewhere("fast", 128, n)), np.float32)
                for n in (1, 2))
    np.testing.assert_allclose(one, two, rtol=0, atol=TRAINING_RTOL["float32"] * np.abs(two).max())


def glorot_uniform(sizes, activation, seed):
    """scikit-learn's initial coefficients and intercepts, drawn independently of fastnn: from
    ``RandomState(seed)``, per layer the coefficients then the intercepts, uniform within
    ``±sqrt(factor / (fan_in + fan_out))``, factor 2 for the logistic activation and 6 otherwise."""
    rs = np.random.RandomState(seed)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt((2 if activation == "logistic" else 6) / (fan_in + fan_out))
        coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-bound, bound, fan_out))
    return coefs, intercepts


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("activation, lr", [("relu", 1e30), ("logistic", 1e37), ("logistic", 1e38),
                                            ("tanh", 1e38)])
def test_divergence_is_reported_and_weights_stay_finite(digits, engine, activation, lr):
    """At 1e37 (logistic) the loss stays finite but Σ‖W‖² overflows float32: with alpha=0 both engines
    then compute scikit-learn's (0.5 · 0) · inf = nan."""
    X_train, _, y_train, _ = digits
    model = MLPClassifier(engine=engine, max_iter=20, random_state=0, activation=activation, dtype="float32",
                          batch_size=32, **{**PLAIN_SGD, "learning_rate_init": lr})
    with pytest.raises(TrainingDivergedError, match="in epoch 1: the loss became nan"):
        model.fit(X_train, y_train)
    assert model.n_iter_ == 0
    # The weights are put back as they were before the diverging epoch: the initial ones.
    coefs, intercepts = glorot_uniform([64, 100, 10], activation, 0)
    for got, want in zip(parameters(model), coefs + intercepts):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.astype(np.float32))
    assert all(np.isfinite(p).all() for p in parameters(model))
    assert all(np.isfinite(model.loss_curve_))


@pytest.mark.filterwarnings(NO_CONVERGENCE)
def test_random_state_none_trains(digits):
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(random_state=None, max_iter=3, batch_size=32, **PLAIN_SGD)
    assert model.fit(X_train, y_train).score(X_test, y_test) > 0.8


@pytest.mark.parametrize("batch", [None, 50])
def test_fast_engine_takes_an_order_for_any_batch(digits, batch):
    """The trainer passes no order for a full batch, but the engine must not depend on that."""
    X_train, _, y_train, _ = digits
    X = np.ascontiguousarray(X_train, dtype=np.float64)
    order = np.random.default_rng(0).permutation(len(X))
    batch = batch or len(X)
    models = []  # one epoch: too few steps for any setting's rounding differences to grow
    for engine in (fast.SerialEngine, reference.ReferenceEngine):
        weights, biases = reference.init_params([64, 16, 10], "kaiming", np.random.default_rng(1),
                                                np.float64)
        net = network(weights, biases)
        engine(X, y_train, net, batch).epoch(order, 0.1)
        models.append(net.theta)
    np.testing.assert_allclose(models[0], models[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [np.arange(5), np.arange(1437) + 1, -np.arange(1437)],
                         ids=["short", "past the end", "negative"])
def test_fast_engine_refuses_a_bad_order(digits, order):
    X_train, _, y_train, _ = digits
    weights, biases = reference.init_params([64, 10], "kaiming", np.random.default_rng(1), np.float32)
    engine = fast.SerialEngine(X_train.astype(np.float32), y_train, network(weights, biases), 32)
    with pytest.raises(ValueError, match="order must hold 1437 row indices"):
        engine.epoch(order, 0.1)
