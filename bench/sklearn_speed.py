"""fastnn against scikit-learn with the same solver and settings: seconds per epoch, side by side.

    python bench/sklearn_speed.py [--repeats 3] [--epochs 3] [--only "digits, sgd+nesterov"]

For each case (network, data, solver, batch size, dtype) both estimators are built with
the same arguments and ``random_state``, given an untimed fit of one epoch (fastnn compiles
or loads its kernels there), then timed: fits of ``E = --epochs`` epochs and of ``2E``
(``n_iter_no_change=inf`` so both run every epoch), ``--repeats`` rounds of each, the two
estimators alternating. An epoch is the best ``2E``-epoch fit less the best ``E``-epoch fit,
over ``E``: what a fit costs once (validation, set-up) cancels out. (The best of the rounds'
differences would be biased low: it picks the round whose ``E``-epoch fit the machine slowed
down.) ``E`` is ``--epochs`` doubled until fastnn's ``2E``-epoch fit takes half a second
longer than its ``E``-epoch one. Prints the CPU, the BLAS that ran (threadpoolctl) and the speed-up.
Networks: 784-128-10 on 20,000 MNIST-shaped synthetic samples, and 64-100-10 on the
digits (1,797 samples). ``--only`` runs the cases whose label contains its text.
"""

import argparse
import time
import warnings

import numpy as np
import sklearn.neural_network as sk
from _machine import describe  # bench/, run as a script
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info

import fastnn

MIN_FIT_SECONDS = 0.5
SOLVERS = {"adam": dict(solver="adam"), "sgd+nesterov": dict(solver="sgd", learning_rate_init=0.01)}


def mnist_shaped(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.random((10, 784))
    y = rng.integers(0, 10, n)
    return np.clip(centers[y] + 0.3 * rng.standard_normal((n, 784)), 0, 1), y


def seconds_of_fit(cls, X, y, settings, epochs):
    model = cls(max_iter=epochs, n_iter_no_change=np.inf, random_state=0, **settings)
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def run_case(label, X, y, settings, args):
    for cls in (sk.MLPClassifier, fastnn.MLPClassifier):  # warm-up: imports, kernel cache
        seconds_of_fit(cls, X[:500], y[:500], settings, 1)
    # Enough epochs that fastnn's E epochs, less what its fit costs once, take MIN_FIT_SECONDS: a
    # difference of two fits of a few milliseconds each would be mostly noise. (Sizing E by a whole
    # fit of one epoch let that fixed cost choose E: on the digits it gave E near 50, differences of
    # about 0.1 s, and once an epoch of minus 0 ms.)
    epochs = args.epochs
    while seconds_of_fit(fastnn.MLPClassifier, X, y, settings, 2 * epochs) \
            - seconds_of_fit(fastnn.MLPClassifier, X, y, settings, epochs) < MIN_FIT_SECONDS:
        epochs *= 2
    estimators = {"scikit-learn": sk.MLPClassifier, "fastnn": fastnn.MLPClassifier}
    fits = {(name, n): np.inf for name in estimators for n in (epochs, 2 * epochs)}
    for _ in range(args.repeats):
        for name, cls in estimators.items():
            for n in (epochs, 2 * epochs):
                fits[name, n] = min(fits[name, n], seconds_of_fit(cls, X, y, settings, n))
    best = {name: (fits[name, 2 * epochs] - fits[name, epochs]) / epochs for name in estimators}
    ratio = best["scikit-learn"] / best["fastnn"]
    print(f"| {label} | {1000 * best['scikit-learn']:.1f} | {1000 * best['fastnn']:.1f} | {ratio:.2f}x |",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"CPU: {describe()}")
    import fastnn.kernels.blas  # noqa: F401  (the kernels' OpenBLAS, loaded by a first fit: listed too)

    for info in threadpool_info():
        print(f"  {info.get('internal_api')} {info.get('version')} {info.get('architecture')} "
              f"threads={info.get('num_threads')} ({info.get('filepath', '').split('/')[-1]})")
    print("\n| case | scikit-learn ms/epoch | fastnn ms/epoch | speed-up |\n|---|---|---|---|")
    for label, X, y, settings in cases():
        if args.only in label:
            run_case(label, X, y, settings, args)


def cases():
    """``(label, X, y, settings)`` of every case, in the table's order."""
    Xm, ym = mnist_shaped()
    digits = load_digits()
    Xd, yd = digits.data / 16, digits.target
    for dtype in (np.float32, np.float64):
        for solver, settings in SOLVERS.items():
            for batch in (32, 200):
                yield (f"784-128-10, {solver}, batch {batch}, {dtype.__name__}", Xm.astype(dtype), ym,
                       dict(hidden_layer_sizes=(128,), batch_size=batch, **settings))
            yield (f"64-100-10 digits, {solver}, batch 32, {dtype.__name__}", Xd.astype(dtype), yd,
                   dict(hidden_layer_sizes=(100,), batch_size=32, **settings))


if __name__ == "__main__":
    main()
