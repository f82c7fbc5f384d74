"""Training that runs to its end without learning: a saturated or dead network.

A learning rate far too high does not always make the loss NaN (that is
:class:`~fastnn.TrainingDivergedError`): a ReLU network can end with every
hidden unit dead, or its output saturated, confidently wrong about most
samples. On the digits, plain SGD (``solver="sgd", momentum=0``) at
``learning_rate_init=50`` stayed at a loss near 17 (``alpha=0``; 297 with the
default ``alpha``, whose L2 term the loss includes) and 10% training accuracy;
at ``learning_rate_init=10`` every ReLU unit died (the same output for every
sample, loss 2.65). A classifier's ``fit`` then warns with
:class:`TrainingFailedWarning`, and the command line stops with an error.

The judgement rests on the loss history (``history_["loss"]``, one mean training
loss per epoch) and on one pass of the fitted network over the training rows at
the end, made only when the losses leave the question open.
"""

import math
import warnings
from typing import NamedTuple

import numpy as np


class TrainingFailedWarning(UserWarning):
    """``fit`` ran to the end, but the network did not learn: its units saturated or died."""


# Multiples of a uniform guess's loss (ln(n_classes) for a softmax, ln 2 per logistic output). A mean
# loss far above it means the network is confidently wrong on many samples: its output is saturated.
# Healthy training on the digits starts at 2.2 to 2.4 (ln 10 = 2.3) and falls; failed runs stayed at
# 6 to 300 (the L2 term of huge weights included).
SATURATED_AT_CHANCE = 2
SATURATED_ANYWAY = 10
# ... but no more than this share of the largest loss per sample that the clipped probabilities allow,
# -ln(eps) per output (36 in float64, 16 in float32, where 10 ln 10 = 23 could never be reached).
SATURATED_SHARE_OF_MAX = 0.5
# Training accuracy within this many standard errors of the most common class's share is chance level.
CHANCE_ERRORS = 3
# A failure must last this many epochs: on unscaled features (blobs from 0 to 9) a model's loss went
# 9, 42, 58, 9, 18 and then fell below 2 for good.
EPOCHS = 5
# The network's ending is judged on at most about this many training rows (evenly spaced).
ENDING_ROWS = 256
# The prediction at the end is made only if every one of the last EPOCHS losses is at least this share
# of the loss of the best constant output (the entropy of the class shares): a dead network, whose
# output is the same for every sample, cannot do better than that constant; healthy training soon does.
CONSTANT_SHARE = 0.9
# Probabilities that differ by no more than this on every sample are "the same output" (a dead layer
# gives every sample the same numbers, up to the rounding of different BLAS kernels).
SAME_OUTPUT = 1e-6


class Ending(NamedTuple):
    """What one pass of the fitted network over the training rows shows."""

    accuracy: float  # training accuracy (for multilabel targets, the highest of the labels')
    majority: float  # always predicting the most common class (label by label: the highest share)
    at_chance: bool  # the accuracy (of every label) within sampling error of the majority's
    same_output: bool  # every training sample gets the same output, though the samples differ


def at_chance(accuracies, majorities, n_samples):
    """Whether each accuracy is at most its majority share plus ``CHANCE_ERRORS`` standard errors
    of that share over ``n_samples``."""
    return all(a <= m + CHANCE_ERRORS * math.sqrt(m * (1 - m) / n_samples)
               for a, m in zip(accuracies, majorities))


def training_failure(losses, uniform, constant, max_loss, learning_rate, ending):
    """Why training failed, or None if it did not.

    Failed: in each of the last ``EPOCHS`` epochs (each epoch of a shorter run: its
    end is what the user gets) the loss was far above a uniform
    guess's (saturated: twice it if the network ends at chance level, else ten
    times it or half of ``max_loss``), or the network ends at chance level
    giving every training sample the same output (dead).

    Parameters
    ----------
    losses : sequence of float
        Mean training loss per epoch (``history_["loss"]``).
    uniform : float
        The loss of a uniform guess.
    constant : float
        The loss of the best constant output (the entropy of the class shares).
    max_loss : float
        The largest mean loss the clipped probabilities allow.
    learning_rate : float
        Named in the message as the likely cause.
    ending : callable
        Returns the :class:`Ending` of the fitted network; called only when the
        losses leave the question open (it costs a prediction).
    """
    if not losses:
        return None
    recent = losses[-EPOCHS:]
    lowest = min(recent)
    anyway = min(SATURATED_ANYWAY * uniform, SATURATED_SHARE_OF_MAX * max_loss)
    epochs = f"{len(recent)} epoch{'s' if len(recent) > 1 else ''}"
    loss_facts = f"loss at least {lowest:.3g} for {epochs} (a uniform guess: {uniform:.3g})"
    advice = f"the learning rate {learning_rate:g} is likely too high; try a smaller one"
    if lowest > anyway:
        return f"training failed: the network saturated, confidently wrong: {loss_facts}; {advice}"
    if lowest < CONSTANT_SHARE * constant:
        return None  # learning: below what any constant output can reach (constant <= uniform)
    end = ending()
    if not end.at_chance:
        return None
    facts = (f"training accuracy {end.accuracy:.3f} at the end (always predicting the most common class: "
             f"{end.majority:.3f}), {loss_facts}")
    if lowest > SATURATED_AT_CHANCE * uniform:
        return f"training failed: the network saturated, confidently wrong: {facts}; {advice}"
    if end.same_output:
        return (f"training failed: the network gives every training sample the same output, its hidden "
                f"units dead or saturated: {facts}; {advice}")
    return None


def ending(output, Y, X, softmax):
    """The :class:`Ending` of a network whose output layer gives ``output`` for the training
    rows ``X`` with binarized targets ``Y`` (both ``(n_samples, n_outputs)``)."""
    n = Y.shape[0]
    if softmax:
        accuracies = [np.mean(output.argmax(axis=1) == Y.argmax(axis=1))]
        majorities = [Y.mean(axis=0).max()]
    else:  # one logistic unit per label (one for two classes)
        accuracies = np.mean((output > 0.5) == (Y > 0.5), axis=0).tolist()
        shares = Y.mean(axis=0)
        majorities = np.maximum(shares, 1 - shares).tolist()
    # Samples that do not differ get the same output from any network.
    differ = X.shape[0] > 1 and np.ptp(X, axis=0).max() > 0
    same = bool(differ and np.all(np.ptp(output, axis=0) <= SAME_OUTPUT))
    return Ending(float(max(accuracies)), float(max(majorities)), at_chance(accuracies, majorities, n), same)


def losses_of_guesses(Y, softmax, dtype):
    """``(uniform, constant, max_loss)``: the mean loss of a uniform guess, of the best constant
    output (the entropy of the class shares), and the largest the clipped probabilities allow."""
    shares = Y.mean(axis=0)
    per_output = -math.log(np.finfo(dtype).eps)
    if softmax:
        nonzero = shares[shares > 0]
        return math.log(Y.shape[1]), float(-np.sum(nonzero * np.log(nonzero))), per_output
    entropy = sum(-p * math.log(p) - (1 - p) * math.log(1 - p) for p in shares.tolist() if 0 < p < 1)
    return Y.shape[1] * math.log(2), entropy, Y.shape[1] * per_output


def warn_if_failed(model, X, Y, ended=True):
    """Warn with :class:`TrainingFailedWarning` if the last epochs of the classifier ``model``,
    fitted on the rows ``X`` with binarized targets ``Y`` (what its output layer fits), failed.

    ``ended``: the training is over (``fit``), so a run of fewer than ``EPOCHS`` epochs is
    judged on all of them; after ``partial_fit`` training goes on, and early epochs can
    recover (see :data:`EPOCHS`), so nothing is judged before ``EPOCHS`` epochs. Does nothing
    for a regressor, or without a per-epoch loss history (``solver="lbfgs"``)."""
    n_epochs = len(model.history_.get("loss", ()))
    if not hasattr(model, "classes_") or n_epochs < (1 if ended else EPOCHS) or len(Y) == 0:
        return
    Y = np.asarray(Y)
    softmax = model.out_activation_ == "softmax"
    uniform, constant, max_loss = losses_of_guesses(Y, softmax, model.coefs_[0].dtype)

    def end():
        # Evenly spaced rows, at most about ENDING_ROWS: the check's cost and memory stay small
        # whatever the data (its chance level uses the number of rows it saw).
        rows = slice(None, None, max(1, len(Y) // ENDING_ROWS))
        return ending(model._output(X[rows]), Y[rows], np.asarray(X[rows]), softmax)

    problem = training_failure(model.history_["loss"], uniform, constant, max_loss,
                               model.learning_rate_init, end)
    if problem:
        warnings.warn(problem, TrainingFailedWarning, stacklevel=4)  # at the caller of fit
