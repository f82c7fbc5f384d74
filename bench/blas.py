"""Which BLAS should the kernels call? The scipy-openblas32 wheel against SciPy's own (and another).

    python bench/blas.py [--batches 32,128,1024] [--library PATH]

Each library runs in its own process (the kernels bind one at import,
:mod:`fastnn.kernels.blas`). For each batch size: one worker's share of the
first layer's GEMMs in the split epoch of a 784-128-10 network (64 units, one
BLAS thread), forward and fused update, summed over 60,000 samples, the operands on cache
lines as the engines allocate them (so in blocks where OpenBLAS's small-matrix kernels take
them: :func:`fastnn.kernels.blas._small_block`); then one
whole epoch of the engine ``make_engine`` picks (2 workers sharing units, or rows from 512
rows a batch up), best of three after a warm-up.
First, for scale, the library's one-thread rate on a 2048³ product. ``--library``: also the
library at ``PATH``, bound through ``FASTNN_BLAS`` (e.g. MKL's ``libmkl_rt.so.3``, which the
``mkl`` wheel puts in the environment's ``lib/``).
"""

import argparse
import os
import subprocess
import sys

RUN = """
import sys, time
if sys.argv[1] == "scipy":
    sys.modules["scipy_openblas32"] = None  # what fastnn falls back to without the wheel
import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits
from fastnn import reference
from fastnn._aligned import aligned_copy, aligned_empty
from fastnn.engine import make_engine, network_of
from fastnn.kernels import blas
from fastnn.kernels.network import _short_batch

N, N_IN, UNITS = 60000, 784, 64


@njit
def forward(X, W, out, reps):
    for _ in range(reps):
        blas._gemm(False, True, np.float32(1), X, W, np.float32(0), out)


@njit
def update(X, dZ, W, reps):
    for _ in range(reps):
        blas._inplace_gemm_update(X, dZ, W, np.float32(-1e-9))


def best(run):
    run()  # compile, warm up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


rng = np.random.default_rng(0)
cells = [blas.SOURCE]
batches = [int(b) for b in sys.argv[2].split(",")]
with threadpool_limits(1, user_api="blas"):
    big = rng.random((2048, 2048), dtype=np.float32)
    seconds = best(lambda: forward(big, big, np.empty_like(big), 1))
    cells.append(f"{2 * 2048 ** 3 / seconds / 1e9:.0f}")
    for batch in batches:
        # On cache lines, as the engines allocate them (fastnn/_aligned.py).
        X = aligned_copy(rng.random((batch, N_IN), dtype=np.float32))
        W = aligned_copy(rng.standard_normal((UNITS, N_IN), dtype=np.float32))
        dZ = aligned_copy(rng.standard_normal((batch, UNITS), dtype=np.float32))
        reps = N // batch
        # The forward as the kernels run it: W·Xᵀ for short batches (dense.py), else X·Wᵀ.
        if _short_batch(batch, UNITS):
            f = best(lambda: forward(W, X, aligned_empty((UNITS, batch), np.float32), reps))
        else:
            f = best(lambda: forward(X, W, aligned_empty((batch, UNITS), np.float32), reps))
        u = best(lambda: update(X, dZ, W, reps))
        cells.append(f"{f * 1e3:.1f} {u * 1e3:.1f}")
X = rng.random((N, N_IN), dtype=np.float32)
y = rng.integers(0, 10, N)
for batch in batches:
    w, b = reference.init_params([N_IN, 128, 10], "kaiming", np.random.default_rng(1), np.float32)
    engine = make_engine("fast", X, y, network_of(w, b, "relu"), batch, n_threads=2)
    with threadpool_limits(engine.blas_threads, user_api="blas"):
        cells.append(f"{best(lambda: engine.epoch(rng.permutation(N), 0.01)) * 1e3:.0f}")
print("|".join(cells))
"""


def run(library, batches):
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_BLAS"}
    if library not in ("wheel", "scipy"):
        env["FASTNN_BLAS"] = library
    out = subprocess.run([sys.executable, "-c", RUN, library, batches], capture_output=True,
                         text=True, check=True, env=env)
    return out.stdout.strip().split("|")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="32,128,1024")
    parser.add_argument("--library", help="a Fortran-interface BLAS to time as well (FASTNN_BLAS)")
    args = parser.parse_args()
    batches = args.batches.split(",")
    print("per 60,000 samples, one worker's share (64 units, 1 BLAS thread): forward / update GEMM ms;"
          " then a whole split epoch (2 workers) ms")
    print(f"{'library':<30}{'2048³, 1 thread':>18}" + "".join(f"{'batch ' + b:>16}" for b in batches)
          + "".join(f"{'epoch b' + b:>13}" for b in batches))
    for library in ("wheel", "scipy", *([args.library] if args.library else [])):
        source, peak, *cells = run(library, args.batches)
        gemms, epochs = cells[:len(batches)], cells[len(batches):]
        print(f"{os.path.basename(source):<30}{peak + ' GFLOP/s':>18}"
              + "".join(f"{c.replace(' ', ' / '):>16}" for c in gemms)
              + "".join(f"{c:>13}" for c in epochs), flush=True)


if __name__ == "__main__":
    main()
