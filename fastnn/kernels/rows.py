"""One epoch of SGD with each batch's rows shared out to workers.

Worker ``c`` of ``n`` takes the ``c``-th of ``n`` near-equal blocks of a batch's
``m`` rows and, per batch::

    g_c = Σ_{its rows} ∂loss/∂θ            forward and backward at full width (_train_batch)
    ---- barrier: every g_c is written ----
    θ[p] −= (α/m) · (g_0 + g_1 + …)[p]      for its block p of the flat θ, added in worker order
    ---- barrier: all of θ is updated ----

Every GEMM runs at the network's full width on a share of the rows; the weight
gradients are added once per step. Against the units split (:mod:`.split`) this
trades the first layer's narrower GEMMs and its per-batch exchange of the second
layer's sums for a pass over the workers' gradients: the better trade at large
batches (:data:`fastnn.rows.MIN_ROW_SHARING_ROWS`). With one worker the arithmetic is
the serial epoch's with a separate gradient (``work.grad``), bitwise (tested); with
more, only the order in which rows are summed differs. Every run with the same
``n`` gives the same bits.
"""

from typing import NamedTuple

import numpy as np

from ._jit import helper, kernel
from ._scalar import like
from .epoch import _check_order, _rows, _train_batch
from .network import _share
from .sync import _arrive_and_wait, _stall
from .update import _inplace_sgd


class Crew(NamedTuple):
    """The workers that share each batch's rows; this one is ``worker`` of ``n_workers``.
    ``grads`` (``n_workers × θ's size``): row ``c`` is worker ``c``'s summed gradient (its
    ``work.grad``); ``sync``: the barrier's counters (:mod:`.sync`). Two test-only stalls (0
    but in tests) make the worker spin that long before it writes what a barrier then lets
    the others read: ``stall_gradient`` before its share of each batch's gradient (the first
    barrier), ``stall_update`` before its block of each step (the second)."""

    worker: int
    n_workers: int
    grads: np.ndarray
    sync: np.ndarray
    stall_gradient: int
    stall_update: int


@helper
def _add_in_order(grads, lo, hi):
    """``grads[0, lo:hi] += grads[1, lo:hi] + …``, one row after another (in worker order)."""
    total = grads[0, lo:hi]
    for other in range(1, grads.shape[0]):
        part = grads[other, lo:hi]
        for k in range(total.shape[0]):
            total[k] += part[k]
    return total


@kernel
def _rows_epoch_share(data, net, work, crew, step):
    """Worker ``crew.worker``'s part of one epoch of SGD steps of size ``step`` over ``data``
    (:class:`~.network.Batches` with this worker's gather buffers), each batch's rows shared
    out (module docstring). ``work`` holds a worker's share of a batch, with
    ``crew.grads[crew.worker]`` as its gradient. Return the summed loss and hits of this
    worker's rows, or (nan, -1) if another worker aborted."""
    n = data.X.shape[0]
    share = -(-min(data.batch_size, n) // max(crew.n_workers, 1))
    if (data.batch_size < 1 or crew.n_workers < 1 or work.losses.shape[0] < share
            or crew.grads.shape[0] != crew.n_workers or crew.grads.shape[1] != net.theta.shape[0]
            or work.grad.shape[0] != net.theta.shape[0]):
        raise ValueError("work buffers are smaller than a batch's share, or the gradients do not fit theta")
    _check_order(data, share)
    own_lo, own_hi = _share(net.theta.shape[0], crew.worker, crew.n_workers)
    loss, n_hits = 0.0, 0
    for k in range(-(-n // data.batch_size)):
        start = k * data.batch_size
        stop = min(start + data.batch_size, n)
        lo, hi = _share(stop - start, crew.worker, crew.n_workers)
        if crew.stall_gradient > 0:
            _stall(crew.sync, crew.stall_gradient)
        if hi > lo:
            Xb, yb = _rows(data, start + lo, start + hi)
            batch_loss, batch_hits = _train_batch(Xb, yb, net, work, False, step, Xb[:0])
            loss += batch_loss
            n_hits += batch_hits
        else:  # a last batch of fewer rows than workers
            work.grad[:] = 0
        if not _arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 1)):
            return np.nan, -1
        if crew.stall_update > 0:
            _stall(crew.sync, crew.stall_update)
        total = _add_in_order(crew.grads, own_lo, own_hi)
        _inplace_sgd(net.theta[own_lo:own_hi], total, like(net.theta, step / (stop - start)))
        if not _arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 2)):
            return np.nan, -1
    return loss, n_hits
