"""Synchronous data-parallel training over MPI: one model, the rows spread over the ranks.

Run with ``mpirun -n 4 python train.py``::

    from mpi4py import MPI
    import fastnn
    from fastnn.distributed import fit

    model = fit(fastnn.MLPClassifier(solver="sgd", batch_size=256, max_iter=20, random_state=0),
                X_local, y_local, comm=MPI.COMM_WORLD)

What it computes is a single-process ``fit`` on the *global data*, the ranks' rows
concatenated in rank order (ranks may hold different counts, or none):

- every epoch draws one permutation of all global rows as a single process draws it
  (``sklearn.utils.shuffle`` with the estimator's ``RandomState``, in ``fit``'s order of
  calls; the state is broadcast from rank 0, so every rank draws the same), and cuts it into
  global batches of ``batch_size`` rows exactly as one process does;
- each rank sums the loss and the gradient over its own rows of the batch (zeros when it
  has none) into one flat buffer ``[Σ gradient, Σ s ℓ, S]`` (θ's dtype; ``S`` the row count
  or the sample-weight sum), and ONE ``Allreduce`` per step adds the buffers up;
- every rank then forms the regularised mean (the L2 term as a single process does) and
  applies the same optimizer step, so all ranks hold the same parameters, bitwise.

The initial parameters are broadcast from rank 0, the classes are the union over ranks;
``early_stopping`` splits off the same validation rows as a single process (the split is
drawn on the global row index) and scores them over all ranks (accuracy: hits and weights
summed; R²: the sums it needs, reduced). ``n_iter_``, ``t_``, ``loss_curve_``,
``best_loss_``, the schedules and the stopping rules are the estimator's own code
(:meth:`BaseMLP._fit_stochastic`), run on every rank with the same numbers.

The result equals the single-process fit to rounding: the sums of a batch are added in
another order (per rank, then over ranks), nothing else differs.

Errors: bad input on any rank is found before training and every rank raises the same
``ValueError`` naming the rank(s). An exception in a rank's part of a step is passed on in
the step's buffer (``S`` = NaN) and every rank raises. Any other exception on some ranks
only (one that leaves the others waiting in a collective) is detected with a barrier on a
separate communicator and a deadline (``error_timeout`` seconds); then the job is ended
with ``MPI_Abort`` rather than left hanging. A killed rank ends the job through ``mpirun``.

``solver="lbfgs"``, ``warm_start=True`` and ``track_gradients=True`` are refused with a
ValueError.
"""

import sys
import time
import traceback

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _check_sample_weight, column_or_1d, validate_data

from . import _validation as check
from ._diagnostics import warn_if_failed
from ._threads import thread_limits
from .estimator import NON_FINITE, _dense
from .solvers import Problem, make_solver

__all__ = ["fit", "DistributedError"]


class DistributedError(RuntimeError):
    """Another rank failed; this rank stops with it."""


def fit(estimator, X, y, comm=None, sample_weight=None, on_epoch=None, error_timeout=30.0):
    """Fit ``estimator`` (a fastnn ``MLPClassifier`` or ``MLPRegressor`` with ``solver="sgd"``
    or ``"adam"``) on the rows of all ranks of ``comm`` (default ``MPI.COMM_WORLD``); every rank
    calls it with its own rows ``X``, ``y`` (and ``sample_weight``: given on all ranks or on
    none). Returns the estimator, fitted and the same on every rank.

    ``on_epoch`` is called on every rank after each epoch with the epoch's record of
    ``history_`` and ``"rows"``: the number of this rank's rows used in that epoch.
    ``error_timeout``: seconds a failing rank waits for the others to fail too before it
    ends the job with ``MPI_Abort`` (see the module's notes on errors).
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    session = _Session(comm, error_timeout)
    try:
        session.fit(estimator, X, y, sample_weight, on_epoch)
        session.agree(None)  # return only if every rank got here
        return estimator
    except BaseException:
        session.fail()
        raise
    finally:
        session.free()


def _local_inputs(est, X, y, sample_weight):
    """This rank's rows validated as the estimator validates them (no rows allowed): ``(X, y,
    sample_weight, facts)``, ``facts`` what the ranks must agree on."""
    hidden = est._check_params()
    if est.solver == "lbfgs":
        raise ValueError("fastnn.distributed.fit trains with the stochastic solvers only (solver='sgd' or "
                         "'adam'); solver='lbfgs' is not supported")
    if est.warm_start:
        raise ValueError("fastnn.distributed.fit does not support warm_start=True")
    if est.track_gradients:
        raise ValueError("fastnn.distributed.fit does not support track_gradients=True")
    check.reject_text(X)
    dtype = est._compute_dtype(getattr(X, "dtype", None))
    classifier = is_classifier(est)
    if len(y) == 0:
        X = validate_data(est, X, reset=True, accept_sparse=["csr", "csc"], dtype=dtype, ensure_min_samples=0)
        y = np.asarray(y)
    else:
        X, y = validate_data(est, X, y, reset=True, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=not classifier, dtype=dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
    if X.shape[0] != len(y):
        raise ValueError(f"X has {X.shape[0]} rows and y {len(y)}")
    X = np.ascontiguousarray(_dense(X))
    if sample_weight is not None and X.shape[0] == 0:
        if len(sample_weight):
            raise ValueError(f"sample_weight has {len(sample_weight)} values for 0 rows")
        sample_weight = np.empty(0, X.dtype)
    elif sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
    facts = {"n": X.shape[0], "n_features": X.shape[1], "dtype": np.dtype(X.dtype).str, "hidden": hidden,
             "weighted": sample_weight is not None, "y_ndim": y.ndim if len(y) else None,
             "y_cols": (y.shape[1] if y.ndim == 2 else 1) if len(y) else None,
             "params": repr(sorted((k, v) for k, v in est.get_params().items() if k != "random_state"))}
    if classifier and len(y):
        facts["y_type"] = type_of_target(y)
        facts["labels"] = np.unique(y, axis=0) if y.ndim == 2 else np.unique(y)
    return X, y, sample_weight, facts


def _n_outputs(est):
    """The output units of a classifier whose label binarizer is fitted."""
    lb = est._label_binarizer
    return 1 if len(lb.classes_) == 2 and not lb.y_type_.startswith("multilabel") else len(lb.classes_)


class _Session:
    """One distributed fit: its communicators, the rank's rows and the agreement between ranks."""

    def __init__(self, comm, error_timeout):
        self.comm = comm.Dup()  # the training's messages never meet the user's
        self.err_comm = comm.Dup()  # the barrier of a failing rank meets nothing else
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.error_timeout = float(error_timeout)
        self.solver = None

    def free(self):
        for c in (self.comm, self.err_comm):
            c.Free()

    # ------------------------------------------------------------------ errors

    def agree(self, error):
        """Every rank passes its exception (or None); every rank raises if any rank had one."""
        errors = self.comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if not failed:
            return
        message = "; ".join(f"rank {r}: {e}" for r, e in failed)
        if error is not None:
            raise error  # this rank's own exception; the others name it
        values = all(e.startswith(("ValueError", "TypeError")) for _, e in failed)
        kind = ValueError if values else DistributedError
        raise kind(f"distributed fit failed on {message}")

    def fail(self):
        """After an exception: if every rank fails (they meet at a barrier of their own), each
        raises; a rank whose peers stay busy (waiting in a collective) past ``error_timeout``
        seconds ends the job."""
        if self.size == 1:
            return
        request = self.err_comm.Ibarrier()
        deadline = time.monotonic() + self.error_timeout
        while not request.Test():
            if time.monotonic() > deadline:
                traceback.print_exc()
                print(f"fastnn.distributed: rank {self.rank} failed while the other ranks went on; "
                      f"aborting the job (MPI_Abort)", file=sys.stderr, flush=True)
                self.comm.Abort(1)
            time.sleep(0.005)

    # ------------------------------------------------------------------ fit

    def fit(self, est, X, y, sample_weight, on_epoch):
        error = None
        try:
            X, y, sample_weight, facts = _local_inputs(est, X, y, sample_weight)
        except Exception as exc:  # agreed below: every rank raises
            error, facts = exc, None
        self.agree(error)
        all_facts = self.comm.allgather(facts)
        self.agree(self._check_facts(all_facts))
        first = next(f for f in all_facts if f["n"])
        counts = [f["n"] for f in all_facts]
        self.counts, self.lo = counts, sum(counts[:self.rank])
        n_outputs = first["y_cols"]
        error = None
        try:
            if is_classifier(est):
                self._classes(est, all_facts)
                Y = est._targets(y, X.dtype) if len(y) else np.empty((0, _n_outputs(est)), X.dtype)
            else:
                Y = np.asarray(y, X.dtype).reshape(len(y), n_outputs)
        except Exception as exc:
            error = exc
        self.agree(error)
        Y = np.ascontiguousarray(Y, X.dtype)
        # The estimator's own start (BaseMLP._fit), the random state and the weights made the same.
        random_state = check_random_state(est.random_state)
        random_state.set_state(self.comm.bcast(random_state.get_state() if self.rank == 0 else None, root=0))
        est._random_state = random_state
        sizes = [X.shape[1], *first["hidden"], Y.shape[1]]
        est._initialize(Y, sizes, X.dtype)
        theta, layout = est._pack_parameters(X.dtype, view=True)
        self.comm.Bcast(theta, root=0)
        problem = Problem(X, Y, sample_weight, est._loss_name(), float(est.alpha), layout, theta,
                          est.activation)
        if est.engine == "fast":
            from .kernels import blas  # noqa: F401  (its OpenBLAS, for thread_limits to see)

        def record(entry):
            if on_epoch is not None:
                on_epoch(dict(entry, rows=self.solver.last_rows))

        with thread_limits(est.n_threads):
            est._fit_stochastic(problem, False, record, parallel=self)
        if not all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_):
            raise ValueError(NON_FINITE)
        warn_if_failed(est, X, Y)
        return est

    def _check_facts(self, facts):
        first = next((f for f in facts if f["n"]), None)
        if first is None:
            return ValueError("no rank holds any rows")
        for r, f in enumerate(facts):
            keys = ("n_features", "dtype", "hidden", "weighted", "params")
            keys += ("y_ndim", "y_cols") if f["n"] else ()
            for key in keys:
                if f[key] != first[key]:
                    return ValueError(f"rank {r} has {key}={f[key]!r} where another rank has {first[key]!r}; "
                                      f"every rank must have the same")
        return None

    def _classes(self, est, facts):
        """The union of the ranks' labels, as a single process's LabelBinarizer finds them."""
        held = [f for f in facts if f["n"]]
        types = {f["y_type"] for f in held}
        if any(t.startswith("multilabel") for t in types):
            labels = np.vstack([f["labels"] for f in held])
        else:
            labels = np.unique(np.concatenate([f["labels"] for f in held]))
        est._label_binarizer = LabelBinarizer().fit(labels)
        est.classes_ = est._label_binarizer.classes_
        if len(est.classes_) < 2 and not est._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError(f"y must hold at least 2 classes; got 1 class: {list(est.classes_)}")

    # ------------------------------------------------------------------ the hook of _fit_stochastic

    def prepare(self, est, problem):
        """``(solver, n, validation)`` for :meth:`BaseMLP._fit_stochastic`: the solver of the global
        rows, their count, the validation score over all ranks (or None)."""
        N = sum(self.counts)
        train_rows, validation = np.arange(N), None
        if est.early_stopping:
            stratify = None
            if is_classifier(est) and est.n_outputs_ == 1:
                stratify = self._allgather_rows(problem.Y.astype(bool))
            train_rows, val_rows = train_test_split(np.arange(N), random_state=est._random_state,
                                                    test_size=est.validation_fraction, stratify=stratify)
            if val_rows.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the "
                                 "size of your dataset.")
            validation = self._scorer(est, problem, self._local(val_rows))
        n = train_rows.shape[0]
        batch_size = est._batch_size(n)
        local = make_solver(est.engine, problem, max(1, min(batch_size, problem.X.shape[0])))
        self.solver = _GlobalSolver(self, local, train_rows, batch_size)
        return self.solver, n, validation

    def _local(self, rows):
        """The local indices of the global rows ``rows`` that this rank holds, in their order."""
        hi = self.lo + self.counts[self.rank]
        mine = rows[(rows >= self.lo) & (rows < hi)]
        return mine - self.lo

    def _allgather_rows(self, A):
        """The rows of ``A`` of all ranks, concatenated in rank order."""
        counts = [c * A.shape[1] for c in self.counts]
        out = np.empty((sum(self.counts), A.shape[1]), A.dtype)
        self.comm.Allgatherv(np.ascontiguousarray(A), [out, counts])
        return out

    def _scorer(self, est, problem, rows):
        """The validation score of the rows ``rows`` of every rank: accuracy (hits and weights
        summed) or R² (the sums it needs, in two reductions)."""
        from mpi4py import MPI

        X, Y = problem.X[rows], problem.Y[rows]
        w = None if problem.sample_weight is None else problem.sample_weight[rows].astype(np.float64)

        def allreduce(values):
            values = np.asarray(values, np.float64)
            self.comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
            return values

        def accuracy():
            hits = 0.0
            if len(rows):
                y = est._decode(Y.ravel() if est.n_outputs_ == 1 else Y)
                prediction = est._decode(est._output(X).ravel() if est.n_outputs_ == 1 else est._output(X))
                hit = prediction == y
                hit = hit.all(axis=1) if hit.ndim == 2 else hit
                hits = hit.sum() if w is None else (hit * w).sum()
            total = allreduce([hits, len(rows) if w is None else (w.sum() if len(rows) else 0.0)])
            return float(total[0] / total[1])

        def r2():
            k = Y.shape[1]
            weights = np.ones((len(rows), 1)) if w is None else w[:, None]
            y = Y.astype(np.float64)
            first = allreduce(np.concatenate([[weights.sum()], (weights * y).sum(axis=0)]))
            mean = first[1:] / first[0]
            prediction = est._output(X).astype(np.float64) if len(rows) else np.empty((0, k))
            bad = 0.0 if np.isfinite(prediction).all() else 1.0
            sums = allreduce(np.concatenate([(weights * (y - mean) ** 2).sum(axis=0),
                                             (weights * (y - prediction) ** 2).sum(axis=0), [bad]]))
            if sums[-1]:
                return np.nan
            denominator, numerator = sums[:k], sums[k:2 * k]
            scores = np.ones(k)
            valid = denominator != 0
            scores[valid] = 1 - numerator[valid] / denominator[valid]
            scores[~valid & (numerator != 0)] = 0.0
            return float(np.average(scores))

        return accuracy if is_classifier(est) else r2


class _GlobalSolver:
    """The engine interface :meth:`BaseMLP._run_epoch` uses (``p``, ``epoch``, ``will_compile``),
    over the global rows: each step sums this rank's rows of the global batch, one Allreduce,
    the same step everywhere."""

    def __init__(self, session, local, train_rows, batch_size):
        self.session, self.local, self.p = session, local, local.p
        self.train_rows, self.batch_size = train_rows, batch_size
        self.buffer = np.empty(local.p.theta.shape[0] + 2, local.p.theta.dtype)
        self.last_rows = 0

    @property
    def norms(self):
        return np.zeros(0)

    def will_compile(self):
        return self.local.will_compile()

    def epoch(self, order, optimizer):
        from mpi4py import MPI

        session, buffer, n = self.session, self.buffer, self.train_rows.shape[0]
        rows = self.train_rows if order is None else self.train_rows[order]
        hi = session.lo + session.counts[session.rank]
        positions = np.flatnonzero((rows >= session.lo) & (rows < hi))
        local_rows = rows[positions] - session.lo
        starts = np.arange(0, n, self.batch_size)
        cuts = np.searchsorted(positions, np.append(starts, n))
        accumulated, used = 0.0, 0
        for k, start in enumerate(starts):
            mine = local_rows[cuts[k]:cuts[k + 1]]
            used += mine.shape[0]
            error = None
            try:
                self.local.batch_sums(mine, buffer)
            except Exception as exc:  # passed on to every rank in the buffer: S = NaN
                error = exc
                buffer[:] = 0
                buffer[-1] = np.nan
            session.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            if np.isnan(buffer[-1]):
                if error is not None:
                    raise error
                raise DistributedError(f"another rank failed in step {optimizer.t + 1}")
            loss = self.local.apply(buffer, optimizer)
            accumulated += loss * (min(start + self.batch_size, n) - start)
        self.last_rows = used
        return accumulated
