"""Whole training runs: fast engine against reference, accuracy, reproducibility, divergence."""

import subprocess
import sys

import numpy as np
import pytest

from fastnn import MLPClassifier, TrainingDivergedError, fast, reference
from fastnn.testing import TRAINING_RTOL, assert_engines_equal

from .conftest import ACTIVATIONS

SETTINGS = [
    {"batch_size": 32, "hidden_layer_sizes": (64,)},
    {"batch_size": None, "hidden_layer_sizes": (32,)},  # full-batch gradient descent
    {"batch_size": 50, "hidden_layer_sizes": (40, 20)},  # last batch partial, two hidden layers
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("settings", SETTINGS, ids=["batch32", "full", "batch50-2layers"])
def test_engines_agree_on_digits(digits, dtype, activation, settings):
    X_train, X_test, y_train, _ = digits
    fast, ref = assert_engines_equal(X_train, y_train, X_test=X_test, dtype=dtype,
                                     activation=activation, epochs=10, **settings)
    assert fast.n_iter_ == ref.n_iter_ == 10
    np.testing.assert_allclose(fast.history_["accuracy"], ref.history_["accuracy"], atol=1e-3)


def test_engines_agree_with_gradient_tracking(digits):
    X_train, _, y_train, _ = digits
    fast, ref = assert_engines_equal(X_train, y_train, dtype="float64", epochs=3,
                                     hidden_layer_sizes=(20, 20), track_gradients=True)
    np.testing.assert_allclose(fast.history_["grad_norms"], ref.history_["grad_norms"], rtol=1e-10)


def test_assert_engines_equal_catches_a_wrong_step(digits, monkeypatch):
    """A fast engine whose step is off by 0.1% must fail the check."""
    X_train, _, y_train, _ = digits
    epoch = fast.Engine.epoch
    monkeypatch.setattr(fast.Engine, "epoch", lambda self, order, lr: epoch(self, order, lr * 1.001))
    with pytest.raises(AssertionError, match="differs between engines"):
        assert_engines_equal(X_train, y_train, epochs=2, dtype="float64")


def test_assert_engines_equal_sees_float32_rounding(digits):
    """With no tolerance the check fails: the engines round differently."""
    X_train, _, y_train, _ = digits
    with pytest.raises(AssertionError):
        assert_engines_equal(X_train, y_train, epochs=1, rtol=0.0)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_default_model_learns_digits(digits, engine):
    """The README's claim: the default model (10 epochs) reaches at least 93% held-out accuracy."""
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(engine=engine, random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.93
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 3


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_repeated_fits_are_bitwise_equal(digits, engine):
    X_train, _, y_train, _ = digits
    a = MLPClassifier(engine=engine, random_state=3, epochs=3).fit(X_train, y_train)
    b = MLPClassifier(engine=engine, random_state=3, epochs=3).fit(X_train, y_train)
    for got, want in zip(a.weights_ + a.biases_, b.weights_ + b.biases_):
        np.testing.assert_array_equal(got, want)
    assert a.loss_curve_ == b.loss_curve_


FIT_IN_NEW_PROCESS = """
import sys, numpy as np
from sklearn.datasets import load_digits
from fastnn import MLPClassifier
X, y = load_digits(return_X_y=True)
m = MLPClassifier(engine=sys.argv[1], random_state=3, epochs=3, batch_size=int(sys.argv[2]),
                  n_threads=int(sys.argv[3])).fit(X / 16, y)
sys.stdout.write(np.concatenate([p.ravel() for p in m.weights_ + m.biases_]).tobytes().hex())
"""


def fit_elsewhere(engine, batch_size, n_threads):
    out = subprocess.run([sys.executable, "-c", FIT_IN_NEW_PROCESS, engine, str(batch_size),
                          str(n_threads)], capture_output=True, text=True, check=True)
    return out.stdout


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_fit_in_a_new_process_is_bitwise_equal(digits, engine):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    m = MLPClassifier(engine=engine, random_state=3, epochs=3, batch_size=128,
                      n_threads=2).fit(X / 16, y)
    here = np.concatenate([p.ravel() for p in m.weights_ + m.biases_]).tobytes().hex()
    assert fit_elsewhere(engine, 128, 2) == here


def test_fast_engine_thread_count_changes_only_rounding():
    """OpenBLAS splits a GEMM differently on 1 and 2 threads, so the rounding differs;
    the README states the bound: the training-run bound of :mod:`fastnn.testing`."""
    one, two = (np.frombuffer(bytes.fromhex(fit_elsewhere("fast", 128, n)), np.float32)
                for n in (1, 2))
    np.testing.assert_allclose(one, two, rtol=0, atol=TRAINING_RTOL["float32"] * np.abs(two).max())


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("activation, lr", [("relu", 1e30), ("sigmoid", 1e37), ("tanh", 1e38)])
def test_divergence_is_reported_and_weights_stay_finite(digits, engine, activation, lr):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(engine=engine, learning_rate=lr, epochs=20, random_state=0,
                          activation=activation)
    with pytest.raises(TrainingDivergedError, match="in epoch 1: the loss became nan"):
        model.fit(X_train, y_train)
    assert model.n_iter_ == 0
    # The weights are put back as they were before the diverging epoch: the initial ones.
    init = "kaiming" if activation == "relu" else "xavier"
    weights, _ = reference.init_params([64, 128, 10], init, np.random.default_rng(0), np.float32)
    for got, want in zip(model.weights_, weights):
        np.testing.assert_array_equal(got, want)
    assert all(np.isfinite(p).all() for p in model.weights_ + model.biases_)
    assert all(np.isfinite(model.loss_curve_))


def test_random_state_none_trains(digits):
    X_train, X_test, y_train, y_test = digits
    assert MLPClassifier(random_state=None, epochs=3).fit(X_train, y_train).score(X_test, y_test) > 0.8


@pytest.mark.parametrize("batch", [None, 50])
def test_fast_engine_takes_an_order_for_any_batch(digits, batch):
    """The trainer passes no order for a full batch, but the engine must not depend on that."""
    X_train, _, y_train, _ = digits
    X = np.ascontiguousarray(X_train, dtype=np.float64)
    order = np.random.default_rng(0).permutation(len(X))
    batch = batch or len(X)
    models = []
    for module in (fast, reference):
        weights, biases = reference.init_params([64, 16, 10], "kaiming", np.random.default_rng(1),
                                                np.float64)
        module.Engine(X, y_train, 10, weights, biases, "relu", batch).epoch(order, 0.1)
        models.append(weights + biases)
    for got, want in zip(*models):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [np.arange(5), np.arange(1437) + 1, -np.arange(1437)],
                         ids=["short", "past the end", "negative"])
def test_fast_engine_refuses_a_bad_order(digits, order):
    X_train, _, y_train, _ = digits
    weights, biases = reference.init_params([64, 10], "kaiming", np.random.default_rng(1), np.float32)
    engine = fast.Engine(X_train.astype(np.float32), y_train, 10, weights, biases, "relu", 32)
    with pytest.raises(ValueError, match="order must hold 1437 row indices"):
        engine.epoch(order, 0.1)
