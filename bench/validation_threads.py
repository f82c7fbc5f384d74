"""Early stopping's validation score between two epochs of split workers: with the epoch's BLAS
threads (what fit does) or with every core, ms per epoch.

    python bench/validation_threads.py [--rounds 3] [--epochs 12]

784-128-10 (float32, relu), 20,000 MNIST-shaped random rows, ``solver="sgd"``, batch 200,
``early_stopping=True`` (10% held out, scored after every epoch), two workers sharing each
batch. The epoch time is ``history_["time"]``, which leaves out the validation score itself.
OpenBLAS's threads spin for a while after a call that used them: scored with every core,
the next epoch's workers share their cores with them. The two ways alternate, ``--rounds``
fits of ``--epochs`` each (the first epoch of a fit is not counted).
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._machine import describe  # noqa: E402
from fastnn import MLPClassifier, estimator  # noqa: E402


def every_core(make_solver):
    """``make_solver`` whose solver asks for no BLAS limit between epochs."""
    def make(*args, **kwargs):
        solver = make_solver(*args, **kwargs)
        solver.blas_threads = None
        return solver
    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    print(describe())
    rng = np.random.default_rng(0)
    X = rng.random((20000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20000)
    ways = {"the epoch's BLAS threads (fit)": estimator.make_solver,
            "every core": every_core(estimator.make_solver)}
    times = {name: [] for name in ways}
    warnings.simplefilter("ignore")  # max_iter reached
    for _ in range(args.rounds):
        for name, make_solver in ways.items():
            estimator.make_solver = make_solver
            model = MLPClassifier((128,), solver="sgd", batch_size=200, max_iter=args.epochs,
                                  random_state=0, early_stopping=True, n_iter_no_change=float("inf"),
                                  learning_rate_init=0.001)
            model.fit(X, y)
            times[name].extend(1e3 * np.array(model.history_["time"][1:]))
    for name, t in times.items():
        print(f"validation scored with {name}: epoch min {np.min(t):.1f} ms, median {np.median(t):.1f} ms")


if __name__ == "__main__":
    main()
