"""A batch of every row, gathered in the epoch's order or taken as stored: ms per epoch.

    python bench/full_batch_order.py [--epochs 10]

The fast engines take a batch of every row as stored whatever the order
(``fastnn.fast.full_batch_as_stored``); here, alternating in one process, the same
epochs with that rule replaced by one that keeps the order, so every row is gathered
first: plain SGD on the plain-SGD engine ``make_engine`` picks, and SGD with Nesterov's
momentum on the estimators' solver epoch, as ``bench/compare.py`` builds them
(784-128-10, ReLU, float32, 60,000 random rows, as many workers as ``fit`` uses). Best and
median of the epochs after the first.
"""

import argparse
import os
import sys
import time
from contextlib import contextmanager, nullcontext

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._machine import describe  # noqa: E402
from bench._peers import Rule, limits, make_fast, synthetic  # noqa: E402
from fastnn import fast  # noqa: E402

N, SIZES = 60_000, [784, 128, 10]


@contextmanager
def gathered_in_order():
    """The fast engines with a batch of every row gathered in the order they are given."""
    kept = fast.full_batch_as_stored
    fast.full_batch_as_stored = lambda order, rows, n: order
    try:
        yield
    finally:
        fast.full_batch_as_stored = kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    print(f"CPU: {describe()}")
    rng, X, y, weights, biases = synthetic(N, SIZES)
    epochs = {rule: make_fast(X, y, SIZES, N, 0.01, weights, biases, rule=Rule(rule))[0]
              for rule in ("sgd", "nesterov")}
    times = {(rule, way): [] for rule in epochs for way in ("in order", "as stored")}
    for _ in range(args.epochs):
        order = rng.permutation(N)
        for rule, epoch in epochs.items():
            for way in ("in order", "as stored"):
                with limits(epoch), (gathered_in_order() if way == "in order" else nullcontext()):
                    start = time.perf_counter()
                    epoch(order)
                    times[rule, way].append(1e3 * (time.perf_counter() - start))
    print(f"{'-'.join(map(str, SIZES))}, float32, {N} rows, one batch: ms per epoch, best / median of "
          f"{args.epochs - 1}")
    for (rule, way), t in times.items():
        print(f"  {rule:<9} {way:<10} {min(t[1:]):6.0f} / {np.median(t[1:]):.0f}")


if __name__ == "__main__":
    main()
