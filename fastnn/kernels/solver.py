"""scikit-learn's stochastic solvers, a whole epoch in one compiled call, and the full-batch objective.

Per batch of ``m`` rows (of ``X`` in ``order``), with targets ``Y`` and sample
weights ``s`` (``S = Σ s``, or ``m`` without weights), in the ``(samples, features)``
layout::

    A[l]  = g(A[l-1] · W[l]ᵀ + b[l])          A[L] = f(…), f the loss's output function
    dZ[L] = (A[L] − Y) ∗ s                     loss = Σ s ℓ / S + (α/2) Σ‖W‖² / S
    dW[l] = (dZ[l]ᵀ · A[l-1] + α W[l]) / S     db[l] = Σ_rows dZ[l] / S
    dZ[l-1] = (dZ[l] · W[l]) ∗ g'(A[l-1])
    θ, state ← rule(θ, dθ, state)              (SGD with momentum or Nesterov's, or Adam)

which is :func:`fastnn.losses.loss_and_gradient` followed by an update of
:mod:`fastnn.optimizers`, the reference these kernels are tested against. The
summed gradient of a batch is formed in full in ``work.grad`` before the step; the
update then forms each element of the regularised mean from it as it reads it
(:class:`~.optimizers.Mean`), with scikit-learn's operations, so every rule sees the same
numbers as from a stored mean. Subnormal numbers
are flushed to zero while an epoch or the objective runs (:mod:`._fpu`).
"""

from typing import NamedTuple

import numpy as np

from ..layout import N_IN, N_OUT
from ._fpu import flush_subnormals, restore_fpu
from ._jit import helper, kernel
from ._scalar import like
from .activations import _inplace_row_bias_activate
from .backward import _backpropagate, _frobenius_norm, _inplace_activation_backward, _row_sums
from .blas import _gemm
from .dense import _transpose_into
from .epoch import _check_order, _gather, _gather_rows, _hidden_forward, _layer_gradient, _transpose_weights
from .network import NO_UNITS, Net, Work, _bias, _block, _owned, _share, _weights, _with_grad
from .optimizers import Mean, _adam_learning_rate, _inplace_adam, _inplace_momentum
from .outputs import (
    _bias_output,
    _inplace_l2_mean,
    _inplace_output_loss_grad,
    _l2_penalty,
    _part,
    _part_start,
)
from .rows import _add_but_last, _largest_piece, _pieces
from .sync import _arrive_and_wait, _claim, _stall

MOMENTUM, ADAM = 0, 1
# Workers sharing units gather each batch two ahead, into one of this many slots (_unit_solver_epoch).
GATHER_SLOTS = 2


class Samples(NamedTuple):
    """An epoch's data: ``X`` (n × n_features, C order), targets ``Y`` (n × n_outputs, X's
    dtype), per-sample ``weights`` (n, X's dtype; empty: all 1), the row ``order`` (int64;
    empty: as stored), ``batch_size``, and the buffers a shuffled batch is gathered into."""

    X: np.ndarray
    Y: np.ndarray
    weights: np.ndarray
    order: np.ndarray
    batch_size: int
    x_batch: np.ndarray
    y_batch: np.ndarray
    w_batch: np.ndarray


class Solver(NamedTuple):
    """The objective and the update rule of a fit.

    ``loss``: a code of :data:`fastnn.kernels.outputs.LOSS_CODES`; ``alpha``: the L2
    factor. ``rule``: :data:`MOMENTUM` (scikit-learn's "sgd", momentum 0 included) or
    :data:`ADAM`; ``state_a`` and ``state_b``: the velocity (and an empty array), or
    Adam's first and second moments, flat in θ's layout. ``learning_rate`` is the
    rate of SGD, or Adam's initial rate (its step size follows from the step count).
    """

    loss: int
    alpha: float
    rule: int
    learning_rate: float
    momentum: float
    nesterov: bool
    beta_1: float
    beta_2: float
    epsilon: float
    state_a: np.ndarray
    state_b: np.ndarray


class Team(NamedTuple):
    """The workers that share an epoch's batches; this one is ``worker`` of ``n_workers``.

    Sharing rows (:func:`_solver_epoch`), a batch of ``m`` rows is cut into ``min(max_pieces,
    ⌈m / piece_rows⌉)`` near-equal pieces (:func:`.rows._pieces`), which the workers take as
    they come free (as :mod:`.rows`): piece ``p``'s summed gradient goes into row ``p`` of
    ``grads`` (at least θ's size wide), its summed loss into ``losses[p]``. After a barrier each
    worker updates its share of every layer's weights and biases from the pieces' gradients
    added in piece order; a second barrier ends the step. Sharing units
    (:func:`_unit_solver_epoch`) each worker's row of ``grads`` is whole for the parameters it
    updates, and ``losses`` is not used. Either way, before the barrier that precedes its
    update, each worker writes ``Σ θ²`` over the weights it updates into ``squares[worker]``
    (float64), from which worker 0 forms the L2 term. ``sync``: the barrier's and the pieces'
    counters (:mod:`.sync`). One worker is the serial epoch (no barrier). ``stall_gather`` (0
    but in tests): sharing units, the worker spins that long before it gathers its share of
    each batch's rows (:func:`.sync._stall`), which the barriers then publish."""

    worker: int
    n_workers: int
    piece_rows: int
    max_pieces: int
    grads: np.ndarray
    losses: np.ndarray
    squares: np.ndarray
    sync: np.ndarray
    stall_gather: int


class Units(NamedTuple):
    """One worker's view of an epoch whose first hidden layer's ``H`` units are shared out
    (:func:`_unit_solver_epoch`): units ``bounds[worker]…bounds[worker + 1]`` are this worker's.

    ``hidden`` (flat, ``H·b``, the same array for every worker) receives a batch's ``A[0]ᵀ``
    (``H × m``), each worker writing its units' rows; ``acts`` (``b·H``) is the worker's own
    copy of ``A[0]`` (``m × H``) and ``delta`` (``H·b``) its ``dA[0]ᵀ``. ``upper``: the layers
    above the first (a view of θ, their own layer table), with their buffers ``upper_work``,
    whose gradient is a view of the worker's row of ``Team.grads``."""

    bounds: np.ndarray
    hidden: np.ndarray
    acts: np.ndarray
    delta: np.ndarray
    upper: Net
    upper_work: Work


@helper
def _summed_loss_gradient(Xb, Yb, sb, net, work, loss):
    """Forward and backward through the batch: the summed gradient (no L2 term) written into
    ``work.grad``; return ``Σ_i s_i ℓ_i`` and the first layer's ``dZ`` (in a block of ``work``)."""
    table = net.table
    L = table.shape[0]
    m = Xb.shape[0]
    capacity = work.losses.shape[0]
    A = _hidden_forward(Xb, net, work)
    dZ = _block(work.acts, table, L - 1, capacity, m)
    _gemm(False, True, 1.0, A, _weights(net.theta, table, L - 1), 0.0, dZ)
    _inplace_output_loss_grad(dZ, _bias(net.theta, table, L - 1), Yb, sb, loss, work.losses[:m])
    for l in range(L - 1, -1, -1):
        A_in = Xb if l == 0 else _block(work.acts, table, l - 1, capacity, m)
        _layer_gradient(dZ, A_in, work.grad, table, l)
        if work.norms.shape[0] > 0:
            work.norms[l] += _frobenius_norm(_weights(work.grad, table, l)) / m
        if l > 0:
            below = _block(work.deltas, table, l - 1, capacity, m)
            _backpropagate(dZ, _weights(net.theta, table, l), A_in, net.code, below)
            dZ = below
    return work.losses[:m].sum(), dZ


@helper
def _mean_loss_gradient(Xb, Yb, sb, net, work, solver):
    """The batch's regularised mean loss, returned, and mean gradient, in ``work.grad``."""
    m = Xb.shape[0]
    S = np.float64(m) if sb.shape[0] == 0 else np.float64(sb.sum())
    loss = _summed_loss_gradient(Xb, Yb, sb, net, work, solver.loss)[0] / S
    loss += _penalty_term(net, solver.alpha, S)
    _inplace_l2_mean(work.grad, net.theta, net.table, solver.alpha, S)
    return loss


@helper
def _penalty_term(net, alpha, S):
    """``(α/2) Σ‖W‖² / S`` over ``net``'s weights (:func:`_penalty`)."""
    return _penalty(net.theta, alpha, S, _l2_penalty(net.theta, net.table, 0, 1, NO_UNITS))


@helper
def _penalty(theta, alpha, S, squares):
    """``(α/2) Σ‖W‖² / S`` from ``squares = Σ‖W‖²``, first rounded to θ's dtype: as
    scikit-learn's ``np.dot`` in that dtype, a sum past the dtype's range is inf, and with
    ``α = 0`` the term is then NaN."""
    return (0.5 * alpha) * np.float64(like(theta, squares)) / S


@helper
def _squares_bound(theta, table):
    """A size within which every weight of ``table`` may be and ``Σ‖W‖²`` stays below half the
    largest finite value of θ's dtype: it cannot overflow, however its sum rounds."""
    n_weights = 0
    for l in range(table.shape[0]):
        n_weights += table[l, N_OUT] * table[l, N_IN]
    return np.sqrt(np.float64(np.finfo(theta.dtype).max) / (2.0 * max(n_weights, 1)))


@helper
def _l2_vanishes(alpha, bounded):
    """Whether the L2 term of the weights a worker updates is exactly 0, in the loss and in the
    gradient: ``α = 0`` and its last update wrote every value within :func:`_squares_bound`
    (``bounded``), so every such weight is finite and ``Σ‖W‖²`` cannot overflow. Otherwise the
    term is kept, so an infinite weight turns NaN (0·inf) as in the reference."""
    return alpha == 0 and bounded


@helper
def _worker_squares(net, alpha, team, units, bounded):
    """``Σ θ²`` over the weights worker ``team.worker`` updates (:func:`_l2_penalty`), or 0
    where :func:`_l2_vanishes`: then the L2 term is 0 either way (:func:`_penalty`), and the
    pass over θ is saved (8% of an epoch at batch 32)."""
    if _l2_vanishes(alpha, bounded):
        return 0.0
    return _l2_penalty(net.theta, net.table, team.worker, team.n_workers, units)


@helper
def _in_order(values):
    """``values[0] + values[1] + …``: the workers' or the pieces' parts of a sum, added in order."""
    total = 0.0
    for w in range(values.shape[0]):
        total += values[w]
    return total


@helper
def _step(theta, grads, solver, t, table, S, worker, n_workers, units, bounded):
    """Worker ``worker``'s share of one update of ``theta`` and the rule's state, ``t`` steps
    having been taken before, from the batch's summed gradient (no L2 term): the rows of
    ``grads`` (the pieces' or the workers' parts) added in order (:func:`.rows._add_but_last`,
    the last as the rule reads it), ``S`` the batch's weight sum, ``units`` as :func:`_owned`
    takes them, ``bounded`` whether this worker's last update (this function's return) wrote
    every value within :func:`_squares_bound` (False: not known). Layer by layer, the rule reads
    the weights' and the biases' regularised mean gradient through their
    :class:`~.optimizers.Mean`, so the mean is never stored. Return whether every value it
    wrote is within :func:`_squares_bound`."""
    bound = _squares_bound(theta, table)
    # Where the L2 term vanishes the weights are read as the biases are, (g + α·W) / S as
    # g / S, the same value (a zero's sign aside) in two operations an element fewer (one
    # worker's share of 784-128-10, bench/solver_parts.py: momentum's update 0.86x as long,
    # Adam's 0.87x).
    penalised = not _l2_vanishes(solver.alpha, bounded)
    within = True
    rate = solver.learning_rate
    if solver.rule == ADAM:
        rate = _adam_learning_rate(solver.learning_rate, solver.beta_1, solver.beta_2, t + 1)
    for l in range(table.shape[0]):
        for weights in (True, False):
            th = _part(theta, table, l, weights)
            lo, hi = _owned(th.shape[0], table, l, weights, worker, n_workers, units)
            start = _part_start(table, l, weights)
            g, last = _add_but_last(grads, start + lo, start + hi)
            mean = Mean(solver.alpha, S, weights and penalised)
            first = _part(solver.state_a, table, l, weights)[lo:hi]
            if solver.rule == ADAM:
                second = _part(solver.state_b, table, l, weights)[lo:hi]
                within &= _inplace_adam(th[lo:hi], g, last, first, second, rate, solver.beta_1, solver.beta_2,
                                        solver.epsilon, mean, bound)
            else:
                within &= _inplace_momentum(th[lo:hi], g, last, first, rate, solver.momentum, solver.nesterov,
                                            mean, bound)
    return within


@helper
def _sample_rows(data, start, stop):
    """Rows ``start…stop`` of the epoch, as stored or gathered in ``order``: inputs, targets and
    sample weights (empty: all 1)."""
    if data.order.shape[0] == 0:
        sb = data.weights[start:stop] if data.weights.shape[0] > 0 else data.weights
        return data.X[start:stop], data.Y[start:stop], sb
    _gather_into(data, data.order[start:stop], 0)
    return _buffered(data, 0, stop - start)


@helper
def _gather_into(data, idx, lo):
    """Rows ``idx`` of the inputs, targets and sample weights (if any), gathered into rows
    ``lo…`` of ``data``'s gather buffers."""
    hi = lo + idx.shape[0]
    _gather_rows(data.X, idx, data.x_batch[lo:hi])
    _gather_rows(data.Y, idx, data.y_batch[lo:hi])
    if data.weights.shape[0] > 0:
        _gather(data.weights, idx, data.w_batch[lo:hi])


@helper
def _buffered(data, lo, hi):
    """Rows ``lo…hi`` of ``data``'s gather buffers: inputs, targets and sample weights (empty: all 1)."""
    sb = data.w_batch[lo:hi] if data.weights.shape[0] > 0 else data.weights
    return data.x_batch[lo:hi], data.y_batch[lo:hi], sb


@helper
def _slot(data, k):
    """The first row of batch ``k``'s slot in gather buffers of :data:`GATHER_SLOTS` batches."""
    return (k % GATHER_SLOTS) * (data.x_batch.shape[0] // GATHER_SLOTS)


@helper
def _gather_share(data, k, team):
    """The worker's share of batch ``k``'s rows, gathered in ``data.order`` into its slot
    (:func:`_slot`) of the gather buffers every worker of the team reads
    (:func:`_unit_solver_epoch`): inputs, targets and sample weights (if any)."""
    if team.stall_gather > 0:
        _stall(team.sync, team.stall_gather)
    start, stop = _batch_rows(data, k)
    lo, hi = _share(stop - start, team.worker, team.n_workers)
    _gather_into(data, data.order[start + lo:start + hi], _slot(data, k) + lo)


@helper
def _gathered_rows(data, k, start, stop):
    """Batch ``k``'s inputs, targets and sample weights (empty: all 1), its rows ``start…stop``
    of the epoch: rows of the data as stored, or the slot :func:`_gather_share` gathered them into."""
    if data.order.shape[0] == 0:
        return _sample_rows(data, start, stop)
    slot = _slot(data, k)
    return _buffered(data, slot, slot + stop - start)


@helper
def _weight_sum(data, start, stop):
    """``S`` of rows ``start…stop``: their count, or their sample weights added in order in the
    weights' dtype (as an array's ``sum``), the same in every worker."""
    if data.weights.shape[0] == 0:
        return np.float64(stop - start)
    total = like(data.weights, 0)
    for i in range(start, stop):
        total += data.weights[i if data.order.shape[0] == 0 else data.order[i]]
    return np.float64(total)


@helper
def _check_samples(data, rows, team, net):
    """Raise unless ``data``'s batch size, row order and gather buffers (of ``rows`` rows) fit,
    and the team's gradients (a row per worker and per piece) and squares fit ``net``."""
    if data.batch_size < 1:
        raise ValueError("the batch size is below 1")
    _check_order(data, rows)
    if (team.grads.shape[0] < max(team.n_workers, team.max_pieces)
            or team.grads.shape[1] < net.theta.shape[0] or team.squares.shape[0] != team.n_workers):
        raise ValueError("the team's gradients do not fit theta")


@helper
def _n_batches(data):
    return -(-data.X.shape[0] // data.batch_size)


@helper
def _batch_rows(data, k):
    """Batch ``k``'s rows ``[start, stop)`` of the epoch."""
    start = k * data.batch_size
    return start, min(start + data.batch_size, data.X.shape[0])


@helper
def _meet(team, barrier):
    """Barrier number ``barrier`` (from 0) of the epoch; False if another worker aborted."""
    return team.n_workers == 1 or _arrive_and_wait(team.sync, team.n_workers * (barrier + 1))


@helper
def _piece_sums(data, net, work, loss, team, start, stop, taken):
    """Take the pieces of the batch ``start…stop`` left after ``taken`` tickets (:class:`Team`),
    one at a time, until none is left: a piece's summed gradient (no L2 term) into its row of
    ``team.grads``, its ``Σ s ℓ`` into ``team.losses``. Return the batch's number of pieces."""
    n_pieces = _pieces(stop - start, team.piece_rows, team.max_pieces)
    while True:
        p = _claim(team.sync, taken, n_pieces)
        if p < 0:
            return n_pieces
        lo, hi = _share(stop - start, p, n_pieces)
        Xb, Yb, sb = _sample_rows(data, start + lo, start + hi)
        team.losses[p] = _summed_loss_gradient(Xb, Yb, sb, net, _with_grad(work, team.grads[p]), loss)[0]


@kernel
def _solver_epoch(data, net, work, solver, t, team):
    """Worker ``team.worker``'s part of one epoch of the ``solver``'s steps over ``data``
    (:class:`Samples`, with this worker's gather buffers), ``t`` steps having been taken
    before (:class:`Team`). Return ``Σ_batches m · loss`` (scikit-learn's accumulated loss;
    worker 0's is the epoch's) and the new step count; NaN if another worker aborted.
    ``work`` must hold a piece of a batch."""
    if team.n_workers < 1 or team.piece_rows < 1 or team.max_pieces < 1:
        raise ValueError("the workers and the pieces must be at least 1")
    rows = _largest_piece(min(data.batch_size, data.X.shape[0]), team.piece_rows, team.max_pieces)
    _check_samples(data, rows, team, net)
    if work.losses.shape[0] < rows or team.losses.shape[0] < team.max_pieces:
        raise ValueError("work buffers are smaller than a piece, or the losses do not fit the pieces")
    accumulated, taken = 0.0, 0
    bounded = False  # θ as the epoch found it: its squares summed, α·W kept at the first step
    fpu = flush_subnormals()
    for k in range(_n_batches(data)):
        start, stop = _batch_rows(data, k)
        S = _weight_sum(data, start, stop)
        _transpose_weights(net, work)
        n_pieces = _piece_sums(data, net, work, solver.loss, team, start, stop, taken)
        taken += n_pieces + team.n_workers
        # Before the barrier: no worker changes theta until after it.
        team.squares[team.worker] = _worker_squares(net, solver.alpha, team, NO_UNITS, bounded)
        if not _meet(team, 2 * k):
            restore_fpu(fpu)
            return np.nan, t
        bounded = _step(net.theta, team.grads[:n_pieces], solver, t, net.table, S, team.worker,
                        team.n_workers, NO_UNITS, bounded)
        if team.worker == 0:
            penalty = _penalty(net.theta, solver.alpha, S, _in_order(team.squares))
            accumulated += (_in_order(team.losses[:n_pieces]) / S + penalty) * (stop - start)
        t += 1
        if not _meet(team, 2 * k + 1):
            restore_fpu(fpu)
            return np.nan, t
    restore_fpu(fpu)
    return accumulated, t


@helper
def _units_forward(Xb, net, team, units):
    """This worker's units' rows of the batch's ``A[0]ᵀ = g(W[0]·Xbᵀ + b[0])``, into ``units.hidden``."""
    lo, hi = units.bounds[team.worker], units.bounds[team.worker + 1]
    H, m = net.table[0, 1], Xb.shape[0]
    At = units.hidden[:H * m].reshape(H, m)[lo:hi]
    _gemm(False, True, 1.0, _weights(net.theta, net.table, 0)[lo:hi], Xb, 0.0, At)
    _inplace_row_bias_activate(At, _bias(net.theta, net.table, 0)[lo:hi], net.code)


@helper
def _units_loss_gradient(Xb, Yb, sb, net, loss, team, units):
    """Once every worker's :func:`_units_forward` is done: the layers above the first, forward
    and backward over all the batch's rows (every worker alike, into its own buffers and
    gradient), then this worker's units' rows of the first layer's summed gradient. Return
    ``Σ_i s_i ℓ_i``."""
    H, m = net.table[0, 1], Xb.shape[0]
    lo, hi = units.bounds[team.worker], units.bounds[team.worker + 1]
    At = units.hidden[:H * m].reshape(H, m)
    A = units.acts[:m * H].reshape(m, H)
    _transpose_into(At, A)
    total, dZ = _summed_loss_gradient(A, Yb, sb, units.upper, units.upper_work, loss)
    # dA[0]ᵀ = W[1]ᵀ·dZ[1]ᵀ for every unit (W[1]'s columns of one worker's units are not a
    # contiguous operand), then this worker's rows of dZ[0]ᵀ, dW[0] = dZ[0]ᵀ·Xb and db[0].
    dAt = units.delta[:H * m].reshape(H, m)
    _gemm(True, True, 1.0, _weights(units.upper.theta, units.upper.table, 0), dZ, 0.0, dAt)
    own = dAt[lo:hi]
    _inplace_activation_backward(own, At[lo:hi], net.code)
    grad = team.grads[team.worker]
    _gemm(False, False, 1.0, own, Xb, 0.0, _weights(grad, net.table, 0)[lo:hi])
    _row_sums(own, _bias(grad, net.table, 0)[lo:hi])
    return total


@kernel
def _unit_solver_epoch(data, net, solver, t, team, units):
    """Worker ``team.worker``'s part of one epoch of the ``solver``'s steps over ``data``, the
    first hidden layer's units shared out (:class:`Units`); returns as :func:`_solver_epoch`.

    Every worker takes all rows of a batch. It computes its units' rows of ``A[0]ᵀ``; after a
    barrier, the L2 squares of the weights it updates, then the layers above the first and its
    units' rows of the first layer's gradient (:func:`_units_loss_gradient`); after a second
    barrier it updates its units' rows of the first layer and its share of the layers above,
    from its own gradient. No gradient is added across workers: the two large GEMMs of the
    first layer are split by units, not rows.

    Shuffled, the workers share the gather: ``data``'s gather buffers, the same for every
    worker, hold :data:`GATHER_SLOTS` batches, and each worker gathers its share of batch
    ``k + 2`` after its update of batch ``k`` (of batches 0 and 1 before a first barrier). A
    batch's rows are last read before its second barrier, which every worker has passed before
    anyone gathers into its slot again, and the two barriers of batch ``k + 1`` publish batch
    ``k + 2`` before anyone reads it: no barrier of its own."""
    rows = min(data.batch_size, data.X.shape[0])
    _check_samples(data, GATHER_SLOTS * rows, team, net)
    if data.order.shape[0] > 0 and (data.y_batch.shape[0] != data.x_batch.shape[0] or (
            data.weights.shape[0] > 0 and data.w_batch.shape[0] != data.x_batch.shape[0])):
        raise ValueError("the gather buffers' slots do not line up")
    size = net.table[0, 1] * rows
    if (units.upper_work.losses.shape[0] < rows or units.hidden.shape[0] < size or units.acts.shape[0] < size
            or units.delta.shape[0] < size or units.bounds.shape[0] != team.n_workers + 1):
        raise ValueError("work buffers are smaller than a batch, or the units' bounds do not fit the team")
    accumulated = 0.0
    bounded = False  # θ as the epoch found it: its squares summed, α·W kept at the first step
    n_batches = _n_batches(data)
    shuffled = data.order.shape[0] > 0
    fpu = flush_subnormals()
    for k in range(min(GATHER_SLOTS, n_batches) if shuffled else 0):
        _gather_share(data, k, team)
    if not _meet(team, 0):
        restore_fpu(fpu)
        return np.nan, t
    for k in range(n_batches):
        start, stop = _batch_rows(data, k)
        S = _weight_sum(data, start, stop)
        Xb, Yb, sb = _gathered_rows(data, k, start, stop)
        _units_forward(Xb, net, team, units)
        if not _meet(team, 2 * k + 1):
            restore_fpu(fpu)
            return np.nan, t
        # Only this worker changes the weights it owns: their squares are theta's of this step.
        team.squares[team.worker] = _worker_squares(net, solver.alpha, team, units.bounds, bounded)
        total = _units_loss_gradient(Xb, Yb, sb, net, solver.loss, team, units)
        if not _meet(team, 2 * k + 2):
            restore_fpu(fpu)
            return np.nan, t
        bounded = _step(net.theta, team.grads[team.worker:team.worker + 1], solver, t, net.table, S,
                        team.worker, team.n_workers, units.bounds, bounded)
        if team.worker == 0:
            penalty = _penalty(net.theta, solver.alpha, S, _in_order(team.squares))
            accumulated += (total / S + penalty) * (stop - start)
        t += 1
        if shuffled and k + GATHER_SLOTS < n_batches:
            _gather_share(data, k + GATHER_SLOTS, team)
    restore_fpu(fpu)
    return accumulated, t


@kernel
def _objective(X, Y, weights, net, work, solver):
    """The regularised mean loss over all rows, returned, and its gradient, in ``work.grad``
    (what L-BFGS minimises); ``net.theta`` is not changed."""
    fpu = flush_subnormals()
    _transpose_weights(net, work)
    loss = _mean_loss_gradient(X, Y, weights, net, work, solver)
    restore_fpu(fpu)
    return loss


@kernel
def _predict_output(X, net, work, loss, out):
    """``out = f(…)``: the output layer of every row of ``X`` (``work`` holds its rows), ``f``
    the output function of the ``loss`` code."""
    L = net.table.shape[0]
    _transpose_weights(net, work)
    A = _hidden_forward(X, net, work)
    _gemm(False, True, 1.0, A, _weights(net.theta, net.table, L - 1), 0.0, out)
    _bias_output(out, _bias(net.theta, net.table, L - 1), loss, out)


@kernel
def _rows_sums(data, net, work, loss, out):
    """The sums of one batch, the rows ``data.order`` (``data.batch_size`` of them): the summed
    gradient without the L2 term into ``work.grad`` (which may view ``out``), ``Σ s ℓ`` and ``S``
    into the last two elements of ``out``. What a rank contributes to a step of data-parallel
    training (:mod:`fastnn.distributed`)."""
    m = min(data.batch_size, data.X.shape[0])
    if work.losses.shape[0] < m or (data.order.shape[0] != 0 and data.x_batch.shape[0] < m):
        raise ValueError("work or gather buffers are smaller than the rows")
    fpu = flush_subnormals()
    Xb, Yb, sb = _sample_rows(data, 0, m)
    S = _weight_sum(data, 0, m)
    _transpose_weights(net, work)
    total = _summed_loss_gradient(Xb, Yb, sb, net, work, loss)[0]
    restore_fpu(fpu)
    P = net.theta.shape[0]
    out[P] = total
    out[P + 1] = S


@kernel
def _apply_sums(net, solver, t, sums):
    """One step from reduced sums ``[Σ gradient (θ's layout), Σ s ℓ, S]``: the ``solver``'s
    update from the summed gradient (:func:`_step`), ``t`` steps having been taken before.
    Return the batch's regularised mean loss and the new step count."""
    fpu = flush_subnormals()
    P = net.theta.shape[0]
    grad = sums[:P]
    S = np.float64(sums[P + 1])
    loss = np.float64(sums[P]) / S
    loss += _penalty_term(net, solver.alpha, S)
    _step(net.theta, grad.reshape(1, P), solver, t, net.table, S, 0, 1, NO_UNITS, False)
    restore_fpu(fpu)
    return loss, t + 1
