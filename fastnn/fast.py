"""The fast engines' Python side: data and buffers in, one compiled call per epoch.

:class:`FastEngine` holds what both thread models share: the data as given, the
network as the kernels see it (:class:`~fastnn.kernels.network.Net`), the
gradient operations and the step (serial kernels). :class:`SerialEngine` runs
the whole epoch in one compiled call (:func:`fastnn.kernels.epoch._run_batches`)
with BLAS owning the cores; :class:`fastnn.split.SplitEngine` shares the first
hidden layer out to worker threads.
"""

import numba
import numpy as np

from ._aligned import aligned_empty, read_only
from .engine import Engine, network_of
from .kernels._scalar import ACTIVATION_CODES
from .kernels.epoch import _predict, _run_batches
from .kernels.network import Batches, Net, make_work
from .kernels.update import _inplace_sgd


def full_batch_as_stored(order, rows, n):
    """The order a fast engine's epoch takes ``n`` samples in, in batches of ``rows``: None (as
    stored) for a batch of every row, else ``order``.

    In a batch of every row the order changes only the order of the sums over rows, and so
    their rounding (within the engines' bounds of the reference, which follows the order),
    while gathering all the data in order took a ninth to a seventh of such an epoch
    (``python bench/full_batch_order.py``; 2026-11-27, the README's Xeon, 784-128-10 on
    60,000 rows, float32, 2 workers: best 131 / 117 ms with plain SGD, 134 / 116 ms with
    Nesterov's momentum on the solver epoch; an earlier probe 140 / 118 and 135 / 116).
    """
    return None if rows >= n else order


class FastEngine(Engine):
    """Base of the compiled engines.

    ``X`` is ``(n_samples, n_features)`` C-contiguous, kept as given (no copy);
    the network's flat ``theta`` is updated in place. Shuffled batches are
    gathered into buffers allocated at the first shuffled epoch; a batch of every
    row uses ``X`` as it is (:func:`full_batch_as_stored`).
    """

    n_gather_buffers = 1
    n_workers = 1

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False):
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.X, self.y = read_only(X), read_only(np.ascontiguousarray(y, dtype=np.int64))
        self.net = Net(self.theta, self.layout.table, ACTIVATION_CODES[self.activation])
        self.rows = min(batch_size, X.shape[0])  # the largest batch
        self.gather_rows = self.rows  # the rows a gather buffer holds
        self._x_batches = np.empty((self.n_gather_buffers, 0, X.shape[1]), X.dtype)
        self._y_batches = np.empty((self.n_gather_buffers, 0), np.int64)
        self._gradient_work = None
        self._no_delta = np.empty((0, 0), X.dtype)  # no layer below the input to pass a gradient to

    def apply_step(self, grad, step):
        _inplace_sgd(self.theta, grad, self.theta.dtype.type(step))

    def will_compile(self):
        """Whether the first epoch compiles the epoch kernel (a cold cache) rather than
        loading it from Numba's disk cache."""
        kernel, args = self._epoch_call(None, 0.1)
        return will_compile(kernel, *args)

    def _epoch_call(self, order, learning_rate):
        """The epoch kernel and the arguments of its call (for worker 0)."""
        raise NotImplementedError

    def _gradient(self, theta, rows, grad):
        X, y = (self.X, self.y) if rows is None else (read_only(self.X[rows]), read_only(self.y[rows]))
        m = X.shape[0]
        if self._gradient_work is None or self._gradient_work.losses.shape[0] < m:
            self._gradient_work = make_work(self.layout.table, m, self.X.dtype)
        data = Batches(X, y, np.empty(0, np.int64), m, self._x_batches[0, :0], self._y_batches[0, :0])
        return _run_batches(data, self.net._replace(theta=theta), self._gradient_work._replace(grad=grad),
                            False, self._step(0), self._no_delta)

    def _batches(self, order):
        """The epoch's :class:`~fastnn.kernels.network.Batches`; ``order`` (None: as stored)
        is refused unless it holds one row index per sample, all in range."""
        n = self.X.shape[0]
        if order is not None:
            order = np.ascontiguousarray(order, dtype=np.int64)
            if order.shape != (n,) or order.min() < 0 or order.max() >= n:
                raise ValueError(f"order must hold {n} row indices in [0, {n}); got shape {order.shape}")
        order = full_batch_as_stored(order, self.rows, n)
        if order is None:
            order = np.empty(0, dtype=np.int64)
        elif self._x_batches.shape[1] < self.gather_rows:
            shape = (self.n_gather_buffers, self.gather_rows)
            self._x_batches = aligned_empty((*shape, self.X.shape[1]), self.X.dtype)
            self._y_batches = np.empty(shape, np.int64)
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
        kernel, args = self._epoch_call(order, learning_rate)
        loss, hits = kernel(*args)
        return self._stats(loss, hits, self.work.norms if self.track_gradients else None)

    def _epoch_call(self, order, learning_rate):
        return _run_batches, (self._batches(order), self.net, self.work, True, self._step(learning_rate),
                              self._no_delta)


def predict_proba(weights, biases, activation, X):
    """Softmax probabilities for ``X`` of shape ``(n_samples, n_features)``: ``(n_samples, n_classes)``."""
    net = network_of(weights, biases, activation)
    kernel_net = Net(net.theta, net.layout.table, ACTIVATION_CODES[activation])
    out = np.empty((X.shape[0], net.layout.sizes[-1]), X.dtype)
    _predict(read_only(X), kernel_net, make_work(net.layout.table, X.shape[0], X.dtype), out)
    return out


def will_compile(kernel, *args):
    """Whether calling ``kernel`` with ``args`` compiles it: its signature is neither loaded
    nor in Numba's disk cache. Reads the cache index through Numba's internals (tested in
    tests/test_engine.py); if they change, it answers True."""
    signature = tuple(numba.typeof(arg) for arg in args)
    if signature in kernel.overloads:
        return False
    try:
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001  (any change of Numba's internals: say it may compile)
        return True
