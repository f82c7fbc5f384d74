"""The rows engine: each batch's rows shared out to worker threads.

Each worker runs :func:`fastnn.kernels.rows._rows_epoch_share` in its own Python
thread (the kernels release the GIL) and calls one-thread BLAS on its rows; the
scheme and its two barriers per batch are described there.
"""

import numpy as np

from ._threads import run_workers
from .fast import FastEngine
from .kernels.network import make_work
from .kernels.rows import Crew, _rows_epoch_share

# From batches of this many rows up, fastnn.engine.make_engine shares rows rather than the
# first hidden layer's units: bench/plain_sgd_paths.py's measurements in the README ("Threads").
MIN_ROW_SHARING_ROWS = 512


class RowsEngine(FastEngine):
    """One epoch trained by ``n_workers`` threads, each taking its share of every batch's rows.

    Worker ``c`` forms the summed gradient of its rows in its row of :attr:`grads`, then
    updates its block of the flat ``theta`` from the workers' gradients added in worker
    order. BLAS runs one thread.

    Buffers for batches of ``b`` rows: per worker, the work buffers of ``⌈b/w⌉`` rows (as the
    serial engine's for that many), a gradient of the parameters' size and, for shuffled
    batches, a ``b × n_features`` gather buffer.
    """

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False, n_workers=2):
        self.n_gather_buffers = n_workers  # one per worker: FastEngine allocates them
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.n_workers, self.blas_threads = n_workers, 1
        self.grads = np.empty((n_workers, self.layout.size), X.dtype)
        share = -(-self.rows // n_workers)
        self.works = [make_work(self.layout.table, share, X.dtype)._replace(grad=self.grads[w])
                      for w in range(n_workers)]
        self.sync = np.zeros(2, np.int64)
        self.crews = [Crew(w, n_workers, self.grads, self.sync, 0, 0) for w in range(n_workers)]

    def epoch(self, order, learning_rate):
        """Run the workers (worker 0 in this thread). Return :class:`fastnn.engine.EpochStats`."""
        data, step = self._batches(order), self._step(learning_rate)  # first: allocates the gather buffers
        self.sync[:] = 0
        results = run_workers(self.n_workers, lambda w: _rows_epoch_share(*self._worker_args(data, step, w)),
                              self.sync)
        return self._stats(sum(loss for loss, _ in results), sum(hits for _, hits in results))

    def _epoch_call(self, order, learning_rate):
        return _rows_epoch_share, self._worker_args(self._batches(order), self._step(learning_rate), 0)

    def _worker_args(self, data, step, worker):
        """Worker ``worker``'s arguments of the epoch kernel: the epoch's data with its own
        gather buffers."""
        own = data._replace(x_batch=self._x_batches[worker], y_batch=self._y_batches[worker])
        return own, self.net, self.works[worker], self.crews[worker], step
