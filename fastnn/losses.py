"""scikit-learn's output layers and losses, as reference math.

In the reference's ``(features, samples)`` layout: ``A = f(Z[L])`` is ``(n_outputs, m)``,
``Y`` the targets of the same shape, ``s`` the optional per-sample weights (``m``). Each
loss is a per-sample loss ``ℓ_i`` and a weighted mean over samples::

    loss_data = Σ_i s_i ℓ_i / S                    S = Σ_i s_i   (m without weights)
    loss      = loss_data + (α/2) Σ_l ‖W[l]‖² / S
    dZ[L]     = (A − Y) ∗ s                         for every output / loss pair
    dW[l]     = (Σ_samples dZ[l] · A[l-1]ᵀ + α W[l]) / S     dB[l] = Σ_samples dZ[l] / S

with ``S`` the batch's sample count or weight sum, and biases not penalised. This is
what scikit-learn's ``BaseMultilayerPerceptron._backprop`` computes, where the same
sums are taken per output first (``np.average`` over samples, then a sum or a mean over
outputs): the values agree to rounding, not bitwise (``tests/test_losses.py``).

Two of scikit-learn's choices are kept on purpose:

- log-losses clip the probabilities to ``[eps, 1 − eps]`` (the dtype's ``eps``) for the
  loss only; ``dZ`` uses the unclipped outputs;
- ``squared_error`` averages over outputs, but ``dZ = A − Y`` is the gradient of the sum:
  with ``k`` outputs the data part of the gradient is ``k`` times that of the loss.
"""

from typing import NamedTuple

import numpy as np

from . import reference as ref


def xlogy(X, Y):
    """``X · ln Y``, and 0 where ``X = 0`` and ``Y`` is not NaN (so that ``0 · ln 0 = 0``;
    scipy.special.xlogy's convention, which scikit-learn's losses use)."""
    safe = np.where((X == 0) & ~np.isnan(Y), 1, Y)
    return X * np.log(safe)


def clip_probabilities(A):
    """``A`` clipped to ``[eps, 1 − eps]``, ``eps`` the machine epsilon of its dtype."""
    eps = np.finfo(A.dtype).eps
    return np.clip(A, eps, 1 - eps)


def log_loss(A, Y):
    """Categorical cross-entropy of each sample: ``ℓ_i = −Σ_k Y_ki ln clip(A_ki)``."""
    return -np.sum(xlogy(Y, clip_probabilities(A)), axis=0)


def binary_log_loss(A, Y):
    """Cross-entropy of independent logistic units: ``ℓ_i = −Σ_k [Y ln P + (1 − Y) ln(1 − P)]_ki``,
    ``P = clip(A)``."""
    P = clip_probabilities(A)
    return -np.sum(xlogy(Y, P) + xlogy(1 - Y, 1 - P), axis=0)


def squared_error(A, Y):
    """Half the squared error, averaged over outputs: ``ℓ_i = ½ · mean_k (Y_ki − A_ki)²``."""
    return 0.5 * np.mean((Y - A) ** 2, axis=0)


def poisson(A, Y):
    """Poisson deviance halved, of the mean ``A``: ``ℓ_i = Σ_k [Y ln(Y / A) − Y + A]_ki``."""
    return np.sum(xlogy(Y, Y / A) - Y + A, axis=0)


def output_delta(A, Y, sample_weight=None):
    """``dZ[L] = (A − Y) ∗ s``: each output function is the canonical link of its loss, so
    the output layer's gradient is the residual for every pair."""
    dZ = A - Y
    return dZ if sample_weight is None else dZ * sample_weight


class Loss(NamedTuple):
    """An output layer and its loss: the output function ``f`` (``A = f(Z[L])``), the
    per-sample ``loss(A, Y)`` and ``delta(A, Y, s)``, the output layer's ``dZ``."""

    output: object
    loss: object
    delta: object


# By scikit-learn's names. Its classifier says "log_loss" for both log-losses and picks
# binary_log_loss when its output is logistic (one output for two classes, or multilabel).
LOSSES = {
    "log_loss": Loss(ref.softmax, log_loss, output_delta),
    "binary_log_loss": Loss(ref.sigmoid, binary_log_loss, output_delta),
    "squared_error": Loss(ref.identity, squared_error, output_delta),
    "poisson": Loss(np.exp, poisson, output_delta),
}


def weight_sum(sample_weight, m):
    """``S``: the number of samples ``m``, or the sum of their weights (a Python float, so that
    dividing a float32 array by it stays float32)."""
    return m if sample_weight is None else float(sample_weight.sum())


def weighted_sum(values, sample_weight):
    """``Σ_i s_i v_i`` (``Σ_i v_i`` without weights)."""
    return values.sum() if sample_weight is None else (values * sample_weight).sum()


class Sums(NamedTuple):
    """A batch's unnormalised loss ``Σ_i s_i ℓ_i`` and gradient (flat, fastnn's layout),
    without the L2 term, and ``weight = S``. Sums of several batches add up field by field."""

    loss: float
    grad: np.ndarray
    weight: float


def batch_sums(theta, layout, activation, loss, X, Y, sample_weight=None):
    """:class:`Sums` of the batch ``X`` (``(n_features, m)``) with targets ``Y`` (``(n_outputs,
    m)``, X's dtype) at the flat parameters ``theta`` of ``layout``, for the hidden
    ``activation`` and the ``loss`` of :data:`LOSSES`."""
    output, per_sample, delta = LOSSES[loss]
    weights, biases = layout.weights(theta), layout.biases(theta)
    Zs, As = ref.forward(weights, biases, activation, X, output)
    dWs, dBs = ref.backward_sums(weights, activation, Zs, As, delta(As[-1], Y, sample_weight))
    grad = layout.pack(dWs, dBs, theta.dtype)
    m = X.shape[1]
    return Sums(weighted_sum(per_sample(As[-1], Y), sample_weight), grad, weight_sum(sample_weight, m))


def l2_penalty(theta, layout):
    """``Σ_l ‖W[l]‖²``: every weight's square, no bias."""
    return sum(np.dot(W.ravel(), W.ravel()) for W in layout.weights(theta))


def regularised_mean(theta, layout, sums, alpha):
    """The loss and gradient from (possibly reduced) :class:`Sums`:
    ``loss = Σ s ℓ / S + (α/2) Σ‖W‖² / S``, ``dW = (Σ dW + α W) / S``, ``dB = Σ dB / S``."""
    S = sums.weight
    loss = sums.loss / S + (0.5 * alpha) * l2_penalty(theta, layout) / S
    grad = np.empty_like(sums.grad)
    for dW, summed, W in zip(layout.weights(grad), layout.weights(sums.grad), layout.weights(theta)):
        dW[...] = (summed + alpha * W) / S
    for dB, summed in zip(layout.biases(grad), layout.biases(sums.grad)):
        dB[...] = summed / S
    return float(loss), grad


def loss_and_gradient(theta, layout, activation, loss, X, Y, alpha=0.0, sample_weight=None):
    """scikit-learn's training objective and its gradient at ``theta`` on the batch ``(X, Y)``
    (the layouts of :func:`batch_sums`): the mean loss with its L2 term, and the mean
    gradient, flat in fastnn's layout. What ``_backprop`` returns, for a batch or (L-BFGS)
    the whole training set."""
    sums = batch_sums(theta, layout, activation, loss, X, Y, sample_weight)
    return regularised_mean(theta, layout, sums, alpha)
