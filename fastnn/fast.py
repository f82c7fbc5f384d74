"""The fast engines' Python side: data and buffers in, one compiled call per epoch.

:class:`FastEngine` holds what both thread models share: the data as given, the
network as the kernels see it (:class:`~fastnn.kernels.network.Net`), the
gradient operations and the step (serial kernels). :class:`SerialEngine` runs
the whole epoch in one compiled call (:func:`fastnn.kernels.epoch._train_epoch`)
with BLAS owning the cores; :class:`fastnn.split.SplitEngine` shares the first
hidden layer out to worker threads.
"""

import numpy as np

from .engine import Engine
from .kernels._scalar import ACTIVATION_CODES
from .kernels.dense import _dense_forward, _dense_softmax
from .kernels.epoch import _train_batch, _train_epoch
from .kernels.network import Batches, Net, make_work
from .kernels.update import _inplace_sgd


class FastEngine(Engine):
    """Base of the compiled engines.

    ``X`` is ``(n_samples, n_features)`` C-contiguous, kept as given (no copy);
    the network's flat ``theta`` is updated in place. Shuffled batches are
    gathered into buffers allocated at the first shuffled epoch: a full batch in
    stored order (what the trainer runs) uses ``X`` as it is.
    """

    n_gather_buffers = 1
    n_workers = 1

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False):
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.X, self.y = X, np.ascontiguousarray(y, dtype=np.int64)
        self.net = Net(self.theta, self.layout.table, ACTIVATION_CODES[self.activation])
        self.rows = min(batch_size, X.shape[0])  # the largest batch
        self._x_batches = np.empty((self.n_gather_buffers, 0, X.shape[1]), X.dtype)
        self._y_batches = np.empty((self.n_gather_buffers, 0), np.int64)
        self._gradient_work = None

    def apply_step(self, grad, step):
        _inplace_sgd(self.theta, grad, self.theta.dtype.type(step))

    def _gradient(self, theta, rows, grad):
        X, y = (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])
        m = X.shape[0]
        if self._gradient_work is None or self._gradient_work.losses.shape[0] < m:
            self._gradient_work = make_work(self.layout.table, m, self.X.dtype)
        work = self._gradient_work._replace(grad=grad)
        no_delta = np.empty((0, 0), self.X.dtype)
        return _train_batch(X, y, self.net._replace(theta=theta), work, False, self.X.dtype.type(0),
                            no_delta)

    def _batches(self, order):
        """The epoch's :class:`~fastnn.kernels.network.Batches`; ``order`` (None: as stored)
        is refused unless it holds one row index per sample, all in range."""
        n = self.X.shape[0]
        if order is None:
            order = np.empty(0, dtype=np.int64)
        else:
            order = np.ascontiguousarray(order, dtype=np.int64)
            if order.shape != (n,) or order.min() < 0 or order.max() >= n:
                raise ValueError(f"order must hold {n} row indices in [0, {n}); got shape {order.shape}")
            if self._x_batches.shape[1] < self.rows:
                self._x_batches = np.empty((self.n_gather_buffers, self.rows, self.X.shape[1]),
                                           self.X.dtype)
                self._y_batches = np.empty((self.n_gather_buffers, self.rows), np.int64)
        return Batches(self.X, self.y, order, self.batch_size, self._x_batches[0], self._y_batches[0])

    def _step(self, learning_rate):
        return self.X.dtype.type(learning_rate)


class SerialEngine(FastEngine):
    """The whole epoch in one compiled call; BLAS may use ``n_threads``.

    Work buffers, allocated once per fit for batches of ``b`` rows:
    ``b·(Σ widths + Σ hidden widths)`` values for activations and deltas, a
    ``b × n_features`` gather buffer when batches are shuffled, and, to track
    gradient norms, one gradient of the parameters' size.
    """

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False):
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.work = make_work(self.layout.table, self.rows, X.dtype,
                              grad_size=self.layout.size if track_gradients else 0,
                              track_norms=track_gradients)

    def epoch(self, order, learning_rate):
        """Train one epoch over the samples in ``order`` (None: as stored); return
        :class:`fastnn.engine.EpochStats`."""
        self.work.norms[:] = 0
        loss, hits = _train_epoch(self._batches(order), self.net, self.work, self._step(learning_rate))
        return self._stats(loss, hits, self.work.norms if self.track_gradients else None)


def predict_proba(weights, biases, activation, X):
    """Softmax probabilities for ``X`` of shape ``(n_samples, n_features)``: ``(n_samples, n_classes)``."""
    code = ACTIVATION_CODES[activation]
    A = X
    for W, B in zip(weights[:-1], biases[:-1]):
        out = np.empty((X.shape[0], W.shape[0]), X.dtype)
        _dense_forward(A, W, B.reshape(-1), code, out, np.empty_like(out))
        A = out
    out = np.empty((X.shape[0], weights[-1].shape[0]), X.dtype)
    _dense_softmax(A, weights[-1], biases[-1].reshape(-1), out)
    return out
