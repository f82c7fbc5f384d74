"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's multilayer perceptrons, on either engine.

The parameters, defaults, attributes and training procedure are scikit-learn's
(``sklearn.neural_network``), written afresh on fastnn's flat parameter vector:
weight initialisation from a ``RandomState`` (Glorot-uniform), one shuffle of the
sample indices per epoch, mini-batches of ``batch_size`` rows, the L2 term
``alpha``, SGD with momentum or Nesterov's momentum and its ``invscaling`` and
``adaptive`` schedules, Adam, L-BFGS through ``scipy.optimize.minimize``,
stopping on ``tol`` / ``n_iter_no_change`` or on a validation score with
``early_stopping``, sample weights. :class:`BaseMLP` holds all of it;
the two estimators say only what their targets and output layer are.
"""

import logging
import numbers
import time
import warnings
from importlib import import_module

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import _persist, losses
from . import _validation as check
from . import optimizers as opt
from ._diagnostics import warn_if_failed
from ._threads import default_blas_threads, thread_limits
from ._trainer import TrainingDivergedError
from .layout import Layout
from .reference import INIT_GAINS
from .solvers import Optimizer, Problem, make_solver, predict_output, predict_output_reference

logger = logging.getLogger("fastnn")
# What compiling took on a cold cache: 12.0-25.3 s (float32) and 13.1-24.5 s (float64) for the
# default model's first fit on a 2-core Intel Xeon (python bench/compile_time.py, 2026-11-26: the
# day's runs, the slowest late in the evening).
COMPILE_ESTIMATE = "about 12-25 s on a 2-core machine"

# predict goes through the rows in blocks of this many rows, fewer if a block's activations would
# take more than PREDICT_BLOCK_BYTES. The block depends on the model only, never on the number of
# rows, so that predicting pieces of X that start at multiples of it gives bitwise the same rows as
# predicting X at once (BLAS may round a row differently with other rows around it).
PREDICT_BLOCK_ROWS = 1024
PREDICT_BLOCK_BYTES = 64 * 2**20

STOCHASTIC_SOLVERS = ("sgd", "adam")
# The floats a user sets, which must be finite: scikit-learn 1.9's intervals refuse inf and NaN
# themselves; this check keeps the promise with the older versions fastnn installs beside.
FLOAT_PARAMETERS = ("alpha", "learning_rate_init", "power_t", "tol", "momentum", "validation_fraction",
                    "beta_1", "beta_2", "epsilon")
# scikit-learn's output function of each loss, by its out_activation_ name.
OUTPUT_OF_LOSS = {"log_loss": "softmax", "binary_log_loss": "logistic", "squared_error": "identity",
                  "poisson": "exp"}


NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
              "need to be preprocessed.")


def predict_block_rows(row_bytes):
    """The rows ``predict`` computes at a time for a model whose activations take ``row_bytes``
    per row: ``PREDICT_BLOCK_ROWS``, fewer (at least one) if they would exceed ``PREDICT_BLOCK_BYTES``."""
    return max(1, min(PREDICT_BLOCK_ROWS, PREDICT_BLOCK_BYTES // row_bytes))


def _row_blocks(n_rows, block):
    """Slices of ``block`` rows (the last may be shorter) that tile ``range(n_rows)`` from row 0."""
    return [slice(start, min(start + block, n_rows)) for start in range(0, n_rows, block)]


def _dense(X):
    """The engines take dense rows: a sparse matrix is made dense (memory ``n × n_features``)."""
    return X.toarray() if scipy.sparse.issparse(X) else X


def _store_arguments(model, arguments):
    """Keep every constructor argument as the attribute of its name (scikit-learn's rule for
    ``__init__``: it stores, nothing else)."""
    for name, value in arguments.items():
        if name not in ("self", "__class__"):
            setattr(model, name, value)


class BaseMLP(BaseEstimator):
    """What both estimators share: parameters, validation, initialisation, the solvers, prediction.

    Subclasses set :meth:`_validate_input` (features and targets), :meth:`_score_rows`
    and the loss of their output layer (:meth:`_loss_name`).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu", "leaky_relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(opt.SCHEDULES))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "engine": [StrOptions({"fast", "reference"})],
        "dtype": "no_validation",
        "n_threads": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "init": [None, StrOptions(set(INIT_GAINS))],
        "track_gradients": ["boolean"],
    }

    # ------------------------------------------------------------------ validation

    def _check_params(self):
        """scikit-learn's parameter checks, then finiteness of the floats and the dtype."""
        self._validate_params()
        for name in FLOAT_PARAMETERS:
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number; got {getattr(self, name)!r}")
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _compute_dtype(self, X_dtype):
        """The dtype of the weights and of the arithmetic: ``dtype`` if given, else X's as
        scikit-learn keeps it (float32 stays float32, anything else becomes float64)."""
        if self.dtype is None:
            return np.float32 if X_dtype == np.float32 else np.float64
        return np.dtype(check.dtype_name(self.dtype)).type

    def _validate_Xy(self, X, y, reset, **checks):
        """``X`` in the computation dtype and ``y`` (a single column made 1-D), checked as
        scikit-learn checks them; ``checks`` go to ``validate_data``."""
        check.reject_text(X)
        dtype = self._compute_dtype(getattr(X, "dtype", None))
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=dtype, **checks)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _check_solver(self):
        """partial_fit needs a stochastic solver (AttributeError otherwise, as scikit-learn)."""
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} "
                                 "is not stochastic.")
        return True

    def _validate_X(self, X, reset):
        check.reject_text(X)
        dtype = self._compute_dtype(getattr(X, "dtype", None))
        return validate_data(self, X, reset=reset, accept_sparse=["csr", "csc"], dtype=dtype)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, sample_weight=None, on_epoch=None):
        """Fit the model to ``X`` and the targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Sparse input is made dense for training.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
        on_epoch : callable, default=None
            fastnn's extension: called after each epoch of a stochastic solver with that
            epoch's record of ``history_`` (a dict).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False, on_epoch=on_epoch)

    def _fit(self, X, y, sample_weight, incremental, on_epoch=None):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        X = np.ascontiguousarray(_dense(X))
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        sizes = [X.shape[1], *hidden, Y.shape[1]]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, sizes, X.dtype)
        theta, layout = self._pack_parameters(X.dtype, view=True)
        problem = Problem(X, np.ascontiguousarray(Y, X.dtype), sample_weight, self._loss_name(),
                          float(self.alpha), layout, theta, self.activation)
        if self.engine == "fast":
            import_module(".kernels.blas", __package__)  # its OpenBLAS, for thread_limits to see
        with thread_limits(self.n_threads):
            if self.solver == "lbfgs":
                self._fit_lbfgs(problem)
            else:
                self._fit_stochastic(problem, incremental, on_epoch)
        if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
            raise ValueError(NON_FINITE)
        warn_if_failed(self, X, Y, ended=not incremental)
        return self

    def _initialize(self, Y, sizes, dtype):
        """Fresh state for a first fit: the output layer, scikit-learn's draws of the weights."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = OUTPUT_OF_LOSS[self._loss_name()]
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            coef, intercept = self._init_layer(fan_in, fan_out)
            self.coefs_.append(coef.astype(dtype))
            self.intercepts_.append(intercept.astype(dtype))
        self._best_parameters = None
        self.history_ = {"loss": [], "time": []}
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = self.history_["loss"]
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _init_layer(self, fan_in, fan_out):
        """``(coef (fan_in, fan_out), intercept (fan_out,))`` in float64, from ``_random_state``.

        ``init=None``: scikit-learn's Glorot-uniform draws, ``U(±sqrt(6 / (fan_in + fan_out)))``
        (2 instead of 6 for the logistic activation), the coefficients then the intercepts.
        ``"kaiming"`` / ``"xavier"``: the tutorial's ``N(0, 1) · sqrt(gain / fan_in)`` weights,
        zero biases."""
        rs = self._random_state
        if self.init is None:
            bound = np.sqrt((2.0 if self.activation == "logistic" else 6.0) / (fan_in + fan_out))
            return rs.uniform(-bound, bound, (fan_in, fan_out)), rs.uniform(-bound, bound, fan_out)
        W = rs.standard_normal((fan_out, fan_in)) * np.sqrt(INIT_GAINS[self.init] / fan_in)
        return W.T, np.zeros(fan_out)

    def _pack_parameters(self, dtype, view=False):
        """``(theta, layout)``: a new flat vector holding ``coefs_`` and ``intercepts_`` (as they are:
        set by a fit, a load or the user); with ``view``, ``coefs_`` and ``intercepts_`` then view it."""
        shapes = [np.shape(c) for c in self.coefs_]
        if not shapes or any(len(s) != 2 for s in shapes) or any(
                a[1] != b[0] for a, b in zip(shapes, shapes[1:])):
            raise ValueError(f"coefs_ of shapes {shapes} do not form a network")
        if shapes[0][0] != self.n_features_in_:
            raise ValueError(f"coefs_[0] has {shapes[0][0]} rows for {self.n_features_in_} features")
        if [np.size(b) for b in self.intercepts_] != [s[1] for s in shapes]:
            raise ValueError("intercepts_ do not match the columns of coefs_")
        layout = Layout([shapes[0][0], *[s[1] for s in shapes]])
        theta = layout.pack([np.transpose(c) for c in self.coefs_], self.intercepts_, dtype)
        if view:
            self._view_parameters(layout, theta)
        return theta, layout

    def _view_parameters(self, layout, theta):
        self.coefs_ = [W.T for W in layout.weights(theta)]
        self.intercepts_ = [B[:, 0] for B in layout.biases(theta)]

    def _fit_lbfgs(self, problem):
        solver = make_solver(self.engine, problem, problem.X.shape[0])

        def objective(x):
            loss, grad = solver.objective(x)
            return loss, grad.astype(np.float64)

        result = scipy.optimize.minimize(
            objective, problem.theta.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = min(result.nit, self.max_iter)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status="
                          f"{result.status}): {result.message}. Increase max_iter or scale the data.",
                          ConvergenceWarning, stacklevel=3)
        self.loss_ = float(result.fun)
        problem.theta[...] = result.x

    def _loss_grad_lbfgs(self, packed, X, Y, sample_weight, *buffers):
        """scikit-learn's private objective of L-BFGS, for code written against it: the loss and
        gradient at ``packed`` (every ``coefs_[l]`` raveled, then every ``intercepts_[l]``), on
        the reference math. ``buffers`` (scikit-learn's work arrays) are not used."""
        shapes = [c.shape for c in self.coefs_]
        layout = Layout([shapes[0][0], *[s[1] for s in shapes]])
        cuts = np.cumsum([a * b for a, b in shapes] + [b for _, b in shapes])[:-1]
        parts = np.split(np.asarray(packed), cuts)
        coefs = [p.reshape(s) for p, s in zip(parts, shapes)]
        theta = layout.pack([c.T for c in coefs], parts[len(shapes):], np.float64)
        X = np.asarray(_dense(X), np.float64)
        Y = np.asarray(Y, np.float64).reshape(X.shape[0], -1)
        loss, grad = losses.loss_and_gradient(theta, layout, self.activation, self._loss_name(), X.T, Y.T,
                                              self.alpha, sample_weight)
        coef_grads = [W.T.ravel() for W in layout.weights(grad)]
        return loss, np.concatenate(coef_grads + [B.ravel() for B in layout.biases(grad)])

    def _new_optimizer(self, theta):
        if self.solver == "adam":
            return Optimizer("adam", theta, self.learning_rate_init, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon)
        rule = "nesterov" if self.nesterovs_momentum else "momentum"
        return Optimizer(rule, theta, self.learning_rate_init, momentum=self.momentum)

    def _validation_split(self, problem):
        """``(training problem, (X_val, y_val, sample_weight_val))``: scikit-learn's split for early
        stopping (stratified for a single-output classifier), or the whole problem and None."""
        if not self.early_stopping:
            return problem, None
        # The binarized labels as booleans, as scikit-learn stratifies them (its messages name them so).
        stratify = problem.Y.astype(bool) if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = [problem.X, problem.Y] + ([] if problem.sample_weight is None else [problem.sample_weight])
        parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_train, X_val, Y_train, Y_val = parts[:4]
        w_train, w_val = (None, None) if problem.sample_weight is None else parts[4:]
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                             "of your dataset.")
        train = problem._replace(X=np.ascontiguousarray(X_train), Y=np.ascontiguousarray(Y_train),
                                 sample_weight=w_train)
        return train, (X_val, self._decode(Y_val), w_val)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                          "clipped", stacklevel=4)
        return int(np.clip(self.batch_size, 1, n_samples))

    def _fit_stochastic(self, problem, incremental, on_epoch, parallel=None):
        """The stochastic solvers' epochs. ``parallel`` (:mod:`fastnn.distributed`) replaces the
        validation split and the engine: ``parallel.prepare(self, problem)`` gives the solver of the
        global rows, their count and a callable validation score (or None)."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer(problem.theta)
        for name in ("history_", "loss_curve_"):  # set by hand, as scikit-learn's tests do
            if not hasattr(self, name):
                self.history_ = {"loss": getattr(self, "loss_curve_", []), "time": []}
                self.loss_curve_ = self.history_["loss"]
        if parallel is None:
            train, validation = self._validation_split(problem)
            n = train.X.shape[0]
            solver = make_solver(self.engine, train, self._batch_size(n), self.track_gradients,
                                 n_workers=self._solver_workers(train.layout))
        else:
            solver, n, validation = parallel.prepare(self, problem)
        self._say_if_compiling(solver, solver.p)
        sample_idx = np.arange(n)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = shuffled(sample_idx, self._random_state)
            self._run_epoch(solver, sample_idx if self.shuffle else None, n, validation, on_epoch)
            if self._end_epoch(validation is not None, problem.theta):
                break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if validation is not None and self._best_parameters is not None:
            problem.theta[...] = self._best_parameters

    def _run_epoch(self, solver, order, n, validation, on_epoch):
        """One epoch; an epoch that an exception (Ctrl-C's too) or a non-finite result ends leaves the
        parameters and the optimizer as they were before it."""
        theta = solver.p.theta
        before = (theta.copy(), [s.copy() for s in self._optimizer.state], self._optimizer.t)
        start = time.perf_counter()
        try:
            accumulated = solver.epoch(order, self._optimizer)
        except BaseException:
            self._restore(theta, before)
            raise
        elapsed = time.perf_counter() - start
        loss = accumulated / n
        # With early stopping scikit-learn trains on and restores the best finite weights at the end.
        if validation is None and not (np.isfinite(loss) and np.isfinite(theta).all()):
            self._restore(theta, before)
            raise TrainingDivergedError(
                f"{NON_FINITE} Training diverged in epoch {self.n_iter_ + 1}: the loss became {loss}; the "
                f"weights are kept as they were before that epoch. Try a learning_rate_init below "
                f"{self.learning_rate_init}.")
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n
        record = {"loss": loss, "time": elapsed}
        if self.track_gradients:
            record["grad_norms"] = solver.norms.copy()
        if validation is not None:
            # With the epoch's BLAS threads: a wider BLAS call leaves OpenBLAS's threads spinning
            # into the next epoch, on the cores of its workers (solvers.FastSolver.blas_threads).
            score = (validation() if callable(validation)
                     else self._score_rows(*validation, n_threads=solver.blas_threads))
            self.validation_scores_.append(score)
            record["validation_score"] = score
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if validation is not None:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
        for key, value in record.items():
            self.history_.setdefault(key, []).append(value)
        if on_epoch is not None:
            on_epoch(record)

    def _solver_workers(self, layout):
        """Worker threads for the fast solver epoch: the split epoch's rule (a hidden layer whose
        first weights are many enough, one worker per core, the serial kernel build)."""
        if self.engine != "fast":
            return 1
        from .split import split_workers

        return split_workers(layout, self.n_threads or default_blas_threads(), self.track_gradients)

    def _restore(self, theta, before):
        theta[...] = before[0]
        for state, saved in zip(self._optimizer.state, before[1]):
            state[...] = saved
        self._optimizer.t = before[2]

    def _end_epoch(self, early_stopping, theta):
        """scikit-learn's bookkeeping after an epoch; return whether to stop."""
        sgd = self.solver == "sgd"
        value = self.validation_scores_[-1] if early_stopping else self.loss_curve_[-1]
        best = self.best_validation_score_ if early_stopping else self.best_loss_
        end = opt.end_epoch(value, best, self._no_improvement_count, self._optimizer.learning_rate, self.t_,
                            higher_is_better=early_stopping, tol=self.tol,
                            n_iter_no_change=self.n_iter_no_change,
                            schedule=self.learning_rate if sgd else "constant",
                            learning_rate_init=self.learning_rate_init, power_t=self.power_t)
        if early_stopping:
            self.best_validation_score_ = end.best
            if end.new_best:
                self._best_parameters = theta.copy()
        else:
            self.best_loss_ = end.best
        stalled = opt.should_stall(opt.no_improvement_count(self._no_improvement_count, value, best, self.tol,
                                                            early_stopping), self.n_iter_no_change)
        self._no_improvement_count = end.count
        if stalled and self.verbose:
            what = "Validation score" if early_stopping else "Training loss"
            print(f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                  f"consecutive epochs. " + ("Stopping." if end.stop else
                                 f"Setting learning rate to {end.learning_rate:f}"))
        self._optimizer.learning_rate = end.learning_rate
        return end.stop

    def _say_if_compiling(self, solver, problem):
        if self.engine == "fast" and solver.will_compile():
            message = (f"compiling the fast engine for {problem.X.dtype}, first use only: "
                       f"{COMPILE_ESTIMATE}; later runs load it from Numba's cache")
            logger.info(message)
            if self.verbose:
                print(message)

    # ------------------------------------------------------------------ prediction

    def _output(self, X, n_threads=None):
        """The output layer for the rows of ``X`` (validated), block by block (bounded memory), with
        ``n_threads`` BLAS threads (None: the model's ``n_threads``)."""
        check_is_fitted(self, "coefs_")
        theta, layout = self._pack_parameters(self.coefs_[0].dtype)
        loss = self._loss_name()
        predict = predict_output_reference if self.engine == "reference" else predict_output
        out = np.empty((X.shape[0], layout.sizes[-1]), theta.dtype)
        row_bytes = 2 * theta.itemsize * sum(layout.sizes[1:])
        with thread_limits(n_threads or self.n_threads):
            for rows in _row_blocks(X.shape[0], predict_block_rows(row_bytes)):
                out[rows] = predict(layout, theta, self.activation, loss,
                                    np.ascontiguousarray(_dense(X[rows]), theta.dtype))
        return out

    def save(self, path):
        """Write the fitted model to ``path`` (one ``.npz``, no pickle); :func:`fastnn.load` reads it."""
        _persist.save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier: scikit-learn's ``MLPClassifier``, on fastnn's engines.

    The output layer follows the targets: a softmax over several classes, one logistic
    unit for two classes, logistic units for a multilabel indicator ``y``; the loss is
    the matching cross-entropy. Parameters, defaults and attributes are scikit-learn's
    (see its documentation); fastnn adds:

    engine : {"fast", "reference"}, default="fast"
        Compiled Numba kernels, or the plain NumPy specification.
    dtype : {"float32", "float64"} or None, default=None
        Weights and arithmetic; None follows ``X`` as scikit-learn does (float32 stays
        float32, anything else is float64).
    n_threads : int or None, default=None
        BLAS threads during fit and predict; None: every core, but no more than BLAS is
        already allowed (fewer in a joblib worker).
    init : {"kaiming", "xavier"} or None, default=None
        None: scikit-learn's Glorot-uniform draws; otherwise the tutorial's
        ``N(0, 1) · sqrt(gain / n_in)`` weights (gain 2 or 1) with zero biases.
    track_gradients : bool, default=False
        Record per epoch, in ``history_["grad_norms"]``, each layer's mean over batches of
        ``‖dW[l]‖``, the norm of its batch-mean loss gradient (without the L2 term).

    and the ``leaky_relu`` activation (slope 0.01), ``fit(..., on_epoch=callable)``, the
    per-epoch ``history_`` (``loss``, ``time``) and :meth:`save`.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 engine="fast", dtype=None, n_threads=None, init=None, track_gradients=False):
        _store_arguments(self, locals())

    def _loss_name(self):
        return "log_loss" if self.out_activation_ == "softmax" else "binary_log_loss"

    def _initialize(self, Y, sizes, dtype):
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        self.out_activation_ = "softmax" if multiclass else "logistic"
        super()._initialize(Y, sizes, dtype)

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_Xy(X, y, reset)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same classes as in "
                                     f"the previous call to fit. Previously got {self.classes_}, "
                                     f"`y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, self._targets(y, X.dtype)

    def _targets(self, y, dtype):
        """The binarized labels as the output layer's targets, built in ``dtype`` (LabelBinarizer's
        own integer matrix would be a second, larger copy): a one-hot row per sample for several
        classes, one 0/1 column for two (a column of zeros for one), the indicator matrix for
        multilabel ``y``."""
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return self._label_binarizer.transform(y).astype(dtype)
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) <= 2:  # one class: LabelBinarizer's column of zeros, as scikit-learn trains
            return (index == 1).astype(dtype).reshape(-1, 1)
        Y = np.zeros((len(index), len(self.classes_)), dtype)
        Y[np.arange(len(index)), index] = 1
        return Y

    def _decode(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)`` from the current state; ``classes`` (every label the model
        will see) is required on the first call."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else np.unique(classes))
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(self.classes_, np.unique(classes)):
            raise ValueError(f"`classes={np.unique(classes)!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)`` in ``classes_`` order.

        The rows go through the network in blocks of 1024 (``PREDICT_BLOCK_ROWS``; fewer if their
        activations would take over 64 MB), so predicting pieces of ``X`` split at multiples of
        the block gives bitwise the same result as predicting ``X`` at once."""
        check_is_fitted(self, "coefs_")
        out = self._output(self._validate_X(X, reset=False))
        if self.n_outputs_ == 1:
            return np.hstack([1 - out, out])
        return out

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def predict(self, X):
        """The predicted classes (or label indicator rows, for multilabel ``y``)."""
        check_is_fitted(self, "coefs_")
        out = self._output(self._validate_X(X, reset=False))
        return self._decode(out.ravel() if self.n_outputs_ == 1 else out)

    def _score_rows(self, X, y, sample_weight, n_threads=None):
        return _score_finite(self, X, y, sample_weight, accuracy_score, n_threads)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor: scikit-learn's ``MLPRegressor``, on fastnn's engines.

    An identity output with the squared error (``loss="squared_error"``), or an exponential
    output with the Poisson deviance (``loss="poisson"``); one or several targets. The
    parameters fastnn adds are :class:`MLPClassifier`'s.
    """

    _parameter_constraints = {**BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, engine="fast", dtype=None, n_threads=None, init=None, track_gradients=False):
        _store_arguments(self, locals())

    def _loss_name(self):
        return self.loss

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_Xy(X, y, reset, y_numeric=True)
        return X, np.asarray(y, X.dtype).reshape(len(y), -1)

    def _decode(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    # scikit-learn's regressor tests the bound method itself (always true): partial_fit exists
    # for every solver and raises when called with L-BFGS.
    @available_if(lambda est: est._check_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)`` from the current state."""
        self._check_solver()
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The predicted values, shape ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        check_is_fitted(self, "coefs_")
        return self._decode(self._output(self._validate_X(X, reset=False)))

    def _score_rows(self, X, y, sample_weight, n_threads=None):
        return _score_finite(self, X, y, sample_weight, r2_score, n_threads)


def shuffled(sample_idx, random_state):
    """``sklearn.utils.shuffle(sample_idx, random_state=random_state)``: the same draws (one
    ``RandomState.shuffle`` of ``arange(n)``, which then reorders ``sample_idx``) without its
    input checks, which took 168 µs against 26 µs for the digits' 1,797 rows, a twelfth of an
    epoch there (bench/test_bench_epoch.py, group "epoch shuffle, 1,797 row indices")."""
    order = np.arange(sample_idx.shape[0])
    random_state.shuffle(order)
    return sample_idx[order]


def _score_finite(model, X, y, sample_weight, score, n_threads=None):
    """``score(y, predictions)`` on validated rows, NaN if a prediction is not finite (as scikit-learn);
    the predictions with ``n_threads`` BLAS threads (None: the model's)."""
    prediction = model._decode(model._output(X, n_threads))
    if np.issubdtype(np.asarray(prediction).dtype, np.floating) and not np.isfinite(prediction).all():
        return np.nan
    return score(y, prediction, sample_weight=sample_weight)


def load(path):
    """Read a model written by :meth:`BaseMLP.save`.

    Raises ``ValueError`` naming the file and the problem for a file that is
    not a model, is truncated or damaged, is of another format version, or
    holds missing or inconsistent arrays or parameters.
    """
    return _persist.load(path, {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor})
