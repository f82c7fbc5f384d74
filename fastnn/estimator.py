"""``MLPClassifier``: the scikit-learn estimator that drives either engine."""

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _persist, reference
from . import _validation as check
from ._diagnostics import warn_if_failed
from ._threads import default_blas_threads, thread_limits
from ._trainer import train
from .engine import Network, make_engine
from .layout import Layout

logger = logging.getLogger("fastnn")
# What compiling the fast engine took on a cold cache: 3.5-8 s per dtype and thread model on a
# 2-core AMD EPYC (python bench/compile_time.py, 2026-11-25).
COMPILE_ESTIMATE = "up to about 8 s on a 2-core machine"

# predict_proba goes through the rows in chunks whose activations take at most this many bytes.
PREDICT_CHUNK_BYTES = 64 * 2**20


def _row_chunks(n_rows, row_bytes):
    """Slices of nearly equal size that tile ``range(n_rows)``, each of at most
    ``ceil(PREDICT_CHUNK_BYTES / row_bytes)`` rows (at least one)."""
    n_chunks = min(n_rows, -(-n_rows * row_bytes // PREDICT_CHUNK_BYTES))
    bounds = [k * n_rows // n_chunks for k in range(n_chunks + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier trained by plain (mini-batch) gradient descent.

    Hidden layers use one activation; the output layer is a softmax trained on
    the categorical cross-entropy. The math is :mod:`fastnn.reference`'s;
    ``engine="fast"`` runs the same math in compiled Numba kernels.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(128,)
        Width of each hidden layer; at least one layer.
    activation : {"relu", "leaky_relu", "sigmoid", "tanh"}, default="relu"
        Hidden-layer activation (Leaky ReLU's slope is 0.01).
    init : {"kaiming", "xavier"} or None, default=None
        ``W = N(0, 1) · sqrt(gain / n_in)`` with gain 2 (Kaiming) or 1 (Xavier);
        biases start at 0. None: Kaiming for the ReLU family, Xavier otherwise.
    learning_rate : float, default=0.1
        The SGD step ``α`` in ``θ ← θ − α·dθ``.
    batch_size : int, "auto" or None, default="auto"
        Samples per gradient step. None: the full batch (gradient descent);
        "auto": ``min(32, n_samples)``, so data sets of up to 32 samples train
        full-batch and larger ones in mini-batches of 32.
    epochs : int, default=10
        Passes over the training data per call to :meth:`fit`.
    shuffle : bool, default=True
        Draw a new sample order each epoch (mini-batches only).
    engine : {"fast", "reference"}, default="fast"
        Compiled Numba kernels, or the plain NumPy specification.
    dtype : {"float32", "float64"}, default="float32"
        Floating-point type of the weights and of the arithmetic.
    random_state : int, numpy Generator or None, default=None
        Seeds the initial weights and the shuffling.
    n_threads : int or None, default=None
        Threads during fit and predict. None: every core, but no more than
        BLAS is already allowed (fewer inside a joblib worker such as
        ``GridSearchCV(n_jobs=2)``, or under ``OPENBLAS_NUM_THREADS``). The
        fast engine fits a network whose first layer has at least 32,768
        weights with that many worker threads (at most one per core), each
        owning a share of the first hidden layer and calling one-thread BLAS
        (:mod:`fastnn.kernels.split`); otherwise, and in predict, BLAS gets
        the threads. Numba's pool is held at one thread either way.
    warm_start : bool, default=False
        Continue from the current weights on the next :meth:`fit`.
    verbose : bool, default=False
        Print loss, accuracy and time after each epoch.
    track_gradients : bool, default=False
        Record the mean norm of each layer's weight gradient per epoch in
        ``history_["grad_norms"]`` (costs an extra pass over each gradient).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    weights_ : list of ndarray of shape (n_out, n_in)
    biases_ : list of ndarray of shape (n_out, 1)
    loss_curve_ : list of float
        Mean training loss per epoch, each sample's loss taken in its batch's
        forward pass before that batch's update.
    history_ : dict of lists
        ``loss``, ``accuracy`` (training, measured like the loss) and ``time``
        (seconds) per epoch, and ``grad_norms`` when tracked.
    n_iter_ : int
        Epochs trained so far.
    n_features_in_ : int
    """

    def __init__(self, hidden_layer_sizes=(128,), activation="relu", init=None,
                 learning_rate=0.1, batch_size="auto", epochs=10, shuffle=True,
                 engine="fast", dtype="float32", random_state=None, n_threads=None,
                 warm_start=False, verbose=False, track_gradients=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.engine = engine
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads
        self.warm_start = warm_start
        self.verbose = verbose
        self.track_gradients = track_gradients

    def fit(self, X, y, on_epoch=None):
        """Train for ``epochs`` epochs, from fresh weights unless ``warm_start``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (ints, strings, ...).
        on_epoch : callable, optional
            Called with each epoch's history record (a dict).

        Returns
        -------
        self

        Warns
        -----
        fastnn.TrainingFailedWarning
            When the last 5 epochs show a saturated or dead network (a learning
            rate far too high): see :func:`fastnn._diagnostics.training_failure`.
        """
        params = check.check_params(self)
        keep = params["warm_start"] and hasattr(self, "weights_")
        return self._fit(X, y, params, self.classes_ if keep else None, keep,
                         params["epochs"], on_epoch)

    def partial_fit(self, X, y, classes=None, on_epoch=None):
        """Train one epoch from the current state (fresh weights on the first call).

        ``classes`` (every label the model will see) is required on the first call.
        """
        params = check.check_params(self)
        first = not hasattr(self, "weights_")
        if first and classes is None:
            raise ValueError("classes must be given on the first call to partial_fit")
        classes = np.unique(classes) if first else self.classes_
        return self._fit(X, y, params, classes, not first, 1, on_epoch)

    def _fit(self, X, y, params, classes, keep, epochs, on_epoch):
        X, y = self._check_Xy(X, y, params["dtype"], reset=not keep)
        y_idx = self._encode(y, classes)
        n = X.shape[0]
        batch = check.batch_size(self.batch_size, n)
        if keep:
            self._check_architecture(X.shape[1], params)
        else:
            self._init_state(X.shape[1], params)
        threads = params["n_threads"] or default_blas_threads()
        network = Network(self._layout, self._theta, params["activation"])
        engine = make_engine(params["engine"], X, y_idx, network, batch, threads,
                             params["track_gradients"])
        if engine.will_compile():
            self._say(f"compiling the fast engine for {X.dtype} ({type(engine).__name__}), first use "
                      f"only: {COMPILE_ESTIMATE}; later runs load it from Numba's cache")
        with thread_limits(engine.blas_threads):
            train(engine, epochs=epochs, learning_rate=params["learning_rate"],
                  shuffle=params["shuffle"], rng=self._rng,
                  on_epoch=lambda record: self._record(record, on_epoch))
        warn_if_failed(self, X, y_idx, params["learning_rate"])
        return self

    def _check_Xy(self, X, y, dtype, reset):
        if not reset and self.weights_[0].dtype != dtype:
            raise ValueError(f"dtype is {dtype} but the model was trained in "
                             f"{self.weights_[0].dtype}; refit without warm_start")
        check.reject_text(X)
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C")
        check_classification_targets(y)
        return X, y

    def _check_X(self, X):
        check_is_fitted(self, "weights_")
        check.reject_text(X)
        return validate_data(self, X, reset=False, dtype=self.weights_[0].dtype, order="C")

    def _encode(self, y, classes):
        if classes is None:
            classes = np.unique(y)
            if classes.shape[0] < 2:
                raise ValueError(f"y must hold at least 2 classes; got 1 class: {classes.tolist()}")
        self.classes_ = classes
        return self._labels_to_index(y)

    def _labels_to_index(self, y):
        idx = np.searchsorted(self.classes_, y)
        unknown = (idx >= len(self.classes_)) | (self.classes_[np.minimum(idx, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y has labels the model does not know: {np.unique(y[unknown]).tolist()}; "
                             f"known classes are {self.classes_.tolist()}")
        return idx

    def _init_state(self, n_features, params):
        self._rng = np.random.default_rng(self.random_state)
        sizes = [n_features, *params["hidden_layer_sizes"], len(self.classes_)]
        weights, biases = reference.init_params(sizes, params["init"], self._rng, params["dtype"])
        self._use_parameters(Layout(sizes), weights, biases)
        self.history_ = {"loss": [], "accuracy": [], "time": []}
        if params["track_gradients"]:
            self.history_["grad_norms"] = []
        self.loss_curve_ = self.history_["loss"]
        self.n_iter_ = 0

    def _check_architecture(self, n_features, params):
        sizes = [n_features, *params["hidden_layer_sizes"], len(self.classes_)]
        shapes = [(n_out, n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        if shapes != [W.shape for W in self.weights_]:
            raise ValueError(f"hidden_layer_sizes={params['hidden_layer_sizes']} does not match the "
                             f"trained weights {[W.shape for W in self.weights_]}; refit without "
                             "warm_start")
        self._check_parameter_arrays()
        self._use_parameters(Layout([n_features, *params["hidden_layer_sizes"], len(self.classes_)]),
                             self.weights_, self.biases_)
        if not hasattr(self, "_rng"):  # a loaded model: its shuffling starts from random_state
            self._rng = np.random.default_rng(self.random_state)

    def _use_parameters(self, layout, weights, biases):
        """Train a new flat vector holding ``weights`` and ``biases``; ``weights_`` and
        ``biases_`` become views into it. (Packed afresh for every fit, so arrays a user
        assigned or loaded are what the fit starts from.)"""
        self._layout = layout
        self._theta = layout.pack(weights, biases, weights[0].dtype)
        self.weights_, self.biases_ = layout.weights(self._theta), layout.biases(self._theta)

    def _check_parameter_arrays(self):
        """The kernels trust these shapes and dtypes: refuse weights_ or biases_ (edited or
        loaded) that do not form the network."""
        n_in, dtype = self.n_features_in_, self.weights_[0].dtype
        for l, (W, B) in enumerate(zip(self.weights_, self.biases_)):
            if W.ndim != 2 or W.shape[1] != n_in or B.shape != (W.shape[0], 1):
                raise ValueError(f"layer {l} has weight shape {W.shape} and bias shape {B.shape}: "
                                 f"they do not form a layer from {n_in} inputs")
            if not (W.dtype == B.dtype == dtype and W.flags.c_contiguous and B.flags.c_contiguous):
                raise ValueError(f"layer {l} is {W.dtype}/{B.dtype}: they do not form a layer of "
                                 f"C-ordered {dtype} arrays")
            n_in = W.shape[0]
        if len(self.weights_) != len(self.biases_) or n_in != len(self.classes_):
            raise ValueError(f"the last layer has {n_in} outputs for {len(self.classes_)} classes")

    def _say(self, message):
        """Tell the user: printed with ``verbose``, and logged (INFO) on the "fastnn" logger."""
        logger.info(message)
        if self.verbose:
            print(message)

    def _record(self, record, on_epoch):
        for key, value in record.items():
            self.history_.setdefault(key, []).append(value)
        self.n_iter_ += 1
        if self.verbose:
            print(f"epoch {self.n_iter_}: loss {record['loss']:.4f}, "
                  f"accuracy {record['accuracy']:.4f}, {record['time']:.3f} s")
        if on_epoch is not None:
            on_epoch(record)

    def save(self, path):
        """Write the fitted model to ``path`` (one ``.npz``, no pickle); :func:`fastnn.load` reads it."""
        _persist.save(self, path)

    def predict_proba(self, X):
        """Class probabilities.

        The rows go through the network in chunks of nearly equal size whose
        activations take at most about 64 MB (``PREDICT_CHUNK_BYTES``), so that
        memory beyond ``X`` and the result does not grow with the number of
        rows. Each chunk's probabilities are bitwise the engine's one pass over
        that chunk; an ``X`` that fits in one chunk is computed in one pass. For
        a larger ``X`` a row can differ from a single pass over all rows in the
        last bits (tested: by at most 1e-5 in float32, 1e-12 in float64): OpenBLAS rounds
        a row of a product differently depending on the rows around it (its
        register blocks, thread shares and small-matrix kernels), as it does
        within a single pass when the rows are reordered.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), rows summing to 1, columns in ``classes_`` order.
        """
        X = self._check_X(X)
        self._check_parameter_arrays()
        params = check.check_params(self)
        proba = np.empty((X.shape[0], len(self.classes_)), X.dtype)
        # Each layer's Z and A for every row of a chunk (the reference engine keeps both).
        row_bytes = 2 * X.itemsize * sum(W.shape[0] for W in self.weights_)
        with thread_limits(params["n_threads"]):
            for rows in _row_chunks(X.shape[0], row_bytes):
                proba[rows] = self._predict_chunk(X[rows], params["activation"])
        return proba

    def _predict_chunk(self, X, activation):
        if self.engine == "reference":
            return reference.predict_proba(self.weights_, self.biases_, activation, X.T).T
        from .fast import predict_proba

        return predict_proba(self.weights_, self.biases_, activation, X)

    def predict(self, X):
        """Most probable class of each row of ``X`` (shape ``(n_samples, n_features)``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on ``(X, y)``; labels the model never saw are an error, not a miss."""
        check_is_fitted(self, "weights_")
        self._labels_to_index(np.asarray(y).ravel())
        return super().score(X, y, sample_weight=sample_weight)


def load(path):
    """Read a model written by :meth:`MLPClassifier.save`.

    Raises ``ValueError`` naming the file and the problem for a file that is
    not a model, is truncated or damaged, is of another format version, or
    holds missing or inconsistent arrays or parameters.
    """
    return _persist.load(path, MLPClassifier)
