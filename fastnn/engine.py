"""What the trainer drives: one small interface, four engines, one function to choose.

- :class:`fastnn.reference.ReferenceEngine`: the NumPy specification;
- :class:`fastnn.fast.SerialEngine`: the compiled epoch in one call, BLAS owning the cores;
- :class:`fastnn.split.SplitEngine`: the compiled epoch in one call per worker thread,
  each worker owning a share of the first hidden layer;
- :class:`fastnn.rows.RowsEngine`: the compiled epoch in one call per worker thread,
  each worker taking a share of every batch's rows.

:func:`make_engine` picks one. Every engine trains the network's flat parameter
vector in place (:mod:`fastnn.layout`) and offers, besides the fused epoch, the
two operations that other training schemes are built from: the summed gradient
of some rows, without updating (:meth:`Engine.batch_gradient`), and a step from
a gradient (:meth:`Engine.apply_step`); and the full-batch
:meth:`Engine.loss_and_gradient` of any parameter vector.
"""

from typing import NamedTuple

import numpy as np


class EpochStats(NamedTuple):
    """What an engine reports after an epoch.

    ``loss`` and ``accuracy`` are averaged over the epoch's samples, each taken
    from its batch's forward pass before that batch's update. ``grad_norms``
    (when tracked) holds, per layer, the mean over batches of ``‖dW[l]‖``.
    """

    loss: float
    accuracy: float
    grad_norms: np.ndarray | None


class Network(NamedTuple):
    """What an engine trains: the :class:`~fastnn.layout.Layout`, the flat parameter vector
    ``theta`` (updated in place) and the hidden layers' ``activation``."""

    layout: object
    theta: np.ndarray
    activation: str


def network_of(weights, biases, activation):
    """A :class:`Network` holding copies of ``weights`` (``(n_out, n_in)`` arrays) and
    ``biases`` (``(n_out, 1)``), for engines driven directly (tests, benchmarks)."""
    from .layout import Layout

    layout = Layout([weights[0].shape[1]] + [W.shape[0] for W in weights])
    return Network(layout, layout.pack(weights, biases, weights[0].dtype), activation)


class Engine:
    """Mini-batch training of a network on ``(X, y)``.

    ``X`` is ``(n_samples, n_features)``, ``y`` holds class indices ``0…n_classes-1``.
    :attr:`blas_threads` is the BLAS thread count the engine's epoch needs; the
    caller sets it (:func:`fastnn._threads.thread_limits`) around training.
    """

    def __init__(self, X, y, network, batch_size, n_threads=1, track_gradients=False):
        self.layout, self.theta, self.activation = network
        self.n_samples = X.shape[0]
        self.batch_size = batch_size
        self.track_gradients = track_gradients
        self.blas_threads = n_threads

    def epoch(self, order, learning_rate):
        """Train one epoch of SGD over the samples in ``order`` (None: as stored); return
        :class:`EpochStats`."""
        raise NotImplementedError

    def batch_gradient(self, rows, grad):
        """Write into ``grad`` (the layout of ``theta``) the gradient summed over the samples
        ``rows`` (None: all), at the current parameters, which stay as they are. Return the
        summed loss and the number of samples whose prediction was right."""
        return self._gradient(self.theta, rows, grad)

    def apply_step(self, grad, step):
        """``θ ← θ − step · grad``, elementwise over the flat vector, in place."""
        raise NotImplementedError

    def will_compile(self):
        """Whether the first epoch will compile code (and so take seconds longer)."""
        return False

    def loss_and_gradient(self, theta):
        """Mean loss and mean gradient over every sample, at the parameters ``theta`` (a flat
        vector of this network's layout; the engine's own are not touched)."""
        theta = np.ascontiguousarray(theta, dtype=self.theta.dtype)
        if theta.shape != self.theta.shape:
            raise ValueError(f"theta must hold {self.theta.shape[0]} parameters; got shape {theta.shape}")
        grad = np.empty_like(theta)
        loss, _ = self._gradient(theta, None, grad)
        return loss / self.n_samples, grad / self.n_samples

    def _gradient(self, theta, rows, grad):
        raise NotImplementedError

    def _stats(self, loss, hits, norms=None):
        n = self.n_samples
        n_batches = -(-n // self.batch_size)
        return EpochStats(loss / n, hits / n, None if norms is None else norms / n_batches)


def make_engine(kind, X, y, network, batch_size, n_threads=1, track_gradients=False):
    """The engine for ``kind`` ("reference" or "fast"). For "fast", when
    :func:`fastnn.split.split_workers` gives more than one worker, the workers share each
    batch's rows (:class:`fastnn.rows.RowsEngine`) from
    :data:`fastnn.rows.MIN_ROW_SHARING_ROWS` rows up, the first hidden layer's units below
    (:class:`fastnn.split.SplitEngine`); else the serial epoch."""
    args = (X, y, network, batch_size, n_threads, track_gradients)
    if kind == "reference":
        from .reference import ReferenceEngine

        return ReferenceEngine(*args)
    from . import rows
    from .split import SplitEngine, split_workers

    n_workers = split_workers(network.layout, n_threads, track_gradients)
    if n_workers > 1 and min(batch_size, X.shape[0]) >= rows.MIN_ROW_SHARING_ROWS:
        return rows.RowsEngine(*args, n_workers=n_workers)
    if n_workers > 1:
        return SplitEngine(*args, n_workers=n_workers)
    from .fast import SerialEngine

    return SerialEngine(*args)
