"""Training that runs to its end without learning is reported (TrainingFailedWarning).

The tests that fit (``test_fit_warns``, ``test_partial_fit_judges_the_epochs_so_far``, and those
that expect no warning) need ``BaseMLP._fit`` to end with ``warn_if_failed(self, X, Y)``.
"""

import math
import warnings

import numpy as np
import pytest

from fastnn import MLPClassifier, MLPRegressor, TrainingFailedWarning
from fastnn._diagnostics import Ending, at_chance, ending, losses_of_guesses, training_failure

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Plain SGD for exactly max_iter epochs.
SGD = dict(solver="sgd", momentum=0, n_iter_no_change=float("inf"), max_iter=10, random_state=0)
# A uniform guess over the ten digits, the best constant output (their shares are nearly equal), and
# the largest mean loss that float64's clipped probabilities allow (-ln eps).
DIGITS = (math.log(10), 2.302, -math.log(np.finfo(np.float64).eps))

# Mean training loss per epoch of 10-epoch fits on the digits' training split (SGD above, unless stated).
LR_50 = [19.95, 17.84, 17.64, 18.4, 17.22, 17.02, 16.61, 17.05, 16.99, 17.94]  # alpha=0, batch_size=32
LR_50_L2 = [167.14, 300.29, 295.13, 297.8, 297.57, 297.61, 296.22, 298.91, 294.69, 293.49]  # alpha=1e-4
ADAM_LR_10 = [27.64, 24.72, 17.02, 12.53, 9.93, 8.42, 7.07, 6.29, 6.1, 6.04]  # adam, 10% accuracy
LR_10 = [12.68, 5.0, 2.64, 2.67, 2.63, 2.65, 2.64, 2.64, 2.65, 2.65]  # every ReLU unit dead
LR_3 = [2.6, 3.08, 2.39, 2.32, 2.28, 2.42, 2.29, 2.32, 2.32, 2.29]  # 10% accuracy, outputs differ
DEFAULT = [2.35, 2.16, 2.01, 1.85, 1.69, 1.53, 1.37, 1.21, 1.06, 0.92]  # adam: 91% accuracy
SLOW_START = [2.37, 2.3, 2.29, 2.28, 2.27, 2.26, 2.25, 2.24, 2.23, 2.22]  # logistic: 10%, outputs differ
# 21 blobs with features from 0 to 9 (check_estimator's data), three classes: chaos, then learning.
BLOBS = [9.29, 42.15, 58.22, 9.63, 18.4, 1.89, 0.79, 0.64, 0.62, 0.6]

AT_CHANCE_DEAD = Ending(accuracy=0.1, majority=0.102, at_chance=True, same_output=True)
AT_CHANCE_ALIVE = Ending(accuracy=0.098, majority=0.102, at_chance=True, same_output=False)


def never_asked():
    raise AssertionError("the network's output was computed although the losses had decided")


@pytest.mark.parametrize("losses, guesses, end, cause", [
    (LR_50, DIGITS, AT_CHANCE_DEAD, "saturated"),
    (LR_50_L2, DIGITS, never_asked, "saturated"),
    (ADAM_LR_10, DIGITS, AT_CHANCE_ALIVE, "saturated"),
    ([12.1, 11.8, 12.4, 11.9, 12.0], (math.log(10), 2.302, -math.log(np.finfo(np.float32).eps)), never_asked,
     "saturated"),  # float32: half its largest loss (8.0), not ten times a uniform guess's (23)
    (LR_10, DIGITS, AT_CHANCE_DEAD, "gives every training sample the same output"),
], ids=["lr 50", "lr 50 with L2", "adam lr 10", "float32", "dead"])
def test_failures_are_named(losses, guesses, end, cause):
    message = training_failure(losses, *guesses, 50.0, end if callable(end) else lambda: end)
    assert message.startswith("training failed: ") and cause in message
    assert "for 5 epochs" in message and "the learning rate 50 is likely too high" in message
    if end is AT_CHANCE_DEAD:
        assert ("training accuracy 0.100 at the end (always predicting the most common class: 0.102)"
                in message)


@pytest.mark.parametrize("losses, guesses, end", [
    (DEFAULT, DIGITS, never_asked),
    (SLOW_START, DIGITS, AT_CHANCE_ALIVE),  # slow, but learning
    (LR_3, DIGITS, AT_CHANCE_ALIVE),  # at chance, but the outputs differ
    (LR_10, DIGITS, Ending(0.4, 0.102, False, False)),  # above chance
    (BLOBS, (math.log(3), math.log(3), 36.0), never_asked),
    ([0.33] * 5, (math.log(2), 0.325, 36.0), Ending(0.9, 0.9, True, False)),  # imbalanced, outputs differ
], ids=["default", "slow start", "at chance", "above chance", "blobs", "imbalanced"])
def test_training_that_did_not_fail(losses, guesses, end):
    assert training_failure(losses, *guesses, 0.1, end if callable(end) else lambda: end) is None


def test_a_short_run_is_judged_on_all_its_epochs():
    """training_failure judges the epochs it is given, up to the last five: a finished fit of four
    epochs that saturated is named (warn_if_failed waits for five only after partial_fit)."""
    message = training_failure(LR_50[:4], *DIGITS, 50.0, lambda: AT_CHANCE_DEAD)
    assert message.startswith("training failed: the network saturated") and "for 4 epochs" in message


def test_chance_level_is_the_most_common_class_within_sampling_error():
    """Chance: 0.5 ± 3 standard errors of a 0.5 share over 400 samples (0.075)."""
    assert at_chance([0.574], [0.5], 400) and not at_chance([0.576], [0.5], 400)
    assert not at_chance([0.5, 0.9], [0.5, 0.5], 400)  # multilabel: every label at chance


def test_ending_of_a_network():
    X = np.arange(800.0).reshape(400, 2)  # 400 rows: chance is the majority's share + 0.075 at most
    Y = np.tile(np.eye(3)[[0, 0, 1, 2]], (100, 1))
    constant = np.tile([0.5, 0.3, 0.2], (400, 1))
    assert ending(constant, Y, X, softmax=True) == Ending(0.5, 0.5, True, True)
    assert ending(constant, Y, np.ones((400, 2)), softmax=True).same_output is False  # samples alike
    assert ending(Y * 0.9, Y, X, softmax=True) == Ending(1.0, 0.5, False, False)
    labels = np.tile([[1, 0], [1, 1], [0, 0], [1, 0]], (100, 1)).astype(float)
    assert ending(np.tile([0.9, 0.1], (400, 1)), labels, X, softmax=False) == Ending(0.75, 0.75, True, True)
    assert ending(labels, labels, X, softmax=False) == Ending(1.0, 0.75, False, False)


def test_losses_of_guesses():
    uniform, constant, largest = losses_of_guesses(np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]], True, np.float64)
    assert uniform == constant == pytest.approx(math.log(4)) and largest == pytest.approx(36.04, abs=0.01)
    binary = np.array([[1.0]] + [[0.0]] * 9)
    uniform, constant, largest = losses_of_guesses(binary, False, np.float32)
    assert uniform == pytest.approx(math.log(2)) and constant == pytest.approx(0.325, abs=1e-3)
    assert largest == pytest.approx(15.94, abs=0.01)
    assert losses_of_guesses(np.ones((4, 3)), False, np.float64)[:2] == (3 * math.log(2), 0)


@pytest.mark.parametrize("params, cause", [
    (dict(learning_rate_init=50.0, alpha=0, batch_size=32), "saturated"),
    (dict(learning_rate_init=10.0), "gives every training sample the same output"),
], ids=["saturated", "dead"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_fit_warns(digits, params, cause, engine):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(**SGD, **params, engine=engine)
    rate = params["learning_rate_init"]
    with pytest.warns(TrainingFailedWarning, match=f"{cause}.*learning rate {rate:g} is likely too high"):
        model.fit(X_train, y_train)
    assert model.score(X_train, y_train) < 0.15


@pytest.mark.parametrize("max_iter", [1, 3])
def test_a_fit_shorter_than_five_epochs_is_judged_on_all_of_them(digits, max_iter):
    """A fit's end is what the user gets: a short run that saturated is named too."""
    X_train, _, y_train, _ = digits
    model = MLPClassifier(**{**SGD, "max_iter": max_iter, "learning_rate_init": 50.0, "alpha": 0,
                             "batch_size": 32})
    epochs = f"{max_iter} epoch{'s' if max_iter > 1 else ''}"
    with pytest.warns(TrainingFailedWarning, match=f"saturated.*for {epochs} "):
        model.fit(X_train, y_train)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "logistic", "tanh", "identity"])
def test_normal_training_does_not_warn(digits, activation):
    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        MLPClassifier(activation=activation, max_iter=20, random_state=0).fit(X_train, y_train)
        MLPClassifier(activation=activation, learning_rate_init=0.1, **SGD).fit(X_train, y_train)
        MLPClassifier(activation=activation, max_iter=5, random_state=0).fit(X_train[:40], y_train[:40])
        MLPClassifier(activation=activation, learning_rate_init=0.1, **{**SGD, "max_iter": 1}).fit(
            X_train, y_train)
        MLPClassifier(activation=activation, max_iter=10, random_state=0).fit(
            X_train, np.column_stack([y_train % 2, y_train > 6]))  # multilabel
        MLPClassifier(activation=activation, max_iter=20, solver="lbfgs", random_state=0).fit(
            X_train, y_train)


def test_identical_samples_do_not_warn():
    """The same output for samples that do not differ is no sign of dead units."""
    X, y = np.zeros((40, 3)), np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        model = MLPClassifier(**{**SGD, "learning_rate_init": 0.1}).fit(X, y)
    assert np.ptp(model.predict_proba(X), axis=0).max() == 0


def test_regressors_are_not_judged(digits):
    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        MLPRegressor(max_iter=10, random_state=0).fit(X_train, np.zeros(len(y_train)))


def test_partial_fit_judges_the_epochs_so_far(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(**{**SGD, "learning_rate_init": 50.0, "alpha": 0, "batch_size": 32})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingFailedWarning)
        for _ in range(4):
            model.partial_fit(X_train, y_train, classes=np.arange(10))
    with pytest.warns(TrainingFailedWarning, match="for 5 epochs"):
        model.partial_fit(X_train, y_train)
