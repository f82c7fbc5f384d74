"""The split engine: the first hidden layer's units shared out to worker threads.

Each worker runs :func:`fastnn.kernels.split._train_epoch_share` in its own
Python thread (the kernels release the GIL) and calls one-thread BLAS on its
share; the scheme and its two barriers per batch are described there.
"""

import numpy as np

from ._aligned import aligned_empty
from ._threads import available_cores, run_workers
from .fast import FastEngine
from .kernels import sync
from .kernels._jit import PARALLEL
from .kernels.network import Net, make_work
from .kernels.split import N_GATHER_BUFFERS, Share, Shared, _train_deep_epoch_share, _train_epoch_share

# Below this many first-layer weights, starting the workers (~0.1 ms an epoch) and
# meeting at each batch's barrier cost more than sharing the GEMMs saves: the digits'
# 64-32-10 network at batch 32 ran 1.2x slower split (bench/test_bench_epoch.py,
# group "split or serial"). 784 inputs need 42 hidden units to split.
MIN_SPLIT_WEIGHTS = 32768


def split_workers(layout, n_threads, track_gradients=False):
    """How many workers train side by side; 1: the serial epoch.

    At most one worker per core (a waiting worker spins) and one unit of the
    first hidden layer per worker. The split needs a hidden layer, a first layer
    of at least :data:`MIN_SPLIT_WEIGHTS` weights, the serial kernel build
    (Numba's parallel regions may not be entered from two threads at once) and a
    way to yield a core. Tracking gradient norms uses the serial epoch.
    """
    sizes = layout.sizes
    if (len(sizes) < 3 or sizes[0] * sizes[1] < MIN_SPLIT_WEIGHTS or track_gradients or PARALLEL
            or not sync.AVAILABLE):
        return 1
    return max(1, min(n_threads, available_cores(), sizes[1]))


class SplitEngine(FastEngine):
    """One epoch trained by ``n_workers`` threads, each owning a share of the first hidden layer.

    Worker ``c`` owns units ``bounds[c]:bounds[c+1]`` of the first hidden layer: it
    updates its rows of ``W0``, ``b0`` in place in the flat vector, and its own copies
    of its columns of ``W1``, of ``b1`` and of every layer above, which the epoch
    copies in and out once (:meth:`_load`, :meth:`_store`). BLAS runs one thread.

    Buffers for batches of ``b`` rows, with ``H`` first-layer units and ``n_next``
    second-layer units: per worker its hidden and delta blocks (``b·H`` in all), the
    partial sums ``2·w·b·n_next`` and the logits ``b·n_next`` (one hidden layer), three
    ``b × n_features`` gather buffers for shuffled batches and, in deeper networks,
    each worker's copy of the layers above the second with their buffers.
    """

    n_gather_buffers = N_GATHER_BUFFERS

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False, n_workers=2):
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.n_workers, self.blas_threads = n_workers, 1
        n_hidden, n_next = self.layout.sizes[1], self.layout.sizes[2]
        self.bounds = [n_hidden * c // n_workers for c in range(n_workers + 1)]
        self.upper_layout, self.upper_start = self.layout.tail(2)
        deep = self.upper_layout.n_layers > 0
        b, dtype = self.rows, X.dtype
        self.shared = Shared(x_batches=self._x_batches, y_batches=self._y_batches,
                             partials=np.empty((2, n_workers, b, n_next), dtype),
                             logits=np.empty((0 if deep else b, n_next), dtype),
                             sync=np.zeros(2, np.int64))
        self.shares = [self._share(c, b, deep) for c in range(n_workers)]

    def _share(self, worker, b, deep):
        """Worker ``worker``'s :class:`~fastnn.kernels.split.Share`."""
        lo, hi = self.bounds[worker], self.bounds[worker + 1]
        w, n_next, dtype = hi - lo, self.layout.sizes[2], self.X.dtype
        W0, B0 = self.layout.weights(self.theta)[0], self.layout.biases(self.theta)[0]
        upper = Net(np.empty(self.upper_layout.size, dtype), self.upper_layout.table, self.net.code)
        rows = b if deep else 0
        return Share(W0=W0[lo:hi], b0=B0[lo:hi, 0], W1=np.empty((n_next, w), dtype),
                     b1=np.empty(n_next, dtype), hidden=aligned_empty((b, w), dtype),
                     delta=aligned_empty((b, w), dtype), grad_b0=np.empty(w, dtype),
                     grad_b1=np.empty(n_next, dtype), losses=np.empty(b), hits=np.empty(b, np.int64),
                     upper=upper, upper_work=make_work(upper.table, b, dtype),
                     hidden1=np.empty((rows, n_next), dtype), delta1=np.empty((rows, n_next), dtype),
                     stall=0, stall_start=0, stall_partials=0)

    def epoch(self, order, learning_rate):
        """Run the workers (worker 0 in this thread); put their copies of the layers back.
        Return :class:`fastnn.engine.EpochStats`."""
        kernel, (_, _, data, shared, _, code, step) = self._epoch_call(order, learning_rate)
        self._load()
        try:
            results = run_workers(self.n_workers, lambda w: kernel(w, self.n_workers, data, shared,
                                                                   self.shares[w], code, step), shared.sync)
        finally:
            # Whatever ended the epoch (even Ctrl-C in this thread), the layers the workers
            # hold copies of must stay in step with the first, which they update in place.
            self._store()
        return self._stats(sum(loss for loss, _ in results), sum(hits for _, hits in results))

    def _epoch_call(self, order, learning_rate):
        data = self._batches(order)  # first: it allocates the gather buffers on the first shuffle
        shared = self.shared._replace(x_batches=self._x_batches, y_batches=self._y_batches)
        kernel = _train_deep_epoch_share if self.upper_layout.n_layers else _train_epoch_share
        return kernel, (0, self.n_workers, data, shared, self.shares[0], self.net.code,
                        self._step(learning_rate))

    def _second_layer(self):
        return self.layout.weights(self.theta)[1], self.layout.biases(self.theta)[1][:, 0]

    def _load(self):
        self.shared.sync[:] = 0
        W1, b1 = self._second_layer()
        upper = self.theta[self.upper_start:]
        for c, share in enumerate(self.shares):
            share.W1[...] = W1[:, self.bounds[c]:self.bounds[c + 1]]
            share.b1[...] = b1
            share.upper.theta[...] = upper

    def _store(self):
        W1, b1 = self._second_layer()
        for c, share in enumerate(self.shares):
            W1[:, self.bounds[c]:self.bounds[c + 1]] = share.W1
        b1[...] = self.shares[0].b1
        self.theta[self.upper_start:] = self.shares[0].upper.theta
