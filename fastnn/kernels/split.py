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

The arithmetic is :func:`fastnn.kernels.epoch._train_batch`'s, but the logits
are summed in ``n`` pieces and the GEMMs have other shapes, so results agree
with one worker to the training tolerance, not bitwise; with ``n = 1`` they
are bitwise equal (tested). They do not depend on timing: every run with the
same ``n`` gives the same bits.
"""

import numpy as np

from ._jit import kernel
from ._scalar import like
from .activations import _bias_activate
from .backward import _backpropagate
from .blas import _gemm
from .dense import _dense_forward
from .epoch import _gather_rows, _train_batch
from .softmax import _inplace_softmax_cross_entropy_grad
from .sync import _arrive_and_wait
from .update import _inplace_sgd_layer

N_GATHER_BUFFERS = 3  # batch k is read while k + 1 is in place and k + 2 is being gathered


@kernel
def _share(m, worker, n_workers):
    """Worker ``worker``'s rows ``[lo, hi)`` of ``m``: ``n_workers`` near-equal blocks."""
    return worker * m // n_workers, (worker + 1) * m // n_workers


@kernel
def _gather_share(X, y, order, start, stop, worker, n_workers, x_out, y_out):
    """Gather worker ``worker``'s share of the rows ``order[start:stop]`` into ``x_out``, ``y_out``."""
    m = stop - start
    lo, hi = _share(m, worker, n_workers)
    _gather_rows(X, y, order[start + lo:start + hi], x_out[lo:hi], y_out[lo:hi])


@kernel
def _sum_partials(partials, out):
    """``out = partials[0] + partials[1] + ...`` in that order."""
    out[:] = partials[0]
    for c in range(1, partials.shape[0]):
        out += partials[c]


@kernel
def _output_delta_share(partials, b1, yb, worker, n_workers, logits, losses, hits):
    """One hidden layer: this worker's rows of ``dZ = softmax(Σ_c P_c + b1) − onehot(y)``,
    written to the shared ``logits``; return their summed loss and hits."""
    m = yb.shape[0]
    lo, hi = _share(m, worker, n_workers)
    _sum_partials(partials[:, lo:hi], logits[lo:hi])
    _inplace_softmax_cross_entropy_grad(logits[lo:hi], b1, yb[lo:hi], losses[lo:hi], hits[lo:hi])
    return np.sum(losses[lo:hi]), np.sum(hits[lo:hi])


@kernel
def _upper_layers_step(partials, b1, yb, worker, n_workers, upper, code, step, hidden1, delta1,
                       losses, hits):
    """Deeper networks: the layers above the second, stepped by every worker alike on its own
    copies ``upper``. ``hidden1 = g(Σ_c P_c + b1)``; ``delta1`` receives the second layer's
    ``dZ``. Return this worker's share of the batch's summed loss and hits."""
    weights, biases, acts, deltas, grad_w, grad_b = upper
    m = yb.shape[0]
    _sum_partials(partials, hidden1)
    _bias_activate(hidden1, b1, code, hidden1)
    _train_batch(hidden1, yb, weights, biases, acts, deltas, grad_w, grad_b, losses, hits,
                 losses[:0], code, step, delta1)
    lo, hi = _share(m, worker, n_workers)
    return np.sum(losses[lo:hi]), np.sum(hits[lo:hi])


@kernel
def _train_epoch_share(worker, n_workers, X, y, order, batch_size, W0, b0, W1, b1, x_batches,
                       y_batches, partials, logits, sync, hidden, delta, grad_b0, grad_b1, losses, hits,
                       upper, hidden1, delta1, code, step):
    """Worker ``worker``'s part of one epoch; ``W0``, ``b0``, ``W1`` are its blocks (see above).

    Shared between workers: ``X``, ``y``, ``order`` (empty: rows as stored),
    ``x_batches`` (3, b, n_in), ``y_batches`` (3, b), ``partials`` (2, n_workers, b, n_out),
    ``logits`` (b, n_out) and ``sync`` (int64 [count, abort], zero at the start). Own: the rest;
    ``upper`` holds the layers above the second (empty lists for one hidden layer) and
    their buffers, as :func:`fastnn.kernels.epoch._train_batch` takes them.
    Return the summed loss and hits of this worker's share of the rows, or (nan, -1) if
    another worker aborted.
    """
    n = X.shape[0]
    n_batches = -(-n // batch_size)
    shuffled = order.shape[0] > 0
    deep = len(upper[0]) > 0
    for k in range(min(2, n_batches) if shuffled else 0):
        _gather_share(X, y, order, k * batch_size, min((k + 1) * batch_size, n), worker, n_workers,
                      x_batches[k], y_batches[k])
    if not _arrive_and_wait(sync, n_workers):
        return np.nan, -1
    loss, n_hits = 0.0, 0
    for k in range(n_batches):
        start, stop = k * batch_size, min((k + 1) * batch_size, n)
        m = stop - start
        if shuffled:
            Xb, yb = x_batches[k % N_GATHER_BUFFERS, :m], y_batches[k % N_GATHER_BUFFERS, :m]
        else:
            Xb, yb = X[start:stop], y[start:stop]
        A = hidden[:m]
        step_m = like(Xb, step / m)
        _dense_forward(Xb, W0, b0, code, A, delta[:m])
        _gemm(False, True, 1, A, W1, 0, partials[k % 2, worker, :m])
        if not _arrive_and_wait(sync, n_workers * (2 * k + 2)):
            return np.nan, -1
        if deep:
            dZ = delta1[:m]
            batch_loss, batch_hits = _upper_layers_step(partials[k % 2, :, :m], b1, yb, worker,
                                                        n_workers, upper, code, step, hidden1[:m],
                                                        dZ, losses, hits)
        else:
            dZ = logits[:m]
            batch_loss, batch_hits = _output_delta_share(partials[k % 2, :, :m], b1, yb, worker,
                                                         n_workers, dZ, losses, hits)
        loss += batch_loss
        n_hits += batch_hits
        if not _arrive_and_wait(sync, n_workers * (2 * k + 3)):
            return np.nan, -1
        _backpropagate(dZ, W1, A, code, delta[:m])
        _inplace_sgd_layer(dZ, A, W1, b1, grad_b1, step_m)
        _inplace_sgd_layer(delta[:m], Xb, W0, b0, grad_b0, step_m)
        ahead = k + 2
        if shuffled and ahead < n_batches:
            _gather_share(X, y, order, ahead * batch_size, min((ahead + 1) * batch_size, n), worker,
                          n_workers, x_batches[ahead % N_GATHER_BUFFERS],
                          y_batches[ahead % N_GATHER_BUFFERS])
    return loss, n_hits
