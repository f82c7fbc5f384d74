"""How far apart do the two engines end up? The drift behind fastnn.testing.TRAINING_RTOL.

    python bench/drift.py

Fits both engines on the digits (80% split, 10 epochs) with the settings of
tests/test_training.py, every activation and dtype, and prints
max|p_fast − p_ref| / max|p_ref| over all weights and biases, and whether the
held-out labels are identical. Then the chaotic case the bounds exclude: the
reference engine alone, batch size 1, ReLU, learning rate 0.1, 5 epochs, run
twice with one input's weights scaled by (1 + 1e-15) in the second run.
"""

import os
import sys
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastnn import MLPClassifier, reference  # noqa: E402
from fastnn.datasets import load_digits  # noqa: E402
from fastnn.engine import network_of  # noqa: E402
from tests.conftest import PLAIN_SGD  # noqa: E402
from tests.test_training import SETTINGS, tutorial_init  # noqa: E402


def drift(fast, ref):
    pairs = list(zip(fast.coefs_ + fast.intercepts_, ref.coefs_ + ref.intercepts_))
    scale = max(float(np.abs(want).max()) for _, want in pairs)
    return max(float(np.abs(got - want).max()) for got, want in pairs) / scale


def main():
    warnings.filterwarnings("ignore", message="Stochastic Optimizer: Maximum iterations")  # no early stop
    X, y = load_digits()
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    worst = {}
    for dtype in ("float32", "float64"):
        for activation in ("relu", "leaky_relu", "logistic", "tanh", "identity"):
            for settings in SETTINGS:
                params = dict(dtype=dtype, activation=activation, init=tutorial_init(activation), max_iter=10,
                              random_state=0, **PLAIN_SGD, **settings)
                fast = MLPClassifier(engine="fast", **params).fit(X_train, y_train)
                ref = MLPClassifier(engine="reference", **params).fit(X_train, y_train)
                d = drift(fast, ref)
                worst[dtype] = max(worst.get(dtype, 0.0), d)
                same = np.array_equal(fast.predict(X_test), ref.predict(X_test))
                print(f"{dtype} {activation:<10} {str(settings):<52} drift {d:.2e}  same labels {same}")
    print("largest drift: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    chaos(X, y)


def chaos(X, y, epochs=5):
    results = []
    for nudge in (0.0, 1e-15):
        weights, biases = reference.init_params([64, 16, 10], "kaiming", np.random.default_rng(0),
                                                np.float64)
        weights[0][:, 20] *= 1 + nudge
        engine = reference.ReferenceEngine(X, y, network_of(weights, biases, "relu"), 1)
        rng = np.random.default_rng(1)
        for _ in range(epochs):
            engine.epoch(rng.permutation(len(y)), 0.1)
        results.append(engine.weights[0])
    change = np.abs(results[0] - results[1]).max() / np.abs(results[0]).max()
    print(f"batch 1, ReLU, lr 0.1, reference engine: a 1e-15 nudge moved the first layer by "
          f"{change:.2f} of its largest weight after {epochs} epochs")


if __name__ == "__main__":
    main()
