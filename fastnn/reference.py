"""The reference engine: the math of a dense network, in plain NumPy.

This module is the specification. It is written to read like the classic
derivation, in the ``(features, samples)`` layout::

    Z[l] = W[l] · A[l-1] + B[l]          A[l] = g(Z[l])        A[L] = softmax(Z[L])
    dZ[L] = A[L] − Y_onehot
    dW[l] = (1/m) · dZ[l] · A[l-1]ᵀ      dB[l] = (1/m) · Σ_samples dZ[l]
    dZ[l-1] = (W[l]ᵀ · dZ[l]) ∗ g'(Z[l-1])
    θ ← θ − α · dθ

``W[l]`` has shape ``(n_out, n_in)`` and ``B[l]`` shape ``(n_out, 1)``. The fast
engine (:mod:`fastnn.kernels`) must agree with every function here, to the
bounds that ``tests/test_kernels.py`` and ``tests/test_training.py`` state.
"""

import numpy as np

from .engine import Engine

LEAKY_SLOPE = 0.01


def sigmoid(Z):
    # exp(-|z|) never overflows; both branches are the same function.
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + E), E / (1 + E))


def sigmoid_derivative(Z):
    S = sigmoid(Z)
    return S * (1 - S)


def tanh(Z):
    return np.tanh(Z)


def tanh_derivative(Z):
    T = np.tanh(Z)
    return 1 - T * T


def relu(Z):
    return np.maximum(Z, 0)


def relu_derivative(Z):
    # ReLU'(0) = 0 by convention.
    return (Z > 0).astype(Z.dtype)


def leaky_relu(Z):
    return np.where(Z > 0, Z, LEAKY_SLOPE * Z)


def leaky_relu_derivative(Z):
    return np.where(Z > 0, 1, LEAKY_SLOPE).astype(Z.dtype)


def identity(Z):
    return Z


def identity_derivative(Z):
    return np.ones_like(Z)


# scikit-learn's names ("logistic" is the sigmoid, "identity" no activation) and the tutorial's.
ACTIVATIONS = {
    "identity": identity,
    "logistic": sigmoid,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
}

DERIVATIVES = {
    "identity": identity_derivative,
    "logistic": sigmoid_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
}

# Kaiming keeps the variance of ReLU-family outputs; Xavier that of the rest.
INIT_GAINS = {"xavier": 1.0, "kaiming": 2.0}


def softmax(Z):
    """Column-wise softmax, stable for any finite ``Z`` (the column max is subtracted)."""
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def one_hot(y, n_classes, dtype):
    """``Y[k, i] = 1`` where ``y[i] == k``: shape ``(n_classes, m)``."""
    Y = np.zeros((n_classes, y.shape[0]), dtype=dtype)
    Y[y, np.arange(y.shape[0])] = 1
    return Y


def cross_entropy(A_out, Y):
    """Mean categorical cross-entropy; ``A_out`` is clipped at ``tiny`` so the loss stays finite."""
    m = Y.shape[1]
    tiny = np.finfo(A_out.dtype).tiny
    return float(-(1 / m) * np.sum(Y * np.log(np.maximum(A_out, tiny))))


def correct(A_out, y):
    """How many samples' most probable class (first, on a tie) is their label."""
    return int(np.count_nonzero(np.argmax(A_out, axis=0) == y))


def init_params(layer_sizes, init, rng, dtype):
    """``W[l] = N(0, 1) · sqrt(gain / n_in)`` with gain 1 (Xavier) or 2 (Kaiming); ``B[l] = 0``."""
    gain = INIT_GAINS[init]
    weights, biases = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        W = rng.standard_normal((n_out, n_in)) * np.sqrt(gain / n_in)
        weights.append(W.astype(dtype))
        biases.append(np.zeros((n_out, 1), dtype=dtype))
    return weights, biases


def forward(weights, biases, activation, X, output=softmax):
    """Return ``(Zs, As)``: ``As[0] = X``, ``As[-1] = output(Zs[-1])`` (the softmax
    probabilities unless another output function is given)."""
    g = ACTIVATIONS[activation]
    Zs, As = [], [X]
    for l, (W, B) in enumerate(zip(weights, biases)):
        Z = W @ As[-1] + B
        is_output = l == len(weights) - 1
        Zs.append(Z)
        As.append(output(Z) if is_output else g(Z))
    return Zs, As


def backward_sums(weights, activation, Zs, As, dZ):
    """Return ``(dWs, dBs)`` summed over the batch, from the output layer's ``dZ``:
    ``dW[l] = dZ[l] · A[l-1]ᵀ``, ``dB[l] = Σ_samples dZ[l]``."""
    g_prime = DERIVATIVES[activation]
    L = len(weights)
    dWs, dBs = [None] * L, [None] * L
    for l in reversed(range(L)):
        dWs[l] = dZ @ As[l].T
        dBs[l] = np.sum(dZ, axis=1, keepdims=True)
        if l > 0:
            dZ = (weights[l].T @ dZ) * g_prime(Zs[l - 1])
    return dWs, dBs


def backward(weights, activation, Zs, As, Y):
    """Return ``(dWs, dBs)``, the batch-mean gradients of the cross-entropy (``dZ[L] = A[L] − Y``)."""
    m = Y.shape[1]
    dWs, dBs = backward_sums(weights, activation, Zs, As, As[-1] - Y)
    return [(1 / m) * dW for dW in dWs], [(1 / m) * dB for dB in dBs]


def sgd_update(params, grads, learning_rate):
    """``θ ← θ − α · dθ``, in place on every array of ``params``."""
    for theta, d_theta in zip(params, grads):
        theta -= learning_rate * d_theta


def predict_proba(weights, biases, activation, X):
    """Softmax probabilities for ``X`` of shape ``(n_features, m)``: shape ``(n_classes, m)``."""
    return forward(weights, biases, activation, X)[1][-1]


class ReferenceEngine(Engine):
    """Mini-batch gradient descent on the reference math.

    Holds the data once in the ``(features, samples)`` layout and updates the
    network's flat parameter vector through its per-layer views ``weights`` and
    ``biases`` (:mod:`fastnn.layout`).
    """

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False):
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.X = np.ascontiguousarray(X.T)
        self.y = y
        self.Y = one_hot(y, self.layout.sizes[-1], X.dtype)
        self.weights, self.biases = self.layout.weights(self.theta), self.layout.biases(self.theta)

    def epoch(self, order, learning_rate):
        """Train one epoch over the samples in ``order`` (None: as stored); return
        :class:`fastnn.engine.EpochStats`."""
        n = self.X.shape[1]
        loss = hits = 0.0
        norms = np.zeros(len(self.weights))
        for start in range(0, n, self.batch_size):
            stop = start + self.batch_size
            idx = slice(start, stop) if order is None else order[start:stop]
            X, Y = self.X[:, idx], self.Y[:, idx]
            m = X.shape[1]
            Zs, As = forward(self.weights, self.biases, self.activation, X)
            loss += cross_entropy(As[-1], Y) * m
            hits += correct(As[-1], self.y[idx])
            dWs, dBs = backward(self.weights, self.activation, Zs, As, Y)
            norms += [np.linalg.norm(dW.astype(np.float64)) for dW in dWs]
            sgd_update(self.weights + self.biases, dWs + dBs, learning_rate)
        return self._stats(loss, hits, norms if self.track_gradients else None)

    def _gradient(self, theta, rows, grad):
        """``m ·`` the batch-mean gradients of :func:`backward`, at ``theta``, into ``grad``."""
        weights, biases = self.layout.weights(theta), self.layout.biases(theta)
        idx = slice(None) if rows is None else rows
        X, Y = self.X[:, idx], self.Y[:, idx]
        m = X.shape[1]
        Zs, As = forward(weights, biases, self.activation, X)
        dWs, dBs = backward(weights, self.activation, Zs, As, Y)
        for view, mean in zip(self.layout.weights(grad) + self.layout.biases(grad), dWs + dBs):
            view[...] = m * mean
        return cross_entropy(As[-1], Y) * m, correct(As[-1], self.y[idx])

    def apply_step(self, grad, step):
        sgd_update([self.theta], [grad], step)
