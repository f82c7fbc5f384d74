"""Where a two-worker epoch loses time: one worker's share run alone, and two shares at once.

    python bench/worker_alone.py [--batch 1024] [--epochs 8]     (Linux: it pins processes to cores)

For the plain-SGD engine ``make_engine`` picks at ``--batch`` (784-128-10, float32, ReLU, 60,000
random rows): its epoch with two workers; then one worker's share of it as an engine of its
own with one worker (from ``fastnn.rows.MIN_ROW_SHARING_ROWS`` rows up: half the rows at half
the batch; below: 64 of the 128 units, on all rows), in a process pinned to one core ("alone",
on each core in turn), and in two processes at once, pinned to cores 0 and 1 ("two at once":
what sharing the machine costs, with no barrier between them). Each with the batches shuffled
(gathered) and with the rows as stored (no gather). First, each core's one-thread 2048³
float32 GEMM rate, in turn: whether one core is the slower. ms per epoch, best / median of the
epochs after the first.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._peers import engine_epoch, limits, synthetic  # noqa: E402
from bench.compare import gemm_rate  # noqa: E402
from fastnn.engine import network_of  # noqa: E402
from fastnn.rows import MIN_ROW_SHARING_ROWS, RowsEngine, pieces_of  # noqa: E402
from fastnn.split import SplitEngine  # noqa: E402

N = 60_000


def engine(share, batch):
    """The engine and its rows: the two-worker epoch, or (``share``) one worker's part of it."""
    rows = batch >= MIN_ROW_SHARING_ROWS
    units = 64 if share and not rows else 128
    rng, X, y, weights, biases = synthetic(N, [784, units, 10])
    net = network_of(weights, biases, "relu")
    if not rows:
        return rng, SplitEngine(X, y, net, batch, n_workers=1 if share else 2)
    if not share:
        return rng, RowsEngine(X, y, net, batch, n_workers=2)
    # Half the rows in half the batch, cut into pieces of the rows the two workers' pieces have.
    piece_rows = pieces_of(batch, net.layout.size, X.itemsize)[0]
    return rng, RowsEngine(X[:N // 2].copy(), y[:N // 2].copy(), net, batch // 2, n_workers=1,
                           piece_rows=piece_rows)


def timed_epochs(share, batch, epochs):
    rng, eng = engine(share, batch)
    epoch = engine_epoch(eng, 0.01)
    cells = []
    for label, order in (("shuffled", rng.permutation(eng.X.shape[0])), ("as stored", None)):
        times = []
        with limits(epoch):
            for _ in range(epochs):
                start = time.perf_counter()
                epoch(order)
                times.append(1e3 * (time.perf_counter() - start))
        cells.append(f"{label} {min(times[1:]):.0f} / {np.median(times[1:]):.0f}")
    return ", ".join(cells)


def core_rates():
    """Each core's one-thread :func:`bench.compare.gemm_rate` (the affinity is this thread's:
    BLAS limited to it)."""
    rates = []
    with threadpool_limits(1):
        for core in (0, 1):
            os.sched_setaffinity(0, {core})
            rates.append(f"core {core} {gemm_rate() / 1e9:.0f}")
    os.sched_setaffinity(0, {0, 1})
    return ", ".join(rates) + " GFLOP/s"


def child(args, core):
    command = [sys.executable, __file__, "--batch", str(args.batch), "--epochs", str(args.epochs),
               "--share-on", str(core)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--share-on", type=int, help=argparse.SUPPRESS)  # a child: one share, pinned
    args = parser.parse_args()
    if args.share_on is not None:
        os.sched_setaffinity(0, {args.share_on})
        print(timed_epochs(True, args.batch, args.epochs), flush=True)
        return
    print(f"one-thread 2048³ GEMM, core by core: {core_rates()}", flush=True)
    print(f"batch {args.batch}, ms per epoch, best / median of {args.epochs - 1}")
    print(f"  two workers:            {timed_epochs(False, args.batch, args.epochs)}", flush=True)
    for core in (0, 1):
        print(f"  one share alone, core {core}: {child(args, core).communicate()[0].strip()}", flush=True)
    pair = [child(args, core) for core in (0, 1)]
    for core, process in enumerate(pair):
        print(f"  two at once, core {core}:     {process.communicate()[0].strip()}", flush=True)


if __name__ == "__main__":
    main()
