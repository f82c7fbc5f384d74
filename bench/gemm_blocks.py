"""GEMMs whole or in blocks for OpenBLAS's small-matrix kernels: ms per epoch, in one process.

    python bench/gemm_blocks.py [--batches 32,128,1024,full] [--rules sgd,nesterov,adam] [--epochs 7]
                                [--dtype float32] [--sizes 784,128,10] [--chunks | --transposed]

Where the kernels' OpenBLAS runs an AVX-512 core, ``fastnn.kernels.blas._gemm`` splits a
product that OpenBLAS would pack whole into blocks of rows that its small-matrix kernels
take in place. The kernels read the switch ``fastnn.kernels.blas.small_kernels`` at run
time, so here epochs alternate with it off ("whole") and on ("blocks", float32 products
over the batch also in chunks of its rows: ``fastnn.kernels.blas._inner_chunk``, and the
first layer's forward reading ``W[0]ᵀ`` at large batches: ``fastnn.kernels.network.transposes_weights``);
``--chunks``: blocks in both, the products over the batch whole ("blocks, no chunks") or in
chunks; ``--transposed``: blocks and chunks in both, the forward reading ``W[0]`` as stored or
``W[0]ᵀ`` copied once a step, in chunks of its inputs (the switch ``blas.input_chunks``). Each
way has an engine of its own, built with its switches, the same initial weights and batch order.
Plain SGD on the plain-SGD engine ``make_engine`` picks, SGD with Nesterov's momentum and Adam
on the estimators' solver epoch, as ``bench/compare.py`` builds them (784-128-10 or ``--sizes``,
ReLU, float32 or ``--dtype float64``, scikit-learn's, 60,000 random rows, as many workers as
``fit`` uses). Best and median of the epochs after the first. Elsewhere
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

N = 60_000
# Each way: the switches fastnn.kernels.blas.small_kernels, inner_chunks and input_chunks.
WAYS = {"whole": (0, 1, 1), "blocks": (1, 1, 1)}
CHUNK_WAYS = {"blocks, no chunks": (1, 0, 1), "blocks and chunks": (1, 1, 1)}
TRANSPOSED_WAYS = {"W[0] as stored": (1, 1, 0), "W[0]ᵀ a step": (1, 1, 1)}
SWITCHES = (blas.small_kernels, blas.inner_chunks, blas.input_chunks)


def switch(way):
    for flag, value in zip(SWITCHES, way):
        flag.value = value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,128,1024,full")
    parser.add_argument("--rules", default="sgd,nesterov,adam")
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", default="784,128,10")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--chunks", action="store_true", help="blocks in both, chunks or not")
    modes.add_argument("--transposed", action="store_true", help="blocks and chunks in both, W[0]ᵀ or not")
    args = parser.parse_args()
    print(f"CPU: {describe()}; the kernels' OpenBLAS core: {blas.CORE}")
    sizes = [int(s) for s in args.sizes.split(",")]
    rng, X, y, weights, biases = synthetic(N, sizes)
    X, weights, biases = X.astype(args.dtype), [w.astype(args.dtype) for w in weights], \
        [b.astype(args.dtype) for b in biases]
    print(f"{'-'.join(map(str, sizes))}, {args.dtype}, {N} rows: ms per epoch, best / median of "
          f"{args.epochs - 1}")
    ways = CHUNK_WAYS if args.chunks else TRANSPOSED_WAYS if args.transposed else WAYS
    default = tuple(flag.value for flag in SWITCHES)
    try:
        for rule in args.rules.split(","):
            for batch in args.batches.split(","):
                size = N if batch == "full" else int(batch)
                lr = 0.001 if rule == "adam" else 0.01
                epochs = {}
                for way in ways.values():  # each its own engine: the switches also steer its buffers
                    switch(way)
                    epochs[way] = make_fast(X, y, sizes, size, lr, weights, biases,
                                            rule=PLAIN if rule == "sgd" else Rule(rule))[0]
                order = rng.permutation(N)
                times = {way: [] for way in ways}
                with limits(next(iter(epochs.values()))):  # the same threads every way
                    for _ in range(args.epochs):
                        for name, way in ways.items():
                            switch(way)
                            start = time.perf_counter()
                            epochs[way](order)
                            times[name].append(1e3 * (time.perf_counter() - start))
                cells = [f"{way} {min(t[1:]):.0f} / {np.median(t[1:]):.0f}" for way, t in times.items()]
                print(f"  {rule:<9} batch {batch:<5} " + ", ".join(cells), flush=True)
    finally:
        switch(default)


if __name__ == "__main__":
    main()
