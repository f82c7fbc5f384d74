"""One epoch with the first hidden layer's units split across workers.

Worker ``c`` of ``n`` owns a block ``h`` of the first hidden layer's units:
rows ``W0[h]``, ``b0[h]`` of the first layer and columns ``W1[:, h]`` of the
second. Per batch, with one hidden layer (the second layer is the output)::

    A[h]  = g(X_b · W0[h]ᵀ + b0[h])            own rows: no other worker needed
    P_c   = A[h] · W1[:, h]ᵀ                    this worker's share of the logits
    ---- barrier: every P_c is written ----
    dZ[r] = softmax(Σ_c P_c[r] + b1) − onehot(y[r])    for this worker's share r of the rows
    ---- barrier: all of dZ is written ----
    dA[h] = (dZ · W1[:, h]) ∗ g'(A[h])
    W1[:, h] −= (α/m) dZᵀ·A[h]    b1 −= (α/m) Σ dZ       (b1: each worker's own copy)
    W0[h]    −= (α/m) dA[h]ᵀ·X_b  b0[h] −= (α/m) Σ dA[h]

The two large GEMMs (forward and weight update of the first layer) are split
with no communication; two barriers per batch are the only synchronisation.
Each worker keeps its own copy of ``b1``, updated identically, so no worker
writes what another reads between barriers. ``P`` alternates between two
buffers and shuffled batches rotate through three gather buffers: each worker
gathers its share of batch ``k + 2`` after its step on batch ``k``, which the
barriers of batch ``k + 1`` publish before anyone reads it.

With more hidden layers, every worker sums all rows of ``Σ_c P_c + b1``, applies
the activation, and steps the layers above the second (forward, softmax,
backward, update) on its own copies of them, all workers alike
(:func:`fastnn.kernels.epoch._train_batch`, which also returns the second
layer's ``dZ``); the second and first layers are then stepped as above. The
layers above the second are computed twice over: cheap while they are small
beside the first.

What the workers share travels as :class:`Shared`, what each owns as
:class:`Share`. The arithmetic is :func:`fastnn.kernels.epoch._train_batch`'s, but the logits
are summed in ``n`` pieces and the GEMMs have other shapes, so results agree
with one worker to the training tolerance, not bitwise; with ``n = 1`` they
are bitwise equal (tested). They do not depend on timing: every run with the
same ``n`` gives the same bits.
"""

from typing import NamedTuple

import numpy as np

from ._jit import helper, kernel
from ._scalar import like, opaque
from .activations import _bias_activate
from .backward import _backpropagate
from .blas import _gemm
from .dense import _dense_forward
from .epoch import _gather, _gather_rows, _run_batches
from .network import Batches, Net, Work, _share
from .softmax import _inplace_softmax_cross_entropy_grad
from .sync import _arrive_and_wait, _stall
from .update import _inplace_sgd_layer

N_GATHER_BUFFERS = 3  # batch k is read while k + 1 is in place and k + 2 is being gathered


class Shared(NamedTuple):
    """What every worker reads and writes: the gather buffers ``x_batches`` (3, b, n_in) and
    ``y_batches`` (3, b), the partial second-layer sums ``partials`` (2, workers, b, n_next),
    the output layer's ``logits`` (b, n_next; one hidden layer only) and ``sync``
    (int64 ``[count, abort]``, zero at the start of an epoch)."""

    x_batches: np.ndarray
    y_batches: np.ndarray
    partials: np.ndarray
    logits: np.ndarray
    sync: np.ndarray


class Share(NamedTuple):
    """What one worker owns: views ``W0`` (w, n_in) and ``b0`` (w,) of its rows of the first
    layer (in the network's flat vector), its own copies ``W1`` (n_next, w) of its columns of
    the second layer and ``b1`` of that layer's bias, its work arrays (``hidden``, ``delta``:
    b × w; ``grad_b0``, ``grad_b1``; ``losses``, ``hits``), and, for deeper networks, its own
    copy ``upper`` of the layers above the second with their ``upper_work`` buffers, the
    second layer's output ``hidden1`` and its ``delta1`` (b × n_next; empty otherwise).
    Three test-only stalls (0 but in tests) make the worker spin that long before it writes
    what a barrier then lets the others read: ``stall_start`` before it gathers its share of
    the first two shuffled batches (the start barrier), ``stall_partials`` before it computes
    its share ``P_c`` of each batch's second-layer sums (the first barrier), ``stall`` before
    it writes its share of each batch's output gradient (the second barrier)."""

    W0: np.ndarray
    b0: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    hidden: np.ndarray
    delta: np.ndarray
    grad_b0: np.ndarray
    grad_b1: np.ndarray
    losses: np.ndarray
    hits: np.ndarray
    upper: Net
    upper_work: Work
    hidden1: np.ndarray
    delta1: np.ndarray
    stall: int
    stall_start: int
    stall_partials: int


@helper
def _gather_share(data, k, worker, n_workers, shared):
    """Gather worker ``worker``'s share of batch ``k``'s rows into gather buffer ``k % 3``."""
    start = k * data.batch_size
    stop = min(start + data.batch_size, data.X.shape[0])
    lo, hi = _share(stop - start, worker, n_workers)
    slot = k % N_GATHER_BUFFERS
    rows = data.order[start + lo:start + hi]
    _gather_rows(data.X, rows, shared.x_batches[slot, lo:hi])
    _gather(data.y, rows, shared.y_batches[slot, lo:hi])


@helper
def _sum_partials(partials, out):
    """``out = partials[0] + partials[1] + ...`` in that order.

    Loops, not ``out[:] = …`` and ``+=`` on arrays: those pull Numba's broadcasting and
    its error-message formatting into the compiled code (about 1.5 s of compiling)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            total = partials[0, i, j]
            for c in range(1, partials.shape[0]):
                total += partials[c, i, j]
            out[i, j] = total


@helper
def _output_delta_share(partials, yb, worker, n_workers, shared, share):
    """One hidden layer: this worker's rows of ``dZ = softmax(Σ_c P_c + b1) − onehot(y)``,
    written to the shared logits; return their summed loss and hits."""
    m = yb.shape[0]
    lo, hi = _share(m, worker, n_workers)
    logits = shared.logits[lo:hi]
    _sum_partials(partials[:, lo:hi], logits)
    _inplace_softmax_cross_entropy_grad(logits, share.b1, yb[lo:hi], share.losses[lo:hi],
                                        share.hits[lo:hi])
    return np.sum(share.losses[lo:hi]), np.sum(share.hits[lo:hi])


@helper
def _upper_layers_step(partials, yb, worker, n_workers, share, code, step):
    """Deeper networks: the layers above the second, stepped by every worker alike on its own
    copies ``share.upper``. ``hidden1 = g(Σ_c P_c + b1)``; ``delta1`` receives the second
    layer's ``dZ``. Return this worker's share of the batch's summed loss and hits."""
    m = yb.shape[0]
    hidden1 = share.hidden1[:m]
    _sum_partials(partials, hidden1)
    _bias_activate(hidden1, share.b1, code, hidden1)
    # No order, no gather buffers: empty int64 arrays of the share's own, as yb may be the
    # read-only labels and the batch's type still says its buffers can be written.
    no_rows = share.hits[:0]
    one_batch = Batches(hidden1, yb, no_rows, m, hidden1[:0], no_rows)
    _run_batches(one_batch, share.upper, share.upper_work, opaque(True), step, share.delta1[:m])
    lo, hi = _share(m, worker, n_workers)
    losses, hits = share.upper_work.losses, share.upper_work.hits
    return np.sum(losses[lo:hi]), np.sum(hits[lo:hi])


@kernel
def _train_epoch_share(worker, n_workers, data, shared, share, code, step):
    """Worker ``worker``'s part of one epoch of a network with one hidden layer
    (:func:`_epoch_share`)."""
    return _epoch_share(worker, n_workers, data, shared, share, code, step, False)


@kernel
def _train_deep_epoch_share(worker, n_workers, data, shared, share, code, step):
    """Worker ``worker``'s part of one epoch of a network with two or more hidden layers
    (:func:`_epoch_share`)."""
    return _epoch_share(worker, n_workers, data, shared, share, code, step, True)


@helper
def _epoch_share(worker, n_workers, data, shared, share, code, step, deep):
    """Worker ``worker``'s part of one epoch over ``data`` (:class:`~.network.Batches`, whose
    own gather buffers are not used: ``shared`` has three). Return the summed loss and hits
    of this worker's share of the rows, or (nan, -1) if another worker aborted.

    ``deep`` is a constant of each kernel above, so Numba drops the branch a kernel never
    takes: a one-hidden-layer network does not compile the layers-above step
    (:func:`~.epoch._run_batches`).
    """
    n = data.X.shape[0]
    n_batches = -(-n // data.batch_size)
    shuffled = data.order.shape[0] > 0
    if share.stall_start > 0:
        _stall(shared.sync, share.stall_start)
    for k in range(min(2, n_batches) if shuffled else 0):
        _gather_share(data, k, worker, n_workers, shared)
    if not _arrive_and_wait(shared.sync, n_workers):
        return np.nan, -1
    loss, n_hits = 0.0, 0
    for k in range(n_batches):
        start, stop = k * data.batch_size, min((k + 1) * data.batch_size, n)
        m = stop - start
        if shuffled:
            Xb = shared.x_batches[k % N_GATHER_BUFFERS, :m]
            yb = shared.y_batches[k % N_GATHER_BUFFERS, :m]
        else:
            Xb, yb = data.X[start:stop], data.y[start:stop]
        A = share.hidden[:m]
        step_m = like(Xb, step / m)
        partials = shared.partials[k % 2]
        if share.stall_partials > 0:
            _stall(shared.sync, share.stall_partials)
        nothing = share.b0[:0]  # neither the inputs nor the weights are transposed
        _dense_forward(Xb, share.W0, share.b0, code, A, share.delta[:m], nothing, nothing)
        _gemm(False, True, 1.0, A, share.W1, 0.0, partials[worker, :m])
        if not _arrive_and_wait(shared.sync, n_workers * (2 * k + 2)):
            return np.nan, -1
        if share.stall > 0:
            _stall(shared.sync, share.stall)
        if deep:
            dZ = share.delta1[:m]
            batch_loss, batch_hits = _upper_layers_step(partials[:, :m], yb, worker, n_workers,
                                                        share, code, step)
        else:
            dZ = shared.logits[:m]
            batch_loss, batch_hits = _output_delta_share(partials[:, :m], yb, worker, n_workers,
                                                         shared, share)
        loss += batch_loss
        n_hits += batch_hits
        if not _arrive_and_wait(shared.sync, n_workers * (2 * k + 3)):
            return np.nan, -1
        _backpropagate(dZ, share.W1, A, code, share.delta[:m])
        _inplace_sgd_layer(dZ, A, share.W1, share.b1, share.grad_b1, step_m)
        _inplace_sgd_layer(share.delta[:m], Xb, share.W0, share.b0, share.grad_b0, step_m)
        if shuffled and k + 2 < n_batches:
            _gather_share(data, k + 2, worker, n_workers, shared)
    return loss, n_hits
