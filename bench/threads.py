"""Who should own the cores? Times one fast-engine epoch under each thread setting.

    python bench/threads.py [--batches 32,128,1024]

For each batch size: the serial kernel build (the default) with 1 or 2 BLAS
threads, the ``parallel=True`` build (``FASTNN_PARALLEL_KERNELS=1``) with
every combination of 1 or 2 BLAS and Numba threads, and the split epoch
(:mod:`fastnn.kernels.split`: 2 worker threads over one-thread BLAS, what
``fit`` runs for this network). Each setting runs in its own
process (the build is fixed at import). Model 784-128-10, 60,000 synthetic
samples, float32; one warm-up epoch, then the best of two.

Then the data-parallel alternative for small batches, where OpenBLAS keeps a
GEMM on one core: the batch-32 forward GEMM ``W·Xᵀ`` split in two halves of
``W``'s rows across ``prange`` workers, each calling one-thread BLAS, against
one serial call, in Numba's default threading layer and in ``workqueue``.
"""

import argparse
import itertools
import os
import subprocess
import sys

EPOCH = """
import sys, time, numba, numpy as np
from threadpoolctl import threadpool_limits
from fastnn import reference
from fastnn.engine import make_engine, network_of
batch, blas, workers, split = map(int, sys.argv[1:5])
rng = np.random.default_rng(0)
X = rng.random((60000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60000)
w, b = reference.init_params([784, 128, 10], "kaiming", np.random.default_rng(1), np.float32)
engine = make_engine("fast", X, y, network_of(w, b, "relu"), batch, n_threads=split)
assert engine.n_workers == split
with threadpool_limits(blas, user_api="blas"):
    numba.set_num_threads(workers)
    times = []
    for _ in range(3):
        order = rng.permutation(60000)
        start = time.perf_counter()
        engine.epoch(order, 0.01)
        times.append(time.perf_counter() - start)
print(min(times[1:]))
"""


SPLIT = """
import sys, time, numpy as np
from numba import njit, prange, threading_layer
from threadpoolctl import threadpool_limits


@njit(parallel=True)
def split(X, W, Zt, reps):
    half = W.shape[0] // 2
    for _ in range(reps):
        for k in prange(2):
            np.dot(W[k * half:(k + 1) * half], X.T, Zt[k * half:(k + 1) * half])


@njit
def serial(X, W, Zt, reps):
    for _ in range(reps):
        np.dot(W, X.T, Zt)


rng = np.random.default_rng(0)
X, W = rng.random((32, 784), dtype=np.float32), rng.random((128, 784), dtype=np.float32)
Zt, reps = np.empty((128, 32), np.float32), 200
with threadpool_limits(1, user_api="blas"):
    for f in (split, serial):
        f(X, W, Zt, 1)
        start = time.perf_counter()
        f(X, W, Zt, reps)
        print(f.__name__, threading_layer(), (time.perf_counter() - start) / reps)
"""


def run_split(layer):
    env = dict(os.environ)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run([sys.executable, "-c", SPLIT], capture_output=True, text=True,
                         check=True, env=env)
    return [line.split() for line in out.stdout.splitlines()]


def run(batch, blas, workers, parallel, split):
    env = dict(os.environ, FASTNN_PARALLEL_KERNELS="1" if parallel else "0")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", EPOCH, str(batch), str(blas), str(workers), str(split)],
                         capture_output=True, text=True, check=True, env=env)
    return float(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="32,128,1024")
    args = parser.parse_args()
    settings = [("serial kernels", b, 1, False, 1) for b in (1, 2)]
    settings += [("parallel kernels", b, w, True, 1) for b, w in itertools.product((1, 2), (1, 2))]
    settings += [("split, 2 workers", 1, 1, False, 2)]
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{'build':<18}{'BLAS':>5}{'Numba':>6}" + "".join(f"{'batch ' + str(b):>13}" for b in batches))
    for name, blas, workers, parallel, split in settings:
        cells = [f"{run(b, blas, workers, parallel, split) * 1e3:10.0f} ms" for b in batches]
        shown_workers = workers if parallel else "-"
        print(f"{name:<18}{blas:>5}{shown_workers:>6}" + "".join(f"{c:>13}" for c in cells), flush=True)
    print("\nbatch-32 forward GEMM, per call (1-thread BLAS):")
    for layer in (None, "workqueue"):
        for name, used, seconds in run_split(layer):
            print(f"  {name:<7} ({used} layer): {float(seconds) * 1e6:9.1f} us")


if __name__ == "__main__":
    main()
