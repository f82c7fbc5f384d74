"""The rows engine: each batch's rows cut into pieces that worker threads take as they come free.

Each worker runs :func:`fastnn.kernels.rows._rows_epoch_share` in its own Python
thread (the kernels release the GIL) and calls one-thread BLAS on its pieces; the
scheme and its two barriers per batch are described there.
"""

import numpy as np

from ._aligned import aligned_rows
from ._threads import run_workers
from .fast import FastEngine
from .kernels.network import make_work
from .kernels.rows import Crew, _largest_piece, _pieces, _rows_epoch_share

# From batches of this many rows up, fastnn.engine.make_engine shares rows rather than the
# first hidden layer's units: bench/plain_sgd_paths.py's measurements in the README ("Threads").
MIN_ROW_SHARING_ROWS = 512
# A batch of m rows is cut into min(max_pieces(...), ⌈m / r⌉) near-equal pieces of about
# r = min(PIECE_ROWS, max(MIN_PIECE_ROWS, ⌈m / 2⌉)) rows (each has a gradient buffer of θ's size;
# docs/design.md, "Engines and thread models"): bench/plain_sgd_paths.py --piece-rows.
PIECE_ROWS = 512
MIN_PIECE_ROWS = 64
MAX_PIECES = 16
# ... but fewer where the pieces' gradients would take more bytes than this (two at least): the
# 784-256-128-10 network's best epoch at batch 1024 was 11-16% shorter in 4 pieces than in 16
# (docs/design.md, "Engines and thread models").
PIECE_BYTES = 4 * 2**20


def max_pieces(n_parameters, itemsize):
    """The most pieces a batch is cut into for ``n_parameters`` parameters of ``itemsize`` bytes:
    :data:`MAX_PIECES`, or fewer (two at least) where their gradients would exceed
    :data:`PIECE_BYTES`."""
    return max(2, min(MAX_PIECES, PIECE_BYTES // (n_parameters * itemsize)))


def default_piece_rows(rows):
    """Rows a piece of a batch of ``rows`` rows aims at: half the batch (two pieces), but at
    least :data:`MIN_PIECE_ROWS` (a batch of at most that many rows is one piece) and at most
    :data:`PIECE_ROWS`."""
    return min(PIECE_ROWS, max(MIN_PIECE_ROWS, -(-rows // 2)))


def pieces_of(rows, n_parameters, itemsize, piece_rows=None):
    """How batches of at most ``rows`` rows are cut, for ``n_parameters`` parameters of
    ``itemsize`` bytes: ``(piece_rows, n_pieces, largest_piece)``, the kernels' ``piece_rows`` and
    ``max_pieces`` and the rows a piece's buffers must hold. ``piece_rows`` given (tests,
    benchmarks): pieces of that many rows instead of :func:`default_piece_rows`, at most
    :data:`MAX_PIECES` whatever the bytes."""
    most = MAX_PIECES if piece_rows else max_pieces(n_parameters, itemsize)
    piece_rows = piece_rows or default_piece_rows(rows)
    n_pieces = _pieces(rows, piece_rows, most)
    return piece_rows, n_pieces, _largest_piece(rows, piece_rows, n_pieces)


class RowsEngine(FastEngine):
    """One epoch trained by ``n_workers`` threads that take the pieces of every batch's rows.

    Piece ``p`` of a batch leaves its summed gradient in row ``p`` of :attr:`grads`; each
    worker then updates its block of the flat ``theta`` from the pieces' gradients added in
    piece order. BLAS runs one thread.

    Buffers for batches of ``b`` rows, cut into at most :func:`max_pieces` pieces (:func:`pieces_of`) of about
    :func:`default_piece_rows` rows (``piece_rows``, if given, instead: tests): a gradient of the
    parameters' size per piece, and per worker the work buffers of a piece's rows (as the serial
    engine's for that many) and, for shuffled batches, a gather buffer of as many rows.
    """

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False, n_workers=2,
                 piece_rows=None):
        self.n_gather_buffers = n_workers  # one per worker: FastEngine allocates them
        super().__init__(X, y, network, batch_size, n_threads, track_gradients)
        self.n_workers, self.blas_threads = n_workers, 1
        piece_rows, n_pieces, self.gather_rows = pieces_of(self.rows, self.layout.size, X.dtype.itemsize,
                                                           piece_rows)
        self.grads = aligned_rows(n_pieces, self.layout.size, X.dtype)
        self.works = [make_work(self.layout.table, self.gather_rows, X.dtype, step_rows=self.rows)
                      for _ in range(n_workers)]
        self.sync = np.zeros(3, np.int64)
        losses, hits = np.empty(n_pieces), np.empty(n_pieces, np.int64)
        self.crews = [Crew(w, n_workers, piece_rows, n_pieces, self.grads, losses, hits, self.sync, 0, 0)
                      for w in range(n_workers)]

    def epoch(self, order, learning_rate):
        """Run the workers (worker 0 in this thread). Return :class:`fastnn.engine.EpochStats`."""
        data, step = self._batches(order), self._step(learning_rate)  # first: allocates the gather buffers
        self.sync[:] = 0
        results = run_workers(self.n_workers, lambda w: _rows_epoch_share(*self._worker_args(data, step, w)),
                              self.sync)
        return self._stats(*results[0])  # worker 0 sums the pieces' losses and hits

    def _epoch_call(self, order, learning_rate):
        return _rows_epoch_share, self._worker_args(self._batches(order), self._step(learning_rate), 0)

    def _worker_args(self, data, step, worker):
        """Worker ``worker``'s arguments of the epoch kernel: the epoch's data with its own
        gather buffers."""
        own = data._replace(x_batch=self._x_batches[worker], y_batch=self._y_batches[worker])
        return own, self.net, self.works[worker], self.crews[worker], step
