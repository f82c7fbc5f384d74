"""A hyper-parameter search on a Dask cluster, checked against the same search run locally.

scikit-learn's ``GridSearchCV`` over fastnn's ``MLPClassifier`` on the bundled digits, its fits
sent to the Dask workers through joblib (``joblib.parallel_backend("dask")``). Each fit carries an
``on_epoch`` callback, :class:`BlasThreadCheck`, that reads threadpoolctl's view of the BLAS pools
inside the fit, after every epoch, and fails the fit if any pool runs more threads than allowed
(one: a Dask worker starts with ``OPENBLAS_NUM_THREADS=1`` and fastnn never raises BLAS threads
above what the process allows). The same search then runs locally with ``n_jobs=1`` under one
BLAS thread, the workers' arithmetic, and the script prints both results: the same scores, bit for
bit, and so the same best parameters.

    python examples/dask_search.py                      # a LocalCluster of 2 one-thread workers
    python examples/dask_search.py --scheduler tcp://HOST:8786   # an existing cluster

``--log DIR`` makes every checked epoch append a line (process id, BLAS threads, Numba threads) to
a file in ``DIR`` (on the workers' file system).
"""

import argparse
import os
import warnings

import joblib
import numba
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn

PARAM_GRID = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-3, 1e-2]}


class BlasThreadCheck:
    """``on_epoch`` callback: inside the fit, after every epoch, the largest thread count of the
    process's BLAS pools (threadpoolctl's view) and Numba's; raises ``RuntimeError`` if either
    exceeds ``limit``. With ``log_dir``, appends ``pid blas numba`` to ``log_dir/threads-<pid>.txt``."""

    def __init__(self, limit=1, log_dir=None):
        self.limit = limit
        self.log_dir = log_dir

    def __call__(self, record):
        blas = max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        threads = numba.get_num_threads()
        if self.log_dir is not None:
            with open(os.path.join(self.log_dir, f"threads-{os.getpid()}.txt"), "a") as log:
                log.write(f"{os.getpid()} {blas} {threads}\n")
        if max(blas, threads) > self.limit:
            raise RuntimeError(f"a fit ran with {blas} BLAS and {threads} Numba thread(s) in process "
                               f"{os.getpid()}; the limit is {self.limit}")


def digits(n_rows=360):
    """The first ``n_rows`` of scikit-learn's bundled digits, scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X[:n_rows] / 16, y[:n_rows]


def make_search(n_jobs, max_iter=10):
    model = fastnn.MLPClassifier(solver="adam", batch_size=32, max_iter=max_iter, random_state=0)
    return GridSearchCV(model, PARAM_GRID, cv=3, n_jobs=n_jobs, refit=False)


def search_on_dask(client, X, y, check, max_iter=10):
    """The search with its fits on the cluster of ``client``; ``check`` goes to every fit."""
    search = make_search(n_jobs=-1, max_iter=max_iter)
    with warnings.catch_warnings(), joblib.parallel_backend("dask", client=client, scatter=[X, y]):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y, on_epoch=check)


def search_locally(X, y, check=None, max_iter=10):
    """The same search in this process, one fit after another, each on one BLAS thread as on a worker."""
    search = make_search(n_jobs=1, max_iter=max_iter)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y, on_epoch=check)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--log", help="a folder for the per-epoch thread records")
    parser.add_argument("--max-iter", type=int, default=10)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    try:
        X, y = digits()
        on_dask = search_on_dask(client, X, y, BlasThreadCheck(limit=1, log_dir=args.log), args.max_iter)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    local = search_locally(X, y, max_iter=args.max_iter)
    n_fits = len(on_dask.cv_results_["params"]) * on_dask.n_splits_
    print(f"{n_fits} fits on the cluster, every epoch checked: at most 1 BLAS thread")
    print(f"best parameters on the cluster: {on_dask.best_params_} (score {on_dask.best_score_!r})")
    print(f"best parameters locally:        {local.best_params_} (score {local.best_score_!r})")
    same_scores = np.array_equal(on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    print(f"same scores bit for bit: {same_scores}; same best parameters: "
          f"{on_dask.best_params_ == local.best_params_}")


if __name__ == "__main__":
    main()
