"""The trainer: epochs, shuffling, history and divergence checks, for either engine.

An engine holds the data and the parameters and offers ``epoch(order, learning_rate)``
returning :class:`fastnn.reference.EpochStats`; the trainer does not know which
engine it drives.
"""

import time

import numpy as np


class TrainingDivergedError(FloatingPointError):
    """The loss or a weight became NaN or infinite during an epoch."""


def _finite(stats, params):
    return np.isfinite(stats.loss) and all(np.isfinite(p).all() for p in params)


def train(engine, params, n_samples, *, epochs, learning_rate, shuffle, rng, on_epoch):
    """Run ``epochs`` epochs of ``engine``; call ``on_epoch(record)`` after each.

    ``record`` is a dict with ``loss``, ``accuracy``, ``time`` (seconds) and,
    when the engine tracks them, ``grad_norms``. Shuffling draws one
    permutation per epoch from ``rng`` (none for a full batch, where the order
    changes nothing). If an epoch leaves a non-finite loss or weight, the
    parameters are put back as they were before it and
    :class:`TrainingDivergedError` names the epoch.
    """
    full_batch = engine.batch_size >= n_samples
    for epoch in range(1, epochs + 1):
        before = [p.copy() for p in params]
        order = rng.permutation(n_samples) if shuffle and not full_batch else None
        start = time.perf_counter()
        stats = engine.epoch(order, learning_rate)
        elapsed = time.perf_counter() - start
        if not _finite(stats, params):
            for p, saved in zip(params, before):
                p[...] = saved
            reason = (f"the loss became {stats.loss}" if not np.isfinite(stats.loss)
                      else "a weight became NaN or infinite")
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch}: {reason}; the weights "
                f"are kept as they were before that epoch. Try a learning_rate below {learning_rate}.")
        record = {"loss": stats.loss, "accuracy": stats.accuracy, "time": elapsed}
        if stats.grad_norms is not None:
            record["grad_norms"] = stats.grad_norms
        on_epoch(record)
