"""Plain SGD two ways, in one process, their epochs alternating: ms per epoch, best and median.

    python bench/plain_sgd_paths.py [--batches 32,128,1024,full] [--sizes 784,128,10] [--epochs 8]

- "engine": the plain-SGD engine (``fastnn.engine.make_engine``, what ``bench/compare.py``
  times as "fastnn fast" for plain SGD), whose split epoch shares the first hidden layer's
  units between the workers at every batch size;
- "solver, momentum 0": the estimators' solver epoch with momentum 0, what
  ``MLPClassifier(solver="sgd", momentum=0)`` runs, whose workers share rows above 64 per batch.

Both with as many workers as ``fit`` would use; float32, ReLU, softmax, 60,000 MNIST-shaped
random rows, the same initial weights and lr 0.01. The first epoch of each is not counted.
Alternating within one process keeps a slow phase of a shared machine from landing on one
side only.
"""

import argparse
import time

import numpy as np

from fastnn._threads import default_blas_threads, thread_limits
from fastnn.engine import make_engine, network_of
from fastnn.layout import Layout
from fastnn.solvers import Optimizer, Problem, make_solver
from fastnn.split import split_workers

N = 60000


def epochs(sizes, batch):
    """``{name: callable running one epoch}`` for both ways, each on its own copy of θ."""
    rng = np.random.default_rng(0)
    X = rng.random((N, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], N)
    layout = Layout(sizes)
    start = np.random.default_rng(1).uniform(-0.05, 0.05, layout.size).astype(np.float32)
    shuffled = batch < N
    order = rng.permutation(N) if shuffled else np.arange(N)
    theta = start.copy()
    engine = make_engine("fast", X, y, network_of(layout.weights(theta), layout.biases(theta), "relu"), batch,
                         n_threads=default_blas_threads())

    def engine_epoch():
        with thread_limits(engine.blas_threads):  # as the trainer enters it, once per fit: untimed
            start_time = time.perf_counter()
            engine.epoch(order, 0.01)
            return time.perf_counter() - start_time

    theta = start.copy()
    problem = Problem(X, np.eye(sizes[-1], dtype=np.float32)[y], None, "log_loss", 0.0, layout, theta, "relu")
    solver = make_solver("fast", problem, batch, n_workers=split_workers(layout, default_blas_threads()))
    optimizer = Optimizer("momentum", theta, 0.01, momentum=0.0)

    def solver_epoch():
        start_time = time.perf_counter()
        solver.epoch(order if shuffled else None, optimizer)
        return time.perf_counter() - start_time

    return {"engine": engine_epoch, "solver, momentum 0": solver_epoch}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,128,1024,full")
    parser.add_argument("--sizes", default="784,128,10")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.sizes}, float32, {N} rows: ms per epoch, best / median of {args.epochs - 1}")
    for batch in args.batches.split(","):
        ways = epochs(sizes, N if batch == "full" else int(batch))
        times = {name: [] for name in ways}
        for _ in range(args.epochs):
            for name, epoch in ways.items():
                times[name].append(1e3 * epoch())
        cells = [f"{name} {min(t[1:]):.0f} / {np.median(t[1:]):.0f}" for name, t in times.items()]
        print(f"batch {batch}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
