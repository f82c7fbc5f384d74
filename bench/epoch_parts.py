"""An epoch against its floor, part by part: its GEMMs alone, its gather alone, both, and the epoch.

    python bench/epoch_parts.py [--batches 128,1024,full] [--rounds 5]

784-128-10, float32, ReLU, softmax, 60,000 random rows, two workers sharing each batch's rows
in the pieces the engines cut (:func:`fastnn.rows.pieces_of`; worker ``w`` takes pieces ``w``,
``w + 2``, …). Each part runs on both cores at once, one thread each with one-thread BLAS:

- **GEMMs**: the five products of each of the worker's pieces as the kernels call them
  (:func:`fastnn.kernels.blas._gemm`, so in the blocks and chunks the engines get; the first
  layer's forward reading ``W[0]ᵀ`` where the engines do), from a piece of rows already in the
  cache, and nothing else: what the epoch would take if the GEMMs were all it did;
- **gather**: each piece's rows copied from the epoch's shuffled order into the worker's
  buffer (``_gather_rows``), and nothing else (a full batch is taken as stored: none);
- **both**: each piece gathered, then its GEMMs;
- **epoch**: the rows engine's plain-SGD epoch (:class:`fastnn.rows.RowsEngine`), and the
  estimators' solver epoch with Nesterov's momentum, as ``bench/compare.py`` builds them.

Every part over the floor of ``bench/compare.py`` (the epoch's GEMM FLOPs at the rate of a
float32 2048³ ``np.matmul`` on every core, timed in each round), best and median of the
rounds, the ratio taken in each round. ``GEMMs`` over the floor is what the products cost at
this epoch's shapes; what ``epoch`` adds to ``both`` is the element-wise passes, the sum of the
pieces' gradients, the update and the waits at barriers.
"""

import argparse
import os
import sys
import threading
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._peers import Rule, engine_epoch, make_fast, synthetic  # noqa: E402
from bench.compare import copy_bandwidth, flops_per_sample, gemm_rate, print_environment  # noqa: E402
from fastnn._aligned import aligned_copy, aligned_empty  # noqa: E402
from fastnn._threads import thread_limits  # noqa: E402
from fastnn.engine import network_of  # noqa: E402
from fastnn.kernels.blas import _gemm  # noqa: E402
from fastnn.kernels.epoch import _gather_rows  # noqa: E402
from fastnn.kernels.network import _share, transposes_weights  # noqa: E402
from fastnn.kernels.rows import _pieces  # noqa: E402
from fastnn.layout import Layout  # noqa: E402
from fastnn.rows import RowsEngine, pieces_of  # noqa: E402

N, SIZES, WORKERS, LR = 60_000, [784, 128, 10], 2, 0.01


@njit(nogil=True)
def piece_gemms(X, W0, W0t, W1, A1, Z2, dA1, dW0, dW1, transposed):
    """One piece's products, in the forms the engines call them."""
    if transposed:
        _gemm(False, False, 1.0, X, W0t, 0.0, A1)
    else:
        _gemm(False, True, 1.0, X, W0, 0.0, A1)
    _gemm(False, True, 1.0, A1, W1, 0.0, Z2)
    _gemm(True, False, 1.0, Z2, A1, 0.0, dW1)
    _gemm(False, False, 1.0, Z2, W1, 0.0, dA1)
    _gemm(True, False, 1.0, dA1, X, 0.0, dW0)


@njit(nogil=True)
def share_of_epoch(X, order, bounds, buffers, weights, transposed, gather, gemms):
    """A worker's pieces (rows ``order[lo:hi]`` for each ``(lo, hi)`` in ``bounds``): gathered into
    ``buffers[0]`` if ``gather``, then their products if ``gemms``."""
    W0, W0t, W1 = weights
    Xb, A1, Z2, dA1, dW0, dW1 = buffers
    for i in range(bounds.shape[0]):
        lo, hi = bounds[i, 0], bounds[i, 1]
        m = hi - lo
        if gather:
            _gather_rows(X, order[lo:hi], Xb[:m])
        if gemms:
            piece_gemms(Xb[:m], W0, W0t, W1, A1[:m], Z2[:m], dA1[:m], dW0, dW1, transposed)


def worker_bounds(batch, n_pieces_cap, piece_rows):
    """Each worker's pieces of an epoch as rows ``(lo, hi)`` of the epoch's order."""
    bounds = [[] for _ in range(WORKERS)]
    for start in range(0, N, batch):
        m = min(batch, N - start)
        n_pieces = _pieces(m, piece_rows, n_pieces_cap)
        for p in range(n_pieces):
            lo, hi = _share.py_func(m, p, n_pieces)
            bounds[p % WORKERS].append((start + lo, start + hi))
    return [np.array(b, dtype=np.int64).reshape(-1, 2) for b in bounds]


def make_parts(X, batch, weights):
    """``name -> epoch(order)`` for the parts that run on both cores, for batches of ``batch``."""
    layout = Layout(SIZES)
    piece_rows, n_pieces, largest = pieces_of(batch, layout.size, 4)
    bounds = worker_bounds(batch, n_pieces, piece_rows)
    transposed = bool(transposes_weights(layout.table, batch, np.float32))
    # On cache lines, as θ and the engines' W[0]ᵀ copy are.
    shared = tuple(aligned_copy(w, np.float32) for w in (weights[0], weights[0].T, weights[1]))

    def buffers():
        return tuple(aligned_empty(shape, np.float32) for shape in
                     [(largest, SIZES[0]), (largest, SIZES[1]), (largest, SIZES[2]), (largest, SIZES[1]),
                      (SIZES[1], SIZES[0]), (SIZES[2], SIZES[1])])

    own = [buffers() for _ in range(WORKERS)]
    for worker in range(WORKERS):  # a piece of rows in each worker's buffer, for the GEMMs alone
        own[worker][0][:] = X[:largest]

    def part(gather, gemms):
        def epoch(order):
            rows = np.arange(N) if order is None else order
            threads = [threading.Thread(target=share_of_epoch,
                                        args=(X, rows, bounds[w], own[w], shared, transposed, gather, gemms))
                       for w in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        epoch.blas_threads = 1
        return epoch

    parts = {"GEMMs": part(False, True)}
    if batch < N:  # a full batch is taken as stored: no gather
        parts["gather"] = part(True, False)
        parts["both"] = part(True, True)
    return parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="128,1024,full")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_environment(gemm_rate(), copy_bandwidth())
    rng, X, y, weights, biases = synthetic(N, SIZES)
    flops = N * flops_per_sample(SIZES)
    print(f"784-128-10, float32, {N} rows, {WORKERS} workers; each part over the floor, best / median of "
          f"{args.rounds} rounds (ms: the best)")
    for batch_name in args.batches.split(","):
        batch = N if batch_name == "full" else int(batch_name)
        order = None if batch == N else rng.permutation(N)
        epochs = make_parts(X, batch, weights)
        net = network_of(weights, biases, "relu")
        epochs["epoch, plain SGD"] = engine_epoch(RowsEngine(X, y, net, batch, n_workers=WORKERS), LR)
        nesterov = make_fast(X, y, SIZES, batch, LR, weights, biases, rule=Rule("nesterov"))
        epochs["epoch, Nesterov"] = nesterov[0]
        ratios = {name: [] for name in epochs}
        times = {name: [] for name in epochs}
        for _ in range(args.rounds + 1):  # the first round warms up, uncounted
            # Whatever ran first after the floor's product (NumPy's BLAS on both cores) ran up to a
            # fifth slower, even half a second later: an untimed epoch of the first part comes first.
            first = next(iter(epochs.values()))
            with thread_limits(1):
                first(order)
            for name, epoch in epochs.items():
                with thread_limits(getattr(epoch, "blas_threads", None)):
                    start = time.perf_counter()
                    epoch(order)
                    times[name].append(time.perf_counter() - start)
            floor = flops / gemm_rate()
            for name in epochs:
                ratios[name].append(times[name][-1] / floor)
        cells = [f"{name} {min(r[1:]):.2f} / {np.median(r[1:]):.2f} ({1e3 * min(times[name][1:]):.0f})"
                 for name, r in ratios.items()]
        print(f"batch {batch_name}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
