"""The trainer: epochs, shuffling, history and divergence checks, for either engine.

An engine (:mod:`fastnn.engine`) holds the data and the flat parameter vector and
offers ``epoch(order, learning_rate)`` returning :class:`fastnn.engine.EpochStats`;
the trainer does not know which engine it drives.
"""

import time

import numpy as np


class TrainingDivergedError(ValueError, FloatingPointError):
    """The loss or a weight became NaN or infinite during an epoch."""


def train(engine, *, epochs, learning_rate, shuffle, rng, on_epoch):
    """Run ``epochs`` epochs of ``engine``; call ``on_epoch(record)`` after each.

    ``record`` is a dict with ``loss``, ``accuracy``, ``time`` (seconds) and,
    when the engine tracks them, ``grad_norms``. Shuffling draws one
    permutation per epoch from ``rng`` (none for a full batch, where the order
    changes nothing). If an epoch leaves a non-finite loss or weight, the
    parameters are put back as they were before it and
    :class:`TrainingDivergedError` names the epoch. An epoch ended by an exception
    (Ctrl-C's ``KeyboardInterrupt`` too) also puts them back, then lets it through:
    the parameters are always those of the last finished epoch.
    """
    full_batch = engine.batch_size >= engine.n_samples
    theta = engine.theta
    for epoch in range(1, epochs + 1):
        before = theta.copy()
        order = rng.permutation(engine.n_samples) if shuffle and not full_batch else None
        start = time.perf_counter()
        try:
            stats = engine.epoch(order, learning_rate)
            elapsed = time.perf_counter() - start
            diverged = not (np.isfinite(stats.loss) and np.isfinite(theta).all())
        except BaseException:
            theta[...] = before
            raise
        if diverged:
            theta[...] = before
            reason = (f"the loss became {stats.loss}" if not np.isfinite(stats.loss)
                      else "a weight became NaN or infinite")
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch}: {reason}; the weights "
                f"are kept as they were before that epoch. Try a learning_rate below {learning_rate}.")
        record = {"loss": stats.loss, "accuracy": stats.accuracy, "time": elapsed}
        if stats.grad_norms is not None:
            record["grad_norms"] = stats.grad_norms
        on_epoch(record)
