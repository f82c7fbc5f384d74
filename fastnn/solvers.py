"""The training problem and its two engines for scikit-learn's solvers.

A :class:`Problem` is the data of a fit in the ``(samples, features)`` layout,
its targets ``Y`` (one column per output unit), optional sample weights, the
output layer's loss, the L2 factor ``alpha`` and the network (its
:class:`~fastnn.layout.Layout`, flat parameters ``theta`` and hidden activation).
An :class:`Optimizer` is an update rule with its flat state (velocity, moments),
kept between epochs and between ``partial_fit`` calls. Two engines offer the same
two operations:

- ``epoch(order, optimizer)``: one epoch of the stochastic solver, in mini-batches
  of ``batch_size`` rows in ``order``; returns scikit-learn's accumulated loss,
  ``Σ_batches m · loss``;
- ``objective(theta)``: the regularised mean loss over all rows and its flat
  gradient, for L-BFGS.

:class:`ReferenceSolver` composes :mod:`fastnn.losses` and :mod:`fastnn.optimizers`
(NumPy, batch by batch); :class:`FastSolver` runs the epoch in one compiled call
(:mod:`fastnn.kernels.solver`).
"""

from typing import NamedTuple

import numpy as np

from . import losses
from . import optimizers as opt
from ._aligned import aligned_empty, aligned_rows, read_only

# Worker threads share a batch's rows above this many rows, the first hidden layer's units
# at or below it (FastSolver).
MAX_UNIT_SHARING_ROWS = 64


class Problem(NamedTuple):
    """What a fit trains: ``X`` (n × n_features, C order), ``Y`` (n × n_outputs, X's dtype),
    ``sample_weight`` (n, X's dtype, or None), ``loss`` (a name of
    :data:`fastnn.losses.LOSSES`), ``alpha``, the ``layout``, the flat ``theta``
    (updated in place) and the hidden ``activation``."""

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray | None
    loss: str
    alpha: float
    layout: object
    theta: np.ndarray
    activation: str


class Optimizer:
    """An update rule of :data:`fastnn.optimizers.RULES` ("momentum", "nesterov" or "adam")
    with its state, flat in θ's layout, its current ``learning_rate`` (SGD's, which the
    schedules change) and the count ``t`` of steps taken (Adam's bias correction uses it)."""

    def __init__(self, rule, theta, learning_rate, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.rule = rule
        self.learning_rate = float(learning_rate)
        self.learning_rate_init = float(learning_rate)
        self.momentum, self.beta_1, self.beta_2, self.epsilon = momentum, beta_1, beta_2, epsilon
        self.state = opt.init_state(rule, theta.shape[0], theta.dtype)
        self.t = 0

    @property
    def hyper(self):
        return tuple(getattr(self, name) for name in opt.RULES[self.rule].hyper)

    def step(self, theta, grad):
        """One reference update of ``theta`` from the mean gradient ``grad``."""
        self.t += 1
        if self.rule == "adam":
            rate = opt.adam_learning_rate(self.learning_rate_init, self.beta_1, self.beta_2, self.t)
        else:
            rate = self.learning_rate
        opt.RULES[self.rule].update(theta, grad, *self.state, rate, *self.hyper)


def batches(n, batch_size, order):
    """The row selections of an epoch: consecutive slices of ``order`` (None: as stored)."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


class ReferenceSolver:
    """The solvers on the reference math, batch by batch, in the ``(features, samples)`` layout.

    With ``track_gradients``, :attr:`norms` holds after an epoch each layer's mean over
    batches of ``‖dW[l]‖``, the norm of the batch-mean loss gradient (no L2 term)."""

    blas_threads = None  # BLAS as the fit sets it (FastSolver.blas_threads)

    def __init__(self, problem, batch_size, track_gradients=False):
        self.p = problem
        self.batch_size = batch_size
        self.XT, self.YT = np.ascontiguousarray(problem.X.T), np.ascontiguousarray(problem.Y.T)
        self.norms = np.zeros(problem.layout.n_layers if track_gradients else 0)

    def _loss_gradient(self, theta, rows):
        s = None if self.p.sample_weight is None else self.p.sample_weight[rows]
        layout = self.p.layout
        sums = losses.batch_sums(theta, layout, self.p.activation, self.p.loss, self.XT[:, rows],
                                 self.YT[:, rows], s)
        if self.norms.shape[0]:
            m = self.XT[:, rows].shape[1]
            self.norms += [np.linalg.norm(dW.astype(np.float64)) / m for dW in layout.weights(sums.grad)]
        return losses.regularised_mean(theta, layout, sums, self.p.alpha)

    def epoch(self, order, optimizer):
        accumulated = 0.0
        self.norms[:] = 0
        n_batches = 0
        for rows in batches(self.p.X.shape[0], self.batch_size, order):
            loss, grad = self._loss_gradient(self.p.theta, rows)
            accumulated += loss * self.XT[:, rows].shape[1]
            optimizer.step(self.p.theta, grad)
            n_batches += 1
        self.norms /= n_batches
        return accumulated

    def objective(self, theta):
        return losses.loss_and_gradient(np.asarray(theta, self.p.theta.dtype), self.p.layout,
                                        self.p.activation, self.p.loss, self.XT, self.YT, self.p.alpha,
                                        self.p.sample_weight)

    def will_compile(self):
        return False

    # The two halves of a step, for data-parallel training (fastnn.distributed): the sums of a
    # rank's rows, reduced over ranks, then the same step on every rank.

    def batch_sums(self, rows, out=None):
        """The sums of the rows ``rows`` (indices into ``X``, any number, none included) in one flat
        buffer ``out`` (θ's size + 2, θ's dtype; made if None), returned: the summed gradient
        without the L2 term (θ's layout), then ``Σ s ℓ``, then ``S`` (the row count or the weight
        sum). Sums of disjoint row sets add up element by element."""
        P = self.p.theta.shape[0]
        out = np.empty(P + 2, self.p.theta.dtype) if out is None else out
        if len(rows) == 0:
            out[:] = 0
            return out
        s = None if self.p.sample_weight is None else self.p.sample_weight[rows]
        sums = losses.batch_sums(self.p.theta, self.p.layout, self.p.activation, self.p.loss,
                                 self.XT[:, rows], self.YT[:, rows], s)
        out[:P], out[P], out[P + 1] = sums.grad, sums.loss, sums.weight
        return out

    def apply(self, sums, optimizer):
        """One step of ``optimizer`` from a (reduced) :meth:`batch_sums` buffer: the regularised
        mean as :func:`fastnn.losses.regularised_mean` forms it, then the update; return the
        batch's regularised mean loss. ``sums`` may be overwritten."""
        P = self.p.theta.shape[0]
        loss, grad = losses.regularised_mean(self.p.theta, self.p.layout,
                                             losses.Sums(sums[P], sums[:P], float(sums[P + 1])), self.p.alpha)
        optimizer.step(self.p.theta, grad)
        return loss


class FastSolver:
    """The solvers on the compiled kernels: an epoch is one call of
    :func:`fastnn.kernels.solver._solver_epoch`, or with ``n_workers > 1`` one call per
    worker thread (:class:`fastnn.kernels.solver.Team`), each with one-thread BLAS. The
    workers take the pieces of every batch's rows as they come free (the cut, in
    pieces of :func:`fastnn.rows.default_piece_rows` rows, depends on the batch's and θ's sizes alone; one
    worker takes each batch whole), the pieces' gradients added in piece order: any number
    of workers above one gives the same bits, one worker other bits within the whole-run
    bound. Or, with ``share_units`` (None: batches of at most
    :data:`MAX_UNIT_SHARING_ROWS` rows) their shares of the first hidden layer's units
    (:func:`fastnn.kernels.solver._unit_solver_epoch`); then each its share of the update.
    Repeated runs are bitwise equal. A batch of every row is taken as stored, whatever the
    order (:func:`fastnn.fast.full_batch_as_stored`). ``piece_rows`` other than None replaces
    :func:`fastnn.rows.default_piece_rows` and its cap by bytes (benchmarks:
    :func:`fastnn.rows.pieces_of`)."""

    def __init__(self, problem, batch_size, track_gradients=False, n_workers=1, share_units=None,
                 piece_rows=None):
        from threadpoolctl import ThreadpoolController

        from .kernels import blas  # noqa: F401  (loaded before the controller below, which sees only loaded BLAS)
        from .kernels._scalar import ACTIVATION_CODES
        from .kernels.network import Net, make_work
        from .kernels.outputs import LOSS_CODES
        from .rows import pieces_of

        self.p = problem._replace(X=read_only(problem.X), Y=read_only(problem.Y))
        self.batch_size = batch_size
        X = problem.X
        self.rows = min(batch_size, X.shape[0])
        self.n_workers = n_workers
        hidden = problem.layout.sizes[1] if problem.layout.n_layers > 1 else 0
        if share_units and not 1 < n_workers <= hidden:
            raise ValueError(f"{n_workers} workers cannot share the {hidden} units of a first hidden layer")
        if share_units is None:
            share_units = 1 < n_workers <= hidden and self.rows <= MAX_UNIT_SHARING_ROWS
        self.share_units = share_units
        # One worker (or workers sharing units) takes a batch as one piece: the serial epoch.
        self.piece_rows, self.max_pieces, piece = (
            (self.rows, 1, self.rows) if n_workers == 1 or share_units
            else pieces_of(self.rows, problem.layout.size, X.dtype.itemsize, piece_rows))
        self.loss_code = LOSS_CODES[problem.loss]
        self.net = Net(problem.theta, problem.layout.table, ACTIVATION_CODES[problem.activation])
        self.grads = aligned_rows(max(n_workers, self.max_pieces), problem.layout.size, X.dtype)
        # Workers sharing units work in their Units instead; worker 0's Work still holds the norms.
        self.works = [make_work(problem.layout.table, piece, X.dtype, track_norms=track_gradients,
                                step_rows=self.rows)._replace(grad=self.grads[w])
                      for w in range(1 if share_units else n_workers)]
        self.work = self.works[0]
        self.losses = np.zeros(self.max_pieces)
        self.squares = np.zeros(n_workers)
        self.sync = np.zeros(3, np.int64)
        self.stall_gather = [0] * n_workers  # tests only (Team)
        self.weights = read_only(np.empty(0, X.dtype) if problem.sample_weight is None
                                 else np.ascontiguousarray(problem.sample_weight, X.dtype))
        self._gathers = {}  # by user: a worker's number, or "sums"
        self._full_work = None
        self._blas = ThreadpoolController() if n_workers > 1 else None
        # What else runs between epochs (early stopping's validation score) should call BLAS with
        # as many threads as an epoch: OpenBLAS's threads spin for a while after a call that used
        # them, and two workers then share their cores with them (bench/validation_threads.py:
        # a median epoch of 141 ms against 70 ms, 784-128-10 at batch 200).
        self.blas_threads = 1 if n_workers > 1 else None
        self.units = self._units() if self.share_units else None

    def _units(self):
        """Each worker's :class:`~fastnn.kernels.solver.Units`: the first hidden layer's units in
        near-equal blocks, the layers above as views of θ and of the worker's gradient."""
        from .kernels.network import Net, make_work
        from .kernels.solver import Units

        layout, dtype, b = self.p.layout, self.p.X.dtype, self.rows
        H = layout.sizes[1]
        upper, start = layout.tail(1)
        bounds = np.array([H * c // self.n_workers for c in range(self.n_workers + 1)], np.int64)
        hidden = aligned_empty(H * b, dtype)
        return [Units(bounds, hidden, aligned_empty(b * H, dtype), aligned_empty(H * b, dtype),
                      Net(self.p.theta[start:], upper.table, self.net.code),
                      make_work(upper.table, b, dtype)._replace(grad=self.grads[w, start:]))
                for w in range(self.n_workers)]

    def _samples(self, order, user=0, rows=None):
        """:class:`~fastnn.kernels.solver.Samples` in ``order`` (the rows' order, or None: as
        stored) with gather buffers of their own for ``user`` (worker ``user``'s share of a batch,
        or ``rows`` rows), made on first use."""
        from .kernels.solver import Samples

        X, Y = self.p.X, self.p.Y
        if order is None:
            # Empty buffers of their own, never views of the data: the kernel writes into them
            # (the data are read-only, so a view of them is too, and the kernel would not compile).
            order = np.empty(0, np.int64)
            gather = (np.empty((0, X.shape[1]), X.dtype), np.empty((0, Y.shape[1]), Y.dtype),
                      np.empty(0, self.weights.dtype))
        else:
            order = np.ascontiguousarray(order, dtype=np.int64)
            if user not in self._gathers:
                rows = self.works[user].losses.shape[0] if rows is None else rows
                self._gathers[user] = (aligned_empty((rows, X.shape[1]), X.dtype),
                                       np.empty((rows, Y.shape[1]), Y.dtype), np.empty(rows, X.dtype))
            gather = self._gathers[user]
        return Samples(X, Y, self.weights, order, self.batch_size, *gather)

    def _team(self, worker):
        from .kernels.solver import Team

        return Team(worker, self.n_workers, self.piece_rows, self.max_pieces, self.grads, self.losses,
                    self.squares, self.sync, self.stall_gather[worker])

    def _solver(self, optimizer=None):
        """The kernels' :class:`~fastnn.kernels.solver.Solver`; without an optimizer, for the
        objective alone."""
        from .kernels.solver import ADAM, MOMENTUM, Solver

        if optimizer is None:
            optimizer = Optimizer("sgd", self.p.theta[:0], 0.0)
        rule = {"adam": ADAM}.get(optimizer.rule, MOMENTUM)
        state = optimizer.state + (np.empty(0, self.p.theta.dtype),) * (2 - len(optimizer.state))
        return Solver(self.loss_code, float(self.p.alpha), rule, float(optimizer.learning_rate),
                      float(optimizer.momentum), optimizer.rule == "nesterov", float(optimizer.beta_1),
                      float(optimizer.beta_2), float(optimizer.epsilon), *state)

    @property
    def norms(self):
        """As :attr:`ReferenceSolver.norms`."""
        return self.work.norms / -(-self.p.X.shape[0] // self.batch_size)

    def _epoch_call(self, order, optimizer, worker=0):
        from .kernels.solver import GATHER_SLOTS, _solver_epoch, _unit_solver_epoch

        if self.share_units:  # the workers gather into one set of buffers, a slot a batch
            rows = GATHER_SLOTS * self.rows
            return _unit_solver_epoch, (self._samples(order, "units", rows), self.net,
                                        self._solver(optimizer), optimizer.t, self._team(worker),
                                        self.units[worker])
        return _solver_epoch, (self._samples(order, worker), self.net, self.works[worker],
                               self._solver(optimizer), optimizer.t, self._team(worker))

    def epoch(self, order, optimizer):
        from .fast import full_batch_as_stored

        # The kernels index the state by θ's layout without bounds checks: a wrong size would
        # write past its end. Plain SGD has no state; the estimators run it as momentum 0.
        if optimizer.rule not in ("momentum", "nesterov", "adam"):
            raise ValueError(f"the fast solver runs 'momentum', 'nesterov' or 'adam', not {optimizer.rule!r}")
        if any(state.shape != self.p.theta.shape for state in optimizer.state):
            raise ValueError("the optimizer's state does not have the parameters' size")
        self.work.norms[:] = 0
        order = full_batch_as_stored(order, self.rows, self.p.X.shape[0])
        self.sync[:] = 0  # the barriers' and the pieces' counters start each epoch at 0
        if self.n_workers == 1:
            kernel, args = self._epoch_call(order, optimizer)
            accumulated, optimizer.t = kernel(*args)
            return accumulated
        return self._team_epoch(order, optimizer)

    def _team_epoch(self, order, optimizer):
        """Worker 0 in this thread, the others in their own; BLAS one thread each."""
        from ._threads import run_workers

        calls = [self._epoch_call(order, optimizer, w) for w in range(self.n_workers)]
        with self._blas.limit(limits=self.blas_threads, user_api="blas"):
            results = run_workers(self.n_workers, lambda w: calls[w][0](*calls[w][1]), self.sync)
        accumulated, optimizer.t = results[0]
        return accumulated

    def will_compile(self):
        """Whether the first epoch compiles the epoch kernel (a cold cache)."""
        from .fast import will_compile

        # Rows as stored: the arguments' types are those of a shuffled epoch, and nothing is allocated.
        kernel, args = self._epoch_call(None, Optimizer("adam", self.p.theta[:1], 0.1))
        return will_compile(kernel, *args)

    def objective(self, theta):
        from .kernels.network import make_work
        from .kernels.solver import _objective

        theta = np.ascontiguousarray(theta, dtype=self.p.theta.dtype)
        if self._full_work is None:
            self._full_work = make_work(self.p.layout.table, self.p.X.shape[0], self.p.X.dtype,
                                        grad_size=self.p.layout.size)
        loss = _objective(self.p.X, self.p.Y, self.weights, self.net._replace(theta=theta), self._full_work,
                          self._solver())
        return float(loss), self._full_work.grad.copy()

    def batch_sums(self, rows, out=None):
        """As :meth:`ReferenceSolver.batch_sums`, on the kernels (one call, the rows gathered as
        an epoch gathers a batch; at most ``batch_size`` rows)."""
        from .kernels.solver import _rows_sums

        P = self.p.theta.shape[0]
        out = np.empty(P + 2, self.p.theta.dtype) if out is None else out
        if len(rows) == 0:
            out[:] = 0
            return out
        if getattr(self, "_sums_out", None) is not out:
            from .kernels.network import make_work

            work = make_work(self.p.layout.table, self.rows, self.p.X.dtype)
            self._sums_out, self._sums_work = out, work._replace(grad=out[:P])
        data = self._samples(rows, "sums", self.rows)._replace(batch_size=len(rows))
        _rows_sums(data, self.net, self._sums_work, self.loss_code, out)
        return out

    def apply(self, sums, optimizer):
        """As :meth:`ReferenceSolver.apply`, in one call of the kernels (the update reads the
        regularised mean from the summed gradient in ``sums``)."""
        from .kernels.solver import _apply_sums

        loss, optimizer.t = _apply_sums(self.net, self._solver(optimizer), optimizer.t, sums)
        return float(loss)


def make_solver(engine, problem, batch_size, track_gradients=False, n_workers=1, share_units=None,
                piece_rows=None):
    """The engine named ``engine`` ("reference" or "fast") for ``problem``; the fast one with
    ``n_workers`` worker threads sharing rows or units (see :class:`FastSolver`)."""
    if engine == "reference":
        return ReferenceSolver(problem, batch_size, track_gradients)
    return FastSolver(problem, batch_size, track_gradients, n_workers, share_units, piece_rows)


def predict_output(layout, theta, activation, loss, X):
    """The output layer ``f(…)`` for the rows of ``X`` (n × n_features) on the fast kernels."""
    from .kernels._scalar import ACTIVATION_CODES
    from .kernels.network import Net, make_work
    from .kernels.outputs import LOSS_CODES
    from .kernels.solver import _predict_output

    out = np.empty((X.shape[0], layout.sizes[-1]), X.dtype)
    net = Net(theta, layout.table, ACTIVATION_CODES[activation])
    _predict_output(read_only(X), net, make_work(layout.table, X.shape[0], X.dtype), LOSS_CODES[loss], out)
    return out


def predict_output_reference(layout, theta, activation, loss, X):
    """:func:`predict_output` on the reference math."""
    from . import reference as ref

    output = losses.LOSSES[loss].output
    _, As = ref.forward(layout.weights(theta), layout.biases(theta), activation, np.ascontiguousarray(X.T),
                        output)
    return np.ascontiguousarray(As[-1].T)
