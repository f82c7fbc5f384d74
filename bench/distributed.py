"""Seconds per epoch of data-parallel training (fastnn.distributed) with 1 and 2 MPI ranks, against one
process on the same cores.

    python bench/distributed.py [--epochs 3] [--rows 20000]

784-128-10 (float32, relu) on ``--rows`` MNIST-shaped synthetic samples, ``solver="sgd"`` (Nesterov)
and ``"adam"``, global batch 200 and 2000. For each case it prints the median epoch time
(``history_["time"]``, the epochs after an untimed fit that compiles or loads the kernels) of:

- ``1 process, 1 thread`` and ``1 process, 2 threads``: ``MLPClassifier.fit`` (BLAS threads);
- ``split 2 threads``: the split epoch of the fast engine (the tutorial's plain SGD, two threads
  sharing the first hidden layer's units, or each batch's rows from 512 rows up;
  ``fastnn.engine.make_engine``), at the same batch size;
- ``mpirun -n 1`` and ``mpirun -n 2``: ``fastnn.distributed.fit``, one BLAS thread per rank, the
  rows split in halves (the slowest rank's epoch);
- ``allreduce``: one ``Allreduce`` of the step's buffer (θ + 2 floats, 0.41 MB) between the ranks,
  and its share of the 2-rank epoch.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import describe  # bench/, run as a script

import fastnn

CASES = [(solver, batch) for solver in ("sgd", "adam") for batch in (200, 2000)]


def data(rows):
    rng = np.random.RandomState(0)
    X = rng.rand(rows, 784).astype(np.float32)
    y = rng.randint(0, 10, rows)
    return X, y


def estimator(solver, batch, epochs, **kw):
    return fastnn.MLPClassifier((128,), solver=solver, batch_size=batch, max_iter=epochs, random_state=0,
                                learning_rate_init=0.01 if solver == "sgd" else 0.001, tol=0,
                                n_iter_no_change=np.inf, **kw)


def median_epoch(model):
    return float(np.median(model.history_["time"]))


def worker(args):
    from mpi4py import MPI

    from fastnn.distributed import fit

    comm = MPI.COMM_WORLD
    X, y = data(args.rows)
    mine = np.array_split(np.arange(args.rows), comm.size)[comm.rank]
    out = {}
    warnings.simplefilter("ignore")
    for solver, batch in CASES:
        fit(estimator(solver, batch, 1), X[mine], y[mine], comm=comm)  # compile / load
        model = fit(estimator(solver, batch, args.epochs), X[mine], y[mine], comm=comm)
        out[f"{solver}-{batch}"] = comm.allreduce(median_epoch(model), op=MPI.MAX)
    buffer = np.zeros(model.coefs_[0].size + model.coefs_[1].size + 138 + 2, np.float32)
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(200):
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    out["allreduce"] = comm.allreduce((time.perf_counter() - start) / 200, op=MPI.MAX)
    out["buffer_bytes"] = buffer.nbytes
    if comm.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def single(args):
    from fastnn._threads import thread_limits
    from fastnn.engine import make_engine, network_of

    X, y = data(args.rows)
    out = {}
    warnings.simplefilter("ignore")
    for threads in (1, 2):
        for solver, batch in CASES:
            estimator(solver, batch, 1, n_threads=threads).fit(X, y)
            model = estimator(solver, batch, args.epochs, n_threads=threads).fit(X, y)
            out[f"{threads}-{solver}-{batch}"] = median_epoch(model)
    rng = np.random.RandomState(0)
    for batch in (200, 2000):
        W = [rng.randn(128, 784).astype(np.float32) * 0.05, rng.randn(10, 128).astype(np.float32) * 0.1]
        B = [np.zeros((128, 1), np.float32), np.zeros((10, 1), np.float32)]
        engine = make_engine("fast", X, y, network_of(W, B, "relu"), batch, n_threads=2)
        with thread_limits(engine.blas_threads):
            engine.epoch(None, 0.01)
            times = []
            for _ in range(args.epochs):
                order = rng.permutation(len(y))
                start = time.perf_counter()
                engine.epoch(order, 0.01)
                times.append(time.perf_counter() - start)
        out[f"split-{batch}"] = (float(np.median(times)), type(engine).__name__)
    return out


def mpirun(n, args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    mpi = Path(sys.executable).with_name("mpirun")
    done = subprocess.run([str(mpi), "-n", str(n), sys.executable, __file__, "--worker", "--epochs",
                           str(args.epochs), "--rows", str(args.rows)], env=env, capture_output=True,
                          text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(f"{describe()}; 784-128-10 float32, {args.rows} rows, "
          f"median of {args.epochs} epochs")
    one = single(args)
    ranks = {n: mpirun(n, args) for n in (1, 2)}
    print(f"{'case':<12}{'1 proc 1 thr':>14}{'1 proc 2 thr':>14}{'split 2 thr':>13}{'mpirun -n 1':>13}"
          f"{'mpirun -n 2':>13}{'2 ranks vs 1 thr':>18}")
    for solver, batch in CASES:
        key = f"{solver}-{batch}"
        split = f"{one[f'split-{batch}'][0]:.3f}" if solver == "sgd" else "-"
        print(f"{key:<12}{one[f'1-{key}']:>14.3f}{one[f'2-{key}']:>14.3f}{split:>13}{ranks[1][key]:>13.3f}"
              f"{ranks[2][key]:>13.3f}{one[f'1-{key}'] / ranks[2][key]:>17.2f}x")
    steps = {batch: -(-args.rows // batch) for batch in (200, 2000)}
    allreduce = ranks[2]["allreduce"]
    print(f"allreduce of {ranks[2]['buffer_bytes'] / 1e6:.2f} MB between 2 ranks (shared memory): "
          f"{allreduce * 1e3:.3f} ms per step; " + ", ".join(
              f"batch {b}: {steps[b]} steps = {steps[b] * allreduce:.3f} s/epoch "
              f"({100 * steps[b] * allreduce / ranks[2][f'sgd-{b}']:.0f}% of the sgd epoch)" for b in steps))
    print(f"split engine: {one['split-200'][1]}")


if __name__ == "__main__":
    main()
