from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastnn import MLPClassifier, reference
from fastnn.testing import TRAINING_RTOL

# "ci" keeps the property tests within CI's budget and draws the same examples every run
# (a red CI is then a change of ours, not a new draw); "dev" explores, run it by hand:
#   pytest --hypothesis-profile=dev
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh"]


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled digits, scaled to [0, 1], split 80/20 with a fixed seed."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.2, random_state=0, stratify=y)


def network(weights, biases, activation="relu"):
    """An engine's :class:`~fastnn.engine.Network` holding copies of ``weights`` and ``biases``."""
    from fastnn.engine import network_of

    return network_of(weights, biases, activation)


@pytest.fixture
def made_engines(monkeypatch):
    """The fast engines (serial or split) that the test's fits create, in order."""
    from fastnn import fast

    made = []
    init = fast.FastEngine.__init__

    def recorded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(fast.FastEngine, "__init__", recorded)
    return made


def assert_stable(X, y, **params):
    """Training with ``params`` is out of the chaotic regime, where comparing two engines
    would test chaos, not rounding: one ulp more on one output weight (in use whatever the
    data: a softmax unit is never dead) must move the trained reference model by less than
    a tenth of the engines' bound, relative to its largest parameter."""
    params = {"random_state": 0, **params, "engine": "reference", "n_threads": 1}
    init = reference.init_params

    def nudged(*args, **kwargs):
        weights, biases = init(*args, **kwargs)
        weights[-1][0, 0] = np.nextafter(weights[-1][0, 0], np.inf)
        return weights, biases

    plain = MLPClassifier(**params).fit(X, y)
    with mock.patch.object(reference, "init_params", nudged):
        moved = MLPClassifier(**params).fit(X, y)
    pairs = list(zip(plain.weights_ + plain.biases_, moved.weights_ + moved.biases_))
    change = max(np.abs(a - b).max() for a, b in pairs) / max(np.abs(a).max() for a, _ in pairs)
    bound = TRAINING_RTOL[plain.weights_[0].dtype.name]
    assert change < bound / 10, f"a one-ulp nudge moved the model by {change:.1e} (bound {bound})"
