"""One epoch of SGD with each batch's rows cut into pieces that workers take as they come free.

A batch of ``m`` rows is cut into ``P = min(crew.max_pieces, ⌈m / crew.piece_rows⌉)``
near-equal pieces of consecutive rows (:func:`_pieces`): the cut depends on ``m`` alone (and,
through ``max_pieces``, on θ's size: :func:`fastnn.rows.max_pieces`). Per
batch, each worker::

    while a piece p is left: g_p = Σ_{rows of p} ∂loss/∂θ      (_train_batch, full width)
    ---- barrier: every g_p is written ----
    θ[q] −= (α/m) · (g_0 + g_1 + …)[q]      for its block q of the flat θ, added in piece order
    ---- barrier: all of θ is updated ----

Workers take pieces from a shared counter (``sync[CLAIM]``, an atomic add), so a faster core
takes more of them; which worker computed a piece changes nothing, because each piece's
gradient has a buffer of its own and the pieces are added in piece order. So the result does
not depend on timing or on the number of workers: one worker gives the bits of any other
number (tested), and with batches of at most ``piece_rows`` rows, those of the serial epoch
that forms the batch's gradient before its step. Against the units split (:mod:`.split`) this
trades the first layer's narrower GEMMs and its per-batch exchange of the second layer's sums
for a pass over the pieces' gradients: the better trade at large batches
(:data:`fastnn.rows.MIN_ROW_SHARING_ROWS`).

Tickets from ``sync[CLAIM]`` only grow: in a batch of ``P`` pieces every worker takes
tickets until one is past the batch's pieces, so the batch uses exactly ``P + n_workers``
of them and the next batch's pieces start where those end.
"""

from typing import NamedTuple

import numpy as np
from numba.extending import register_jitable

from ._jit import helper, kernel
from ._scalar import like
from .epoch import _check_order, _rows, _train_batch, _transpose_weights
from .network import _share, _with_grad
from .sync import _arrive_and_wait, _claim, _stall
from .update import _inplace_sgd_summed


class Crew(NamedTuple):
    """The workers that share each batch's pieces; this one is ``worker`` of ``n_workers``.
    A batch has ``min(max_pieces, ⌈m / piece_rows⌉)`` pieces; row ``p`` of ``grads`` (at least
    ``max_pieces`` rows, at least θ's size wide) receives piece ``p``'s summed gradient, ``losses[p]``
    (float64) and ``hits[p]`` (int64) its summed loss and hits; ``sync``: the barrier's and the
    pieces' counters (:mod:`.sync`). Two test-only stalls (0 but in tests) make the worker spin
    that long before it writes what a barrier then lets the others read: ``stall_gradient``
    before each piece it has taken (the first barrier), ``stall_update`` before its block of
    each step (the second)."""

    worker: int
    n_workers: int
    piece_rows: int
    max_pieces: int
    grads: np.ndarray
    losses: np.ndarray
    hits: np.ndarray
    sync: np.ndarray
    stall_gradient: int
    stall_update: int


@helper
def _add_but_last(grads, lo, hi):
    """``grads[0, lo:hi] += grads[1, lo:hi] + …`` but the last row, one row after another (in
    piece order); return row 0's ``lo:hi`` and the last row's (an empty slice if there is one
    row), for the update to add as it reads them (:func:`._scalar.summed`): the in-order sum,
    one pass over the parameters fewer (all of the passes at two pieces)."""
    total = grads[0, lo:hi]
    n = grads.shape[0]
    for other in range(1, n - 1):
        part = grads[other, lo:hi]
        for k in range(total.shape[0]):
            total[k] += part[k]
    return total, grads[n - 1, lo:hi] if n > 1 else total[:0]


# Plain Python too (register_jitable): the engines size their buffers with them, uncompiled.
# Not inline="always": so inlined into the solver epoch, _pieces clobbered a variable of the
# code around it (the tracked gradient norms came out 0; tests/test_solver.py checks them).
@register_jitable
def _pieces(m, piece_rows, max_pieces):
    """The number of pieces of a batch of ``m`` rows."""
    return min(max_pieces, -(-m // piece_rows))


@register_jitable
def _largest_piece(m, piece_rows, max_pieces):
    """The most rows a piece of a batch of at most ``m`` rows can have."""
    return min(m, max(piece_rows, -(-m // max_pieces)))


@helper
def _check_crew(data, net, work, crew):
    """Raise unless the buffers fit: work for a piece, a gradient row and a loss per piece."""
    if data.batch_size < 1 or crew.n_workers < 1 or crew.piece_rows < 1 or crew.max_pieces < 1:
        raise ValueError("the batch size, the workers and the pieces must be at least 1")
    rows = _largest_piece(min(data.batch_size, data.X.shape[0]), crew.piece_rows, crew.max_pieces)
    if (work.losses.shape[0] < rows or crew.grads.shape[0] < crew.max_pieces
            or crew.grads.shape[1] < net.theta.shape[0] or crew.losses.shape[0] < crew.max_pieces
            or crew.hits.shape[0] < crew.max_pieces):
        raise ValueError("work buffers are smaller than a piece, or the gradients do not fit the pieces "
                         "or theta")
    _check_order(data, rows)


@helper
def _train_pieces(data, net, work, crew, step, start, stop, taken):
    """Take the pieces of the batch ``start…stop`` left after ``taken`` tickets, one at a time,
    until none is left; return the batch's number of pieces."""
    n_pieces = _pieces(stop - start, crew.piece_rows, crew.max_pieces)
    while True:
        p = _claim(crew.sync, taken, n_pieces)
        if p < 0:
            return n_pieces
        if crew.stall_gradient > 0:
            _stall(crew.sync, crew.stall_gradient)
        lo, hi = _share(stop - start, p, n_pieces)
        Xb, yb = _rows(data, start + lo, start + hi)
        # No layer below the input takes a gradient: an empty input delta, from the gather
        # buffer, as Xb may be the read-only data.
        crew.losses[p], crew.hits[p] = _train_batch(Xb, yb, net, _with_grad(work, crew.grads[p]), False, step,
                                                    data.x_batch[:0])


@kernel
def _rows_epoch_share(data, net, work, crew, step):
    """Worker ``crew.worker``'s part of one epoch of SGD steps of size ``step`` over ``data``
    (:class:`~.network.Batches` with this worker's gather buffers of a piece's rows), each
    batch's pieces shared out (module docstring). ``work`` holds a piece. Return the epoch's
    summed loss and hits (worker 0; the others return 0), or (nan, -1) if another worker
    aborted."""
    _check_crew(data, net, work, crew)
    n = data.X.shape[0]
    own_lo, own_hi = _share(net.theta.shape[0], crew.worker, crew.n_workers)
    loss, n_hits, taken = 0.0, 0, 0
    for k in range(-(-n // data.batch_size)):
        start = k * data.batch_size
        stop = min(start + data.batch_size, n)
        _transpose_weights(net, work)  # θ as the last step left it (the barrier below k − 1's update)
        n_pieces = _train_pieces(data, net, work, crew, step, start, stop, taken)
        taken += n_pieces + crew.n_workers
        if not _arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 1)):
            return np.nan, -1
        if crew.stall_update > 0:
            _stall(crew.sync, crew.stall_update)
        total, last = _add_but_last(crew.grads[:n_pieces], own_lo, own_hi)
        _inplace_sgd_summed(net.theta[own_lo:own_hi], total, last, like(net.theta, step / (stop - start)))
        if crew.worker == 0:
            for p in range(n_pieces):
                loss += crew.losses[p]
                n_hits += crew.hits[p]
        if not _arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 2)):
            return np.nan, -1
    return loss, n_hits
