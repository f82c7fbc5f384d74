"""The fast engine: a thin Python shell around the compiled epoch of :mod:`fastnn.kernels`."""

import numpy as np
from numba import typed

from .kernels._scalar import ACTIVATION_CODES
from .kernels.dense import _dense_forward, _dense_softmax
from .kernels.epoch import _train_epoch
from .reference import EpochStats

_NO_ORDER = np.empty(0, dtype=np.int64)


def _typed_list(arrays):
    out = typed.List()
    for a in arrays:
        out.append(a)
    return out


def _flat_biases(biases):
    # (n_out, 1) arrays seen as (n_out,) views: the kernels update the caller's memory.
    return _typed_list([B.reshape(-1) for B in biases])


def _layer_buffers(weights, rows, dtype):
    """Work arrays for batches of up to ``rows`` samples: activations, deltas, dW and db."""
    acts = _typed_list([np.empty((rows, W.shape[0]), dtype) for W in weights])
    # One delta per hidden layer; a typed list needs an element to know its type.
    deltas = _typed_list([np.empty((rows, W.shape[0]), dtype) for W in weights[:-1]]
                         or [np.empty((0, 0), dtype)])
    grad_w = _typed_list([np.empty_like(W) for W in weights])
    grad_b = _typed_list([np.empty(W.shape[0], dtype) for W in weights])
    return acts, deltas, grad_w, grad_b


class Engine:
    """Mini-batch SGD whose whole epoch is one compiled call.

    ``X`` is ``(n_samples, n_features)`` C-contiguous, kept as given (no copy).
    ``weights`` and ``biases`` are the reference's arrays and are updated in place.
    Work buffers are allocated here, once per fit: for batches of ``b`` rows,
    ``b·(Σ widths + Σ hidden widths)`` values for activations and deltas, a
    ``b × n_features`` gather buffer when batches are shuffled, and one
    gradient array per layer (used only to track gradient norms).
    """

    def __init__(self, X, y, n_classes, weights, biases, activation, batch_size,
                 track_gradients=False):
        self.X, self.y = X, np.ascontiguousarray(y, dtype=np.int64)
        self.weights, self.biases = weights, biases
        self.code = ACTIVATION_CODES[activation]
        self.batch_size = batch_size
        dtype = X.dtype
        b = min(batch_size, X.shape[0])
        self._weights = _typed_list(weights)
        self._biases = _flat_biases(biases)
        self._acts, self._deltas, self._grad_w, self._grad_b = _layer_buffers(weights, b, dtype)
        # Shuffled batches are gathered here, allocated at the first shuffled epoch:
        # a full batch in stored order (what the trainer runs) uses X as it is.
        self._x_batch = np.empty((0, X.shape[1]), dtype)
        self._y_batch = np.empty(0, np.int64)
        self._losses = np.empty(b, np.float64)
        self._hits = np.empty(b, np.int64)
        self._norms = np.zeros(len(weights) if track_gradients else 0, np.float64)

    def epoch(self, order, learning_rate):
        """Train one epoch over the samples in ``order`` (None: as stored).

        Return :class:`fastnn.reference.EpochStats`.
        """
        order = _NO_ORDER if order is None else self._checked(order)
        step = self.X.dtype.type(learning_rate)
        self._norms[:] = 0
        loss, hits = _train_epoch(self.X, self.y, order, self.batch_size, self._weights,
                                  self._biases, self._acts, self._deltas, self._grad_w,
                                  self._grad_b, self._x_batch, self._y_batch, self._losses,
                                  self._hits, self._norms, self.code, step)
        n = self.X.shape[0]
        n_batches = -(-n // self.batch_size)
        norms = self._norms / n_batches if self._norms.size else None
        return EpochStats(loss / n, hits / n, norms)


    def _checked(self, order):
        """``order`` as int64, refused unless it holds one row index per sample, all in range."""
        n = self.X.shape[0]
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (n,) or order.min() < 0 or order.max() >= n:
            raise ValueError(f"order must hold {n} row indices in [0, {n}); got shape {order.shape}")
        rows = min(self.batch_size, n)
        if self._x_batch.shape[0] < rows:
            self._x_batch = np.empty((rows, self.X.shape[1]), self.X.dtype)
            self._y_batch = np.empty(rows, np.int64)
        return order


def predict_proba(weights, biases, activation, X):
    """Softmax probabilities for ``X`` of shape ``(n_samples, n_features)``: ``(n_samples, n_classes)``."""
    code = ACTIVATION_CODES[activation]
    A = X
    for W, B in zip(weights[:-1], biases[:-1]):
        out = np.empty((X.shape[0], W.shape[0]), X.dtype)
        _dense_forward(A, W, B.reshape(-1), code, out)
        A = out
    out = np.empty((X.shape[0], weights[-1].shape[0]), X.dtype)
    _dense_softmax(A, weights[-1], biases[-1].reshape(-1), out)
    return out
