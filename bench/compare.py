"""Side by side: ms per training epoch of fastnn and its peers, in one run.

    python bench/compare.py [--repeats 3] [--batches 32,128,1024] [--rules sgd,nesterov,adam] [--deep]

Model 784-128-10 (ReLU, softmax, cross-entropy, float32) on 60,000 MNIST-shaped
synthetic samples (``--deep``: also 784-256-128-10 at batch 32 and 1024, plain SGD), one
table per update rule (plain SGD at 0.01, SGD with Nesterov's momentum 0.9 at 0.01,
Adam at 0.001, every peer running the same rule: ``bench/_peers.py``); every
implementation starts from the same weights and trains on the same batch order
(scikit-learn shuffles with its own generator). fastnn runs plain
SGD on its plain-SGD engines (the split epoch), the other rules on the estimators'
solver epoch. Each of ``--repeats`` rounds runs every implementation for an
untimed and a timed epoch; the table shows the best timed epoch, and under it fastnn fast's
ratio to each round's own floor and how far it is ahead of each round's fastest peer (the
median and range over the rounds: epochs of one round run seconds apart, where each
implementation's best can come from a different phase of a shared machine).
The floor is the FLOPs of an epoch at the float32 GEMM rate of a 2048³ ``np.matmul`` on
every core, timed in each round beside the implementations (the fastest of a table's rounds).
Also: full-batch gradient descent, a tiny 64-32-10 network on the digits, and
first-fit time in a fresh process with a warm and a cold kernel cache.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._machine import describe  # noqa: E402
from bench._peers import OPTIONAL, PEERS, PLAIN, Rule, limits  # noqa: E402
from fastnn import reference  # noqa: E402
from fastnn.datasets import load_digits  # noqa: E402

LR = 0.01
RULES = {"sgd": (PLAIN, LR), "nesterov": (Rule("nesterov"), LR), "adam": (Rule("adam"), 0.001)}


def flops_per_sample(sizes):
    """Forward GEMMs, every dW GEMM and every dA GEMM but the input layer's: 2 flops a MAC."""
    macs = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(macs) + sum(macs[1:]))


# Variables that limit the instruction set of the kernels (Numba's target) and the peers' libraries.
ISA_LIMITS = ("NUMBA_CPU_NAME", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
              "XLA_FLAGS")

GEMM_N = 2048
GEMM = "2048³ GEMM"  # timed in every round of a table, beside the implementations


def gemm_epoch():
    """An "epoch" (any order) that is one float32 ``GEMM_N``³ ``np.matmul`` on every core."""
    a = np.random.default_rng(0).random((GEMM_N, GEMM_N), dtype=np.float32)
    return lambda order: a @ a


def gemm_rate(repeats=3):
    product = gemm_epoch()
    product(None)
    return 2 * GEMM_N ** 3 / min(_timed(lambda: product(None)) for _ in range(repeats))


def copy_bandwidth(n_bytes=256 * 2**20, repeats=3):
    """Bytes per second read plus written by a large array copy: the batch gather is
    bound by it, and on a shared machine it varies more than the GEMM rate."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats + 1))
    return 2 * n_bytes / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_epochs(makers, X, y, sizes, batch, repeats, seed=0, rule="sgd", gemm=False):
    """The timed epoch of each round, in round order, for each of ``makers`` (name -> make),
    and with ``gemm`` of the :data:`GEMM` product, timed in the same rounds (under :data:`GEMM`).

    Each round gives every implementation one untimed epoch, then a timed one:
    rounds spread a slow spell of the machine over all of them, and the untimed
    epoch lets the previous implementation's idle threads (OpenBLAS, XLA and
    PyTorch pools spin for a while after their work) go to sleep first.
    """
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(seed), np.float32)
    rng = np.random.default_rng(seed + 1)
    orders = [rng.permutation(len(X)) for _ in range(repeats + 1)]
    update, lr = RULES[rule]
    epochs = {name: make(X, y, sizes, batch, lr, weights, biases, rule=update)[0]
              for name, make in makers.items()}
    if gemm:
        epochs[GEMM] = gemm_epoch()
    times = {name: [] for name in epochs}
    for warm, order in zip(orders, orders[1:]):
        for name, epoch in epochs.items():
            # Each implementation's thread model, entered untimed as fit enters it once.
            with limits(epoch):
                epoch(warm)
                times[name].append(_timed(lambda: epoch(order)))
    return times


def same_round_margins(times, name="fastnn fast"):
    """How much longer the fastest peer's epoch took than ``name``'s, round by round (0.1:
    10% longer): each round's epochs run within seconds of each other, where the best of
    each implementation's rounds can come from different phases of a shared machine."""
    peers = [other for other in times if not other.startswith("fastnn")]
    return [min(times[peer][r] for peer in peers) / own - 1 for r, own in enumerate(times[name])]


def available(name):
    module = OPTIONAL.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def print_environment(rate, bandwidth):
    print(f"machine: {describe()}; numpy {np.__version__}, numba {numba.__version__}")
    for pool in threadpool_info():
        print(f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
              f"kernel={pool.get('architecture')} threads={pool['num_threads']} ({pool['prefix']})")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        print(f"  {var}={os.environ.get(var, '(unset)')}")
    # Set, these run fastnn and the peers on fewer instructions than the CPU has (README, "AVX2").
    for var in ISA_LIMITS:
        if var in os.environ:
            print(f"  {var}={os.environ[var]}")
    print(f"  float32 GEMM rate (2048³ np.matmul), at the start: {rate / 1e9:.0f} GFLOP/s; "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s")


def mnist_table(batches, repeats, names, rule, sizes=(784, 128, 10)):
    """One table; its floor from the fastest :data:`GEMM` of its rounds: a rate taken once can
    fall in a slow phase of a shared machine (2026-11-27, one machine, within an hour: 185 to
    295 GFLOP/s at the start of a run)."""
    rng = np.random.default_rng(0)
    n, sizes = 60_000, list(sizes)
    X = rng.random((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], n)
    rounds = [time_epochs({name: PEERS[name] for name in names}, X, y, sizes, batch or n, repeats, rule=rule,
                          gemm=True) for batch in batches]
    rates = [[2 * GEMM_N ** 3 / t for t in column.pop(GEMM)] for column in rounds]  # FLOP/s, by round
    rate = max(map(max, rates))
    columns = [{name: min(times) for name, times in column.items()} for column in rounds]
    flops = flops_per_sample(sizes) * n
    floor = flops / rate
    network = "-".join(map(str, sizes))
    print(f"\nMLP {network}, {n} samples, float32, {rule} (lr {RULES[rule][1]}): ms per epoch (ratio to the "
          f"floor, {floor * 1e3:.0f} ms = {flops_per_sample(sizes) / 1e6:.3f} MFLOP/sample at "
          f"{rate / 1e9:.0f} GFLOP/s, the fastest {GEMM} of the table's rounds)")
    header = f"{'implementation':<18}" + "".join(f"{'batch ' + str(b or 'full'):>18}" for b in batches)
    print(header)
    for name in names:
        cells = [f"{column[name] * 1e3:8.0f} ({column[name] / floor:4.2f}x)" for column in columns]
        print(f"{name:<18}" + "".join(f"{c:>18}" for c in cells), flush=True)
    if "fastnn fast" in names:
        print_same_round(rounds, rates, flops, any(not name.startswith("fastnn") for name in names))


def print_same_round(rounds, rates, flops, peers):
    """Under a table: fastnn fast's floor ratio with each round's own :data:`GEMM` ``rates`` and,
    with ``peers``, its lead over each round's fastest peer; median and range over the rounds."""
    def row(label, values, cell):
        cells = [f"{cell(np.median(v))} ({cell(min(v))}..{cell(max(v))})" for v in values]
        print(f"{label:<18}" + "".join(f"{c:>18}" for c in cells))

    row("floor, same round", [[t * r / flops for t, r in zip(column["fastnn fast"], column_rates)]
                              for column, column_rates in zip(rounds, rates)], lambda v: f"{v:.2f}")
    if peers:
        row("% ahead, same rnd", [same_round_margins(column) for column in rounds],
            lambda v: f"{100 * v:+.0f}")
    every = [r / 1e9 for column_rates in rates for r in column_rates]
    print(f"  (fastnn fast in each round: its epoch over that round's floor and, in %, how much longer the "
          f"fastest peer's epoch took; median (range). The rounds' {GEMM} ran at {min(every):.0f}-"
          f"{max(every):.0f} GFLOP/s)", flush=True)


def tiny_table(repeats, names):
    X, y = load_digits()
    X = X.astype(np.float32)
    print(f"\ntiny MLP 64-32-10 on the digits ({len(X)} samples), batch 32: ms per epoch")
    rounds = time_epochs({name: PEERS[name] for name in names}, X, y, [64, 32, 10], 32, max(repeats, 10))
    times = {name: min(t) for name, t in rounds.items()}
    for name in names:
        print(f"{name:<18}{times[name] * 1e3:10.2f}", flush=True)
    if "PyTorch" in times:
        print(f"fastnn fast is {times['PyTorch'] / times['fastnn fast']:.0f}x faster than PyTorch")


FIRST_FIT = """
import time, warnings
start = time.perf_counter()
from fastnn import MLPClassifier
from fastnn.datasets import load_digits
X, y = load_digits()
loaded = time.perf_counter()
warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning after one epoch
# The old estimator's defaults: 128 hidden units, float32, plain SGD at 0.1 in batches of 32.
PLAIN = dict(hidden_layer_sizes=(128,), dtype="float32", solver="sgd", momentum=0.0, alpha=0.0,
             learning_rate_init=0.1, batch_size=32, max_iter=1, random_state=0)
MLPClassifier(**PLAIN).fit(X, y)
first = time.perf_counter()
MLPClassifier(**PLAIN).fit(X, y)
second = time.perf_counter()
print(loaded - start, first - loaded, second - first)
"""


def first_fit():
    print("\nfirst fit (1 epoch on the digits) in a fresh process; its compile or cache-load "
          "overhead is the first fit less the second:")
    with tempfile.TemporaryDirectory() as cold_dir:
        for label, env in (("cold cache", {"NUMBA_CACHE_DIR": cold_dir}),
                           ("warm cache", {"NUMBA_CACHE_DIR": cold_dir})):
            out = subprocess.run([sys.executable, "-c", FIRST_FIT], capture_output=True, text=True,
                                 check=True, env={**os.environ, **env})
            imports, first, second = map(float, out.stdout.split())
            print(f"  {label}: import {imports:.2f} s, first fit {first:.2f} s, second fit "
                  f"{second:.3f} s: overhead {first - second:.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="32,128,1024,full",
                        help="comma-separated batch sizes; 'full' for full-batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="comma-separated implementation names")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated: " + ", ".join(RULES))
    parser.add_argument("--deep", action="store_true",
                        help="also 784-256-128-10 at batch 32 and 1024, plain SGD")
    args = parser.parse_args()
    batches = [None if b == "full" else int(b) for b in args.batches.split(",")]
    names = [n for n in PEERS if available(n) and (not args.only or n in args.only.split(","))]
    skipped = [n for n in PEERS if not available(n)]
    print_environment(gemm_rate(), copy_bandwidth())
    if skipped:
        print(f"  not installed, skipped: {', '.join(skipped)}")
    for rule in args.rules.split(","):
        mnist_table(batches, args.repeats, names, rule)
    if args.deep:
        mnist_table([32, 1024], args.repeats, names, "sgd", sizes=(784, 256, 128, 10))
    tiny_table(args.repeats, [n for n in names if n != "scikit-learn"])
    first_fit()


if __name__ == "__main__":
    main()
