"""The fast engine: a thin Python shell around the compiled epoch of :mod:`fastnn.kernels`."""

import threading

import numba
import numpy as np
from numba import typed

from ._threads import available_cores
from .kernels import sync
from .kernels._jit import PARALLEL
from .kernels._scalar import ACTIVATION_CODES
from .kernels.dense import _dense_forward, _dense_softmax
from .kernels.epoch import _train_epoch
from .kernels.split import N_GATHER_BUFFERS, _train_epoch_share
from .reference import EpochStats

_NO_ORDER = np.empty(0, dtype=np.int64)


def _typed_list(arrays, ndim=2, dtype=None):
    """A Numba typed list of C-ordered ``arrays``; ``ndim`` and ``dtype`` type it when empty."""
    like = arrays[0] if arrays else np.empty((0,) * ndim, dtype)
    out = typed.List.empty_list(numba.typeof(like))
    for a in arrays:
        out.append(a)
    return out


def _flat_biases(biases):
    # (n_out, 1) arrays seen as (n_out,) views: the kernels update the caller's memory.
    return _typed_list([B.reshape(-1) for B in biases])


def _layer_buffers(weights, rows, dtype):
    """Work arrays for batches of up to ``rows`` samples: activations, deltas, dW and db."""
    acts = _typed_list([np.empty((rows, W.shape[0]), dtype) for W in weights], 2, dtype)
    # One delta per hidden layer; at least one, which the kernels' types expect.
    deltas = _typed_list([np.empty((rows, W.shape[0]), dtype) for W in weights[:-1]]
                         or [np.empty((0, 0), dtype)])
    grad_w = _typed_list([np.empty_like(W) for W in weights], 2, dtype)
    grad_b = _typed_list([np.empty(W.shape[0], dtype) for W in weights], 1, dtype)
    return acts, deltas, grad_w, grad_b


# Below this many first-layer weights, starting the workers (~0.1 ms an epoch) and
# meeting at each batch's barrier cost more than sharing the GEMMs saves: the digits'
# 64-32-10 network at batch 32 ran 1.2x slower split (bench/test_bench_epoch.py,
# group "split or serial"). 784 inputs need 42 hidden units to split.
MIN_SPLIT_WEIGHTS = 32768


def split_workers(weights, n_threads, track_gradients=False):
    """How many workers train side by side (:mod:`fastnn.kernels.split`); 1: the serial epoch.

    At most one worker per core (a waiting worker spins) and one unit of the
    first hidden layer per worker. The split needs a hidden layer, a first layer
    of at least :data:`MIN_SPLIT_WEIGHTS` weights, the serial kernel build
    (Numba's parallel regions may not be entered from two threads at once) and a
    way to yield a core. Tracking gradient norms uses the serial epoch.
    """
    if (len(weights) < 2 or weights[0].size < MIN_SPLIT_WEIGHTS or track_gradients or PARALLEL
            or not sync.AVAILABLE):
        return 1
    return max(1, min(n_threads, available_cores(), weights[0].shape[0]))


class Engine:
    """Mini-batch SGD whose whole epoch is compiled: one call, or one call per worker.

    ``X`` is ``(n_samples, n_features)`` C-contiguous, kept as given (no copy).
    ``weights`` and ``biases`` are the reference's arrays and are updated in place.
    With ``n_threads > 1`` a network with a large enough first layer is trained by
    that many workers (:func:`split_workers`), each in its own thread calling one-thread
    BLAS; otherwise one compiled epoch runs and BLAS may use ``n_threads``.
    :attr:`blas_threads` is the BLAS thread count the epoch needs: the caller sets it
    (:func:`fastnn._threads.thread_limits`), once per fit.
    Work buffers are allocated here, once per fit: for batches of ``b`` rows,
    ``b·(Σ widths + Σ hidden widths)`` values for activations and deltas
    (``b·(2·H + (2w + 1)·n_classes)`` with ``w`` workers and ``H`` hidden units), a
    ``b × n_features`` gather buffer when batches are shuffled (three with
    workers), and one gradient array per layer (used only to track gradient norms).
    """

    def __init__(self, X, y, n_classes, weights, biases, activation, batch_size,
                 track_gradients=False, n_threads=1):
        self.X, self.y = X, np.ascontiguousarray(y, dtype=np.int64)
        self.weights, self.biases = weights, biases
        self.code = ACTIVATION_CODES[activation]
        self.batch_size = batch_size
        self.n_workers = split_workers(weights, n_threads, track_gradients)
        self.blas_threads = 1 if self.n_workers > 1 else n_threads
        dtype = X.dtype
        b = min(batch_size, X.shape[0])
        self._norms = np.zeros(len(weights) if track_gradients else 0, np.float64)
        # Shuffled batches are gathered here, allocated at the first shuffled epoch:
        # a full batch in stored order (what the trainer runs) uses X as it is.
        self._x_batch = np.empty((1, 0, X.shape[1]), dtype)
        self._y_batch = np.empty((1, 0), np.int64)
        if self.n_workers > 1:
            self._split = _SplitBuffers(weights, self.n_workers, b, dtype)
            return
        self._weights = _typed_list(weights)
        self._biases = _flat_biases(biases)
        self._acts, self._deltas, self._grad_w, self._grad_b = _layer_buffers(weights, b, dtype)
        self._losses = np.empty(b, np.float64)
        self._hits = np.empty(b, np.int64)

    def epoch(self, order, learning_rate):
        """Train one epoch over the samples in ``order`` (None: as stored).

        Return :class:`fastnn.reference.EpochStats`.
        """
        order = _NO_ORDER if order is None else self._checked(order)
        step = self.X.dtype.type(learning_rate)
        if self.n_workers > 1:
            loss, hits = self._split_epoch(order, step)
        else:
            loss, hits = self._serial_epoch(order, step)
        n = self.X.shape[0]
        n_batches = -(-n // self.batch_size)
        norms = self._norms / n_batches if self._norms.size else None
        return EpochStats(loss / n, hits / n, norms)

    def _serial_epoch(self, order, step):
        self._norms[:] = 0
        return _train_epoch(self.X, self.y, order, self.batch_size, self._weights, self._biases,
                            self._acts, self._deltas, self._grad_w, self._grad_b, self._x_batch[0],
                            self._y_batch[0], self._losses, self._hits, self._norms, self.code, step)

    def _split_epoch(self, order, step):
        """Run the workers (worker 0 in this thread); put their copies of the layers back."""
        buffers = self._split
        buffers.load(self.weights, self.biases)
        results = [None] * self.n_workers

        def run(worker):
            try:
                results[worker] = _train_epoch_share(
                    worker, self.n_workers, self.X, self.y, order, self.batch_size,
                    *buffers.blocks(worker, self.weights[0], self.biases[0]), self._x_batch,
                    self._y_batch, buffers.partials, buffers.logits, buffers.sync, *buffers.own[worker],
                    buffers.upper[worker], *buffers.hidden1[worker], self.code, step)
            except BaseException:
                buffers.sync[sync.ABORT] = 1  # the other workers stop waiting for this one
                raise

        threads = [threading.Thread(target=run, args=(w,)) for w in range(1, self.n_workers)]
        for thread in threads:
            thread.start()
        try:
            run(0)
        finally:
            for thread in threads:
                thread.join()
            # Whatever ended the epoch (even Ctrl-C in this thread), the layers the workers
            # hold copies of must stay in step with the first, which they update in place.
            buffers.store(self.weights, self.biases)
        if any(r is None for r in results):
            raise RuntimeError("a training worker failed; the weights are partly updated")
        return sum(loss for loss, _ in results), sum(hits for _, hits in results)

    def _checked(self, order):
        """``order`` as int64, refused unless it holds one row index per sample, all in range."""
        n = self.X.shape[0]
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (n,) or order.min() < 0 or order.max() >= n:
            raise ValueError(f"order must hold {n} row indices in [0, {n}); got shape {order.shape}")
        rows = min(self.batch_size, n)
        if self._x_batch.shape[1] < rows:
            copies = N_GATHER_BUFFERS if self.n_workers > 1 else 1
            self._x_batch = np.empty((copies, rows, self.X.shape[1]), self.X.dtype)
            self._y_batch = np.empty((copies, rows), np.int64)
        return order


class _SplitBuffers:
    """What the workers of :mod:`fastnn.kernels.split` share and what each owns.

    Worker ``c`` owns units ``bounds[c]:bounds[c+1]`` of the first hidden layer. It
    updates its rows of ``W0``, ``b0`` in place, and its own copies of its columns
    of ``W1``, of ``b1`` and of every layer above (``upper``), which :meth:`load`
    and :meth:`store` move in and out once per epoch.
    """

    def __init__(self, weights, n_workers, rows, dtype):
        n_hidden, n_next = weights[0].shape[0], weights[1].shape[0]
        deep = len(weights) > 2
        self.bounds = [n_hidden * c // n_workers for c in range(n_workers + 1)]
        widths = np.diff(self.bounds)
        self.partials = np.empty((2, n_workers, rows, n_next), dtype)
        self.logits = np.empty((0 if deep else rows, n_next), dtype)
        self.sync = np.zeros(2, np.int64)
        self.W1 = [np.empty((n_next, w), dtype) for w in widths]
        self.b1 = [np.empty(n_next, dtype) for _ in widths]
        # hidden, delta, grad_b0, grad_b1, losses, hits
        self.own = [(np.empty((rows, w), dtype), np.empty((rows, w), dtype), np.empty(w, dtype),
                     np.empty(n_next, dtype), np.empty(rows), np.empty(rows, np.int64)) for w in widths]
        # The second layer's output and its dZ, for the layers above it.
        upper_rows = rows if deep else 0
        self.hidden1 = [(np.empty((upper_rows, n_next), dtype), np.empty((upper_rows, n_next), dtype))
                        for _ in widths]
        self.upper = [self._upper(weights[2:], rows, dtype) for _ in widths]

    @staticmethod
    def _upper(weights, rows, dtype):
        """Copies of the layers above the second and their buffers, as ``_train_batch`` takes them."""
        copies = [np.empty_like(W) for W in weights]
        biases = [np.empty(W.shape[0], dtype) for W in weights]
        return (_typed_list(copies, 2, dtype), _typed_list(biases, 1, dtype),
                *_layer_buffers(copies, rows, dtype))

    def blocks(self, worker, W0, B0):
        """Worker ``worker``'s ``W0`` rows, ``b0`` rows, ``W1`` columns and ``b1``."""
        lo, hi = self.bounds[worker], self.bounds[worker + 1]
        return W0[lo:hi], B0.reshape(-1)[lo:hi], self.W1[worker], self.b1[worker]

    def load(self, weights, biases):
        self.sync[:] = 0
        for c, (block, bias, upper) in enumerate(zip(self.W1, self.b1, self.upper)):
            block[...] = weights[1][:, self.bounds[c]:self.bounds[c + 1]]
            bias[...] = biases[1].reshape(-1)
            for copy, W in zip(upper[0], weights[2:]):
                copy[...] = W
            for copy, B in zip(upper[1], biases[2:]):
                copy[...] = B.reshape(-1)

    def store(self, weights, biases):
        for c, block in enumerate(self.W1):
            weights[1][:, self.bounds[c]:self.bounds[c + 1]] = block
        biases[1][:, 0] = self.b1[0]
        for W, copy in zip(weights[2:], self.upper[0][0]):
            W[...] = copy
        for B, copy in zip(biases[2:], self.upper[0][1]):
            B[:, 0] = copy


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
