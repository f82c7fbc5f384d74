"""Plain SGD three ways, in one process, their epochs alternating: ms per epoch, best and median.

    python bench/plain_sgd_paths.py [--batches 32,128,256,512,1024,full] [--sizes 784,128,10] [--epochs 8]
                                    [--as-stored] [--piece-rows 64,256,512]

- "units": the plain-SGD engine whose workers share the first hidden layer's units
  (``fastnn.split.SplitEngine``);
- "rows": the plain-SGD engine whose workers share each batch's rows
  (``fastnn.rows.RowsEngine``); ``fastnn.engine.make_engine`` (what ``bench/compare.py``
  times as "fastnn fast" for plain SGD) picks it from ``fastnn.rows.MIN_ROW_SHARING_ROWS``
  rows up, "units" below; it cuts each batch into pieces of ``fastnn.rows.default_piece_rows``
  rows that the workers take as they come free; ``--piece-rows`` adds it and the solver below
  with pieces of other sizes ("pieces of 64" at batch 1024: the pieces before 2026-11-28, 103
  rows after the cap by bytes);
- "solver, momentum 0": the estimators' solver epoch with momentum 0, what
  ``MLPClassifier(solver="sgd", momentum=0)`` runs, whose workers share rows above 64 per batch
  (built as ``bench/compare.py`` builds it, ``bench/_peers.py``).

Each with as many workers as ``fit`` would use (``fastnn.split.split_workers``); float32, ReLU,
softmax, 60,000 MNIST-shaped random rows, the same initial weights, batch order and lr 0.01 (at
full batch the rows as stored, no gather; ``--as-stored``: every batch so, which leaves out the
gather and shows what smaller batches of the same rows cost, e.g. against a full batch's
passes over activations too large for the cache). The first epoch of each is not counted.
Alternating within one process keeps a slow phase of a shared machine from landing on one
side only.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._peers import Rule, engine_epoch, limits, make_fast, synthetic  # noqa: E402
from fastnn._threads import default_blas_threads  # noqa: E402
from fastnn.engine import network_of  # noqa: E402
from fastnn.rows import RowsEngine  # noqa: E402
from fastnn.split import SplitEngine, split_workers  # noqa: E402

N = 60000
MOMENTUM_0 = Rule("momentum", momentum=0.0)  # what MLPClassifier(solver="sgd", momentum=0) runs
ENGINES = {"units": SplitEngine, "rows": RowsEngine}


def split_epoch(cls, X, y, batch, weights, biases, **options):
    """An epoch of the plain-SGD engine ``cls`` with as many workers as fit would use."""
    net = network_of(weights, biases, "relu")
    engine = cls(X, y, net, batch, n_workers=split_workers(net.layout, default_blas_threads()), **options)
    return engine_epoch(engine, 0.01)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,128,256,512,1024,full")
    parser.add_argument("--sizes", default="784,128,10")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--as-stored", action="store_true", help="every batch's rows as stored, no gather")
    parser.add_argument("--piece-rows", default="",
                        help="the rows engine and the solver epoch also with pieces of these sizes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng, X, y, weights, biases = synthetic(N, sizes)
    print(f"{args.sizes}, float32, {N} rows: ms per epoch, best / median of {args.epochs - 1}")
    for batch in args.batches.split(","):
        size = N if batch == "full" else int(batch)
        # Full batch: the rows as stored, as fit takes them.
        order = None if batch == "full" or args.as_stored else rng.permutation(N)
        epochs = {name: split_epoch(cls, X, y, size, weights, biases) for name, cls in ENGINES.items()}
        epochs["solver, momentum 0"] = make_fast(X, y, sizes, size, 0.01, weights, biases, rule=MOMENTUM_0)[0]
        for rows in map(int, filter(None, args.piece_rows.split(","))):
            epochs[f"rows, pieces of {rows}"] = split_epoch(RowsEngine, X, y, size, weights, biases,
                                                            piece_rows=rows)
            epochs[f"solver, pieces of {rows}"] = make_fast(X, y, sizes, size, 0.01, weights, biases,
                                                            rule=MOMENTUM_0, piece_rows=rows)[0]
        times = {name: [] for name in epochs}
        for _ in range(args.epochs):
            for name, epoch in epochs.items():
                with limits(epoch):  # each way's thread model, entered untimed as fit enters it
                    start = time.perf_counter()
                    epoch(order)
                    times[name].append(1e3 * (time.perf_counter() - start))
        cells = [f"{name} {min(t[1:]):.0f} / {np.median(t[1:]):.0f}" for name, t in times.items()]
        print(f"batch {batch}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
