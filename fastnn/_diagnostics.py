"""Training that runs to its end without learning: a saturated or dead network.

A learning rate far too high does not always make the loss NaN (that is
:class:`~fastnn.TrainingDivergedError`): a ReLU network can end with every
hidden unit dead, or the softmax saturated, confidently wrong about most
samples. On the digits, ``learning_rate=50`` stayed at a loss near 18 and 10%
accuracy, ``learning_rate=3`` ended with every ReLU unit dead. ``fit`` then warns
with :class:`TrainingFailedWarning`, and the command line stops with an error.
"""

import math
import warnings

import numpy as np


class TrainingFailedWarning(UserWarning):
    """``fit`` ran to the end, but the network did not learn: its units saturated or died."""


# Multiples of ln(n_classes), a uniform guess's loss. A mean loss far above it means the network is
# confidently wrong on many samples: its softmax is saturated. Healthy training on the digits starts
# at 1.4 to 2.3 (ln 10 = 2.3) and falls; failed runs stayed at 18 to 79.
SATURATED_AT_CHANCE = 2
SATURATED_ANYWAY = 10
# Training accuracy within this many standard errors of the most common class's share is chance level.
CHANCE_ERRORS = 3
# A failure must last this many epochs: on unscaled features (blobs from 0 to 9) the default model's
# loss went 9, 42, 58, 9, 18 and then fell below 2 for good.
EPOCHS = 5
# Probabilities that differ by no more than this on every sample are "the same output" (a dead layer
# gives every sample the same numbers, up to the rounding of different BLAS kernels).
SAME_OUTPUT = 1e-6


def training_failure(losses, accuracies, class_counts, learning_rate, same_output_for_all):
    """Why training failed, or None if it did not (or if it ran fewer than ``EPOCHS`` epochs).

    Failed: in each of the last ``EPOCHS`` epochs the loss was far above a
    uniform guess's (saturated), or the accuracy was at chance level and the
    network now gives every sample the same output (dead).

    Parameters
    ----------
    losses, accuracies : sequence of float
        Mean training loss and training accuracy per epoch.
    class_counts : sequence of int
        Training samples per class, for every class of the model.
    learning_rate : float
        Named in the message as the likely cause.
    same_output_for_all : callable
        Returns whether the network gives every training sample the same output
        (though the samples differ); called only when the accuracy is at chance
        level (it costs a prediction).
    """
    if len(losses) < EPOCHS:
        return None
    n_samples, uniform = sum(class_counts), math.log(len(class_counts))
    majority = max(class_counts) / n_samples
    chance = majority + CHANCE_ERRORS * math.sqrt(majority * (1 - majority) / n_samples)
    recent = list(zip(losses[-EPOCHS:], accuracies[-EPOCHS:]))
    at_chance = all(accuracy <= chance for _, accuracy in recent)
    facts = (f"for {EPOCHS} epochs: training accuracy at most {max(a for _, a in recent):.3f} (always "
             f"predicting the most common class: {majority:.3f}), loss at least "
             f"{min(l for l, _ in recent):.3g} (a uniform guess: {uniform:.3g})")
    advice = f"the learning rate {learning_rate:g} is likely too high; try a smaller one"
    if all(loss > uniform * (SATURATED_AT_CHANCE if at_chance else SATURATED_ANYWAY) for loss, _ in recent):
        return f"training failed: the network saturated, confidently wrong {facts}; {advice}"
    if at_chance and same_output_for_all():
        return (f"training failed: the network gives every training sample the same output, its hidden "
                f"units dead or saturated, {facts}; {advice}")
    return None


def warn_if_failed(model, X, y_index, learning_rate):
    """Warn with :class:`TrainingFailedWarning` if ``model``'s last epochs on ``(X, y_index)`` failed."""
    def same_output_for_all():
        # Samples that do not differ get the same output from any network.
        differ = np.ptp(X, axis=0).max() > 0
        return bool(differ and np.all(np.ptp(model.predict_proba(X), axis=0) <= SAME_OUTPUT))

    problem = training_failure(model.history_["loss"], model.history_["accuracy"],
                               np.bincount(y_index, minlength=len(model.classes_)).tolist(),
                               learning_rate, same_output_for_all)
    if problem:
        warnings.warn(problem, TrainingFailedWarning, stacklevel=4)  # at the caller of fit
