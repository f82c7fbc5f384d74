"""Run under ``mpirun -n K python tests/_mpi_worker.py MODE`` by tests/test_distributed.py.

Rank 0 prints one ``RESULT {json}`` line per checked fit; in the error modes every rank
that sees an exception prints ``RAISED <type>: <message>``.
"""

import hashlib
import json
import os
import signal
import sys
import warnings

import numpy as np
from mpi4py import MPI
from sklearn.datasets import load_digits

import fastnn
from fastnn.distributed import fit

warnings.simplefilter("ignore")
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
N = 299  # not a multiple of the batch (64) nor of 2 or 3 ranks

X_all, y_all = load_digits(return_X_y=True)
X_all, y_all = X_all[:N] / 16.0, y_all[:N]
# Uneven splits; with 3 ranks the middle one holds no rows.
BOUNDS = {1: [0, N], 2: [0, 120, N], 3: [0, 130, 130, N]}[size]
lo, hi = BOUNDS[rank], BOUNDS[rank + 1]


def flat(model):
    return np.concatenate([p.ravel() for p in model.coefs_ + model.intercepts_])


def check(name, make, X, y, sample_weight=None):
    """A distributed fit and, on rank 0, the single-process fit on the concatenated rows."""
    hashes, rows = [], []

    def on_epoch(record):
        hashes.append(hashlib.sha256(flat(model).tobytes()).hexdigest())
        rows.append(record["rows"])

    model = make()
    w = None if sample_weight is None else sample_weight[lo:hi]
    fit(model, X[lo:hi], y[lo:hi], comm=comm, sample_weight=w, on_epoch=on_epoch)
    all_hashes = comm.gather(hashes, root=0)
    all_rows = comm.gather(rows, root=0)
    all_final = comm.gather(hashlib.sha256(flat(model).tobytes()).hexdigest(), root=0)
    prediction = model.predict(X[:50])
    all_predictions = comm.gather(prediction.tolist(), root=0)
    if rank:
        return
    single = make().fit(X, y, sample_weight=sample_weight)
    a, b = flat(model), flat(single)
    result = {
        "name": name, "dtype": str(a.dtype),
        "rel_error": float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max()),
        "n_iter": [model.n_iter_, single.n_iter_], "t": [model.t_, single.t_],
        "loss_error": float(np.abs(np.subtract(model.loss_curve_, single.loss_curve_)).max()),
        "best_loss": [model.best_loss_, single.best_loss_],
        "validation_scores": [model.validation_scores_, single.validation_scores_],
        "epochs_hashes_equal": (all(len(set(h)) == 1 for h in zip(*all_hashes))
                                and len(set(map(len, all_hashes))) == 1),
        "final_equal": len(set(all_final)) == 1,
        "predictions_equal": all(p == all_predictions[0] for p in all_predictions),
        "rows_per_epoch": [int(sum(r)) for r in zip(*all_rows)],
        "rows_by_rank": [r[0] if r else None for r in all_rows],
    }
    print("RESULT " + json.dumps(result), flush=True)


def exact():
    for engine in ("reference", "fast"):
        for dtype in ("float64", "float32"):
            for solver in ("sgd", "adam"):
                def make(engine=engine, dtype=dtype, solver=solver):
                    return fastnn.MLPClassifier((16,), solver=solver, batch_size=64, max_iter=4,
                                                random_state=0, learning_rate_init=0.01, engine=engine,
                                                dtype=dtype)
                check(f"{engine}-{dtype}-{solver}", make, X_all, y_all)
    # schedules, momentum variants, early stopping, sample weights, a regressor
    weights = np.random.RandomState(1).uniform(0.5, 2.0, N)

    def sgd_variants():
        return fastnn.MLPClassifier((16,), solver="sgd", batch_size=50, max_iter=6, random_state=3,
                                    learning_rate="invscaling", learning_rate_init=0.05,
                                    nesterovs_momentum=False, engine="fast")
    check("sgd-invscaling-momentum", sgd_variants, X_all, y_all)

    def adaptive():
        return fastnn.MLPClassifier((16,), solver="sgd", batch_size=64, max_iter=30, random_state=0, tol=0.5,
                                    n_iter_no_change=2, learning_rate="adaptive", learning_rate_init=0.05,
                                    engine="reference")
    check("sgd-adaptive-stops", adaptive, X_all, y_all)

    def early():
        return fastnn.MLPClassifier((16,), solver="adam", batch_size=32, max_iter=30, random_state=0,
                                    early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                                    tol=1e-2, engine="fast")
    check("early-stopping-classifier", early, X_all, y_all, weights)

    def binary():
        return fastnn.MLPClassifier((8,), solver="sgd", batch_size=40, max_iter=8, random_state=2,
                                    early_stopping=True, engine="reference")
    check("early-stopping-binary", binary, X_all, (y_all > 4).astype(int))

    def regressor():
        return fastnn.MLPRegressor(hidden_layer_sizes=(16,), solver="adam", batch_size=64, max_iter=8,
                                   random_state=0, early_stopping=True, learning_rate_init=0.01,
                                   engine="fast")
    targets = X_all[:, 20:23] + y_all[:, None] / 10
    check("regressor-weighted-early-stopping", regressor, X_all, targets, weights)


def raised(exc):
    """Say what was raised: on stdout, and in this rank's own file when FASTNN_MPI_OUT names a
    folder (mpirun merges the ranks' output streams, and lines of two ranks can run together)."""
    line = f"RAISED {type(exc).__name__}: {exc}"
    print(line, flush=True)
    folder = os.environ.get("FASTNN_MPI_OUT")
    if folder:
        with open(os.path.join(folder, f"rank{MPI.COMM_WORLD.Get_rank()}.txt"), "a") as out:
            out.write(line.replace("\n", " ") + "\n")


def bad_input():
    X = X_all[lo:hi].copy()
    if rank == 1:
        X[0, 0] = np.nan
    try:
        fit(fastnn.MLPClassifier((8,), max_iter=2), X, y_all[lo:hi], comm=comm)
    except Exception as exc:
        raised(exc)
    for kw in ({"solver": "lbfgs"}, {"solver": "sgd", "warm_start": True}):
        try:
            fit(fastnn.MLPClassifier((8,), **kw), X_all[lo:hi], y_all[lo:hi], comm=comm)
        except Exception as exc:
            raised(exc)


def step_error():
    """One rank's part of step 7 raises: every rank stops with an error."""
    if rank == 1:
        original = fastnn.solvers.FastSolver.batch_sums
        calls = [0]

        def failing(self, rows, out=None):
            calls[0] += 1
            if calls[0] == 7:
                raise RuntimeError("injected failure")
            return original(self, rows, out)
        fastnn.solvers.FastSolver.batch_sums = failing
    try:
        fit(fastnn.MLPClassifier((8,), solver="sgd", batch_size=64, max_iter=5), X_all[lo:hi], y_all[lo:hi],
            comm=comm)
    except Exception as exc:
        raised(exc)


def asymmetric():
    """A callback raises on rank 1 only, while the others go on into the next step."""
    def on_epoch(record):
        if rank == 1 and len(model.loss_curve_) == 2:
            raise RuntimeError("callback failed on one rank")
    model = fastnn.MLPClassifier((8,), solver="sgd", batch_size=64, max_iter=50, tol=0)
    fit(model, X_all[lo:hi], y_all[lo:hi], comm=comm, on_epoch=on_epoch, error_timeout=2)


def killed():
    def on_epoch(record):
        if rank == 1 and len(model.loss_curve_) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    model = fastnn.MLPClassifier((8,), solver="sgd", batch_size=64, max_iter=50, tol=0)
    fit(model, X_all[lo:hi], y_all[lo:hi], comm=comm, on_epoch=on_epoch)


def errors():
    bad_input()
    step_error()


if __name__ == "__main__":
    {"exact": exact, "errors": errors, "asymmetric": asymmetric,
     "killed": killed}[sys.argv[1]]()
