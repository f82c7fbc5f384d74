"""Training that runs to its end without learning is reported (TrainingFailedWarning)."""

import warnings

import numpy as np
import pytest

from fastnn import MLPClassifier, TrainingFailedWarning
from fastnn._diagnostics import training_failure

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # the 1,797 digits per class

# (losses, accuracies) per epoch of 10-epoch fits on the digits, the default model unless stated.
LR_50 = ([24.2, 18.06, 17.96, 18.47, 17.58, 19.51, 16.75, 18.79, 19.3, 17.76],
         [0.087, 0.1, 0.096, 0.1, 0.098, 0.101, 0.098, 0.091, 0.083, 0.11])
LR_1E6 = ([77.96, 78.01, 77.81, 79.75, 78.49, 78.83, 79.85, 79.66, 78.73, 78.2],
          [0.091, 0.107, 0.109, 0.087, 0.101, 0.097, 0.086, 0.088, 0.098, 0.105])
TANH_LR_1E6 = ([58.71, 50.06, 47.05, 43.21, 43.84, 41.94, 41.65, 40.63, 38.4, 36.69],
               [0.311, 0.427, 0.461, 0.505, 0.498, 0.52, 0.523, 0.535, 0.56, 0.58])
LR_3 = ([2.99, 2.35, 2.37, 2.33, 2.33, 2.36, 2.33, 2.33, 2.33, 2.33],  # every ReLU unit dead
        [0.123, 0.095, 0.12, 0.093, 0.105, 0.102, 0.093, 0.098, 0.093, 0.091])
DEFAULT = ([1.42, 0.57, 0.37, 0.28, 0.24, 0.2, 0.18, 0.16, 0.15, 0.14],
           [0.639, 0.899, 0.923, 0.939, 0.944, 0.957, 0.958, 0.964, 0.967, 0.967])
SIGMOID = ([2.26, 2.06, 1.86, 1.62, 1.38, 1.16, 0.98, 0.84, 0.73, 0.64],
           [0.172, 0.4, 0.556, 0.713, 0.782, 0.825, 0.863, 0.883, 0.891, 0.9])
# 21 blobs with features from 0 to 9 (check_estimator's data): chaos, then learning.
BLOBS = ([9.29, 42.15, 58.22, 9.63, 18.4, 1.89, 0.79, 0.64, 0.62, 0.6],
         [0.333, 0.333, 0.333, 0.429, 0.619, 0.81, 0.857, 0.905, 0.905, 0.952])


def never_asked():
    raise AssertionError("the output was checked although the accuracy is above chance")


@pytest.mark.parametrize("history, same_output, cause", [
    (LR_50, True, "saturated"),
    (LR_1E6, True, "saturated"),
    (TANH_LR_1E6, never_asked, "saturated"),  # 58% accuracy, yet confidently wrong
    (LR_3, True, "gives every training sample the same output"),
], ids=["lr 50", "lr 1e6", "tanh lr 1e6", "dead"])
def test_failures_are_named(history, same_output, cause):
    check = same_output if callable(same_output) else lambda: same_output
    message = training_failure(*history, DIGIT_COUNTS, 50.0, check)
    assert message.startswith("training failed: ") and cause in message
    assert "for 5 epochs" in message and "the learning rate 50 is likely too high" in message


@pytest.mark.parametrize("losses, accuracies, counts, same_output", [
    (*DEFAULT, DIGIT_COUNTS, never_asked),
    (*SIGMOID, DIGIT_COUNTS, never_asked),  # slow, but learning
    ([2.31, 2.30, 2.30, 2.30, 2.30], [0.1, 0.09, 0.1, 0.11, 0.1], DIGIT_COUNTS, False),  # outputs differ
    (*BLOBS, [7, 7, 7], never_asked),
    (LR_50[0][:4], LR_50[1][:4], DIGIT_COUNTS, True),  # too few epochs to tell
    ([0.9] * 5, [0.9] * 5, [90, 10], False),  # imbalanced: the most common class, outputs differ
], ids=["default", "slow start", "at chance", "blobs", "4 epochs", "imbalanced"])
def test_training_that_did_not_fail(losses, accuracies, counts, same_output):
    check = same_output if callable(same_output) else lambda: same_output
    assert training_failure(losses, accuracies, counts, 0.1, check) is None


def test_chance_level_is_the_most_common_class_within_sampling_error():
    """Chance: 0.5 ± 3 standard errors of a 0.5 share over 400 samples (0.075)."""
    def fails(accuracy):
        return training_failure([1.0] * 5, [accuracy] * 5, [200, 200], 0.1, lambda: True) is not None

    assert fails(0.574) and not fails(0.576)


@pytest.mark.parametrize("learning_rate", [50.0, 3.0], ids=["saturated", "dead"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_fit_warns(digits, learning_rate, engine):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(learning_rate=learning_rate, random_state=0, engine=engine)
    with pytest.warns(TrainingFailedWarning, match=f"learning rate {learning_rate:g} is likely too high"):
        model.fit(X_train, y_train)
    assert model.score(X_train, y_train) < 0.15


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_normal_training_does_not_warn(digits, activation):
    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        MLPClassifier(activation=activation, random_state=0).fit(X_train, y_train)
        MLPClassifier(activation=activation, epochs=1, random_state=0).fit(X_train[:40], y_train[:40])


def test_identical_samples_do_not_warn():
    """The same output for samples that do not differ is no sign of dead units."""
    X, y = np.zeros((40, 3)), np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        model = MLPClassifier(epochs=3, random_state=0).fit(X, y)
    assert np.ptp(model.predict_proba(X), axis=0).max() == 0


def test_partial_fit_judges_the_epochs_so_far(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(learning_rate=50.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        for _ in range(4):
            model.partial_fit(X_train, y_train, classes=np.arange(10))
    with pytest.warns(TrainingFailedWarning, match="for 5 epochs"):
        model.partial_fit(X_train, y_train)
