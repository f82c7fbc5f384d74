"""GEMMs whole or in blocks for OpenBLAS's small-matrix kernels: ms per epoch, in one process.

    python bench/gemm_blocks.py [--batches 32,128,1024,full] [--rules sgd,nesterov,adam] [--epochs 7]
                                [--dtype float32] [--chunks]

Where the kernels' OpenBLAS runs an AVX-512 core, ``fastnn.kernels.blas._gemm`` splits a
product that OpenBLAS would pack whole into blocks of rows that its small-matrix kernels
take in place. The kernels read the switch ``fastnn.kernels.blas.small_kernels`` at run
time, so here the same epochs alternate with it off ("whole") and on ("blocks", float32 products
over the batch also in chunks of its rows: ``fastnn.kernels.blas._inner_chunk``); ``--chunks``:
blocks in both, the products over the batch whole ("blocks, no chunks") or in chunks. Plain SGD
on the plain-SGD engine ``make_engine`` picks, SGD with Nesterov's momentum and Adam on the
estimators' solver epoch, as ``bench/compare.py`` builds them (784-128-10, ReLU, float32 or
``--dtype float64``, scikit-learn's, 60,000 random rows, as many workers as ``fit`` uses; the
same batch order for both). Best and median of the epochs after the first. Elsewhere
(another core, another BLAS) "blocks" runs OpenBLAS's other kernels in blocks, which fastnn
does not do by default.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._machine import describe  # noqa: E402
from bench._peers import PLAIN, Rule, limits, make_fast, synthetic  # noqa: E402
from fastnn.kernels import blas  # noqa: E402

N, SIZES = 60_000, [784, 128, 10]
# Each way: the switches fastnn.kernels.blas.small_kernels and inner_chunks.
WAYS = {"whole": (0, 1), "blocks": (1, 1)}
CHUNK_WAYS = {"blocks, no chunks": (1, 0), "blocks and chunks": (1, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,128,1024,full")
    parser.add_argument("--rules", default="sgd,nesterov,adam")
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--chunks", action="store_true", help="blocks in both, chunks or not")
    args = parser.parse_args()
    print(f"CPU: {describe()}; the kernels' OpenBLAS core: {blas.CORE}")
    rng, X, y, weights, biases = synthetic(N, SIZES)
    X, weights, biases = X.astype(args.dtype), [w.astype(args.dtype) for w in weights], \
        [b.astype(args.dtype) for b in biases]
    print(f"{'-'.join(map(str, SIZES))}, {args.dtype}, {N} rows: ms per epoch, best / median of "
          f"{args.epochs - 1}")
    ways = CHUNK_WAYS if args.chunks else WAYS
    default = blas.small_kernels.value
    try:
        for rule in args.rules.split(","):
            for batch in args.batches.split(","):
                size = N if batch == "full" else int(batch)
                lr = 0.001 if rule == "adam" else 0.01
                epoch = make_fast(X, y, SIZES, size, lr, weights, biases,
                                  rule=PLAIN if rule == "sgd" else Rule(rule))[0]
                order = rng.permutation(N)
                times = {way: [] for way in ways}
                with limits(epoch):
                    for _ in range(args.epochs):
                        for way, (small, chunks) in ways.items():
                            blas.small_kernels.value, blas.inner_chunks.value = small, chunks
                            start = time.perf_counter()
                            epoch(order)
                            times[way].append(1e3 * (time.perf_counter() - start))
                cells = [f"{way} {min(t[1:]):.0f} / {np.median(t[1:]):.0f}" for way, t in times.items()]
                print(f"  {rule:<9} batch {batch:<5} " + ", ".join(cells), flush=True)
    finally:
        blas.small_kernels.value, blas.inner_chunks.value = default, 1


if __name__ == "__main__":
    main()
