"""fastnn on Dask: dask-ml's ``Incremental`` and ``ParallelPostFit``, and a search through joblib's
Dask backend, all on one ``LocalCluster`` of two one-thread worker processes.

``Incremental.fit`` draws one order of the blocks (``shuffle_blocks=True``: a permutation of
``range(n_blocks)`` shuffled by ``check_random_state(random_state)``; ``False``: stored order) and
chains one ``partial_fit`` per block, the model travelling from task to task (here from worker to
worker: every block's task is pinned to the other worker). The tests rebuild that order and loop
``partial_fit`` locally over the same blocks, with one BLAS thread as on the workers, and compare
bit for bit after each pass.
"""

import importlib.util
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from fastnn import MLPClassifier
from fastnn._threads import default_blas_threads
from fastnn.testing import parameters

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_search.py"
CLASSES = [0, 1, 2]
CHUNKS = (70, 50, 60, 40, 80)  # unequal blocks: a wrong order or a lost block changes the result
BLOCK_SEED = 7  # Incremental's random_state: its block order


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(sum(CHUNKS), 8)
    y = np.argmax(X[:, :3] + 0.2 * rng.rand(len(X), 3), axis=1)
    return X, y


def blocks():
    bounds = np.cumsum((0, *CHUNKS))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def dask_arrays(X, y):
    return da.from_array(X, chunks=(CHUNKS, X.shape[1])), da.from_array(y, chunks=(CHUNKS,))


def state(model):
    """What a pass leaves: the parameters and the counters, copied."""
    return {"parameters": [p.copy() for p in parameters(model)], "n_iter_": model.n_iter_, "t_": model.t_,
            "loss_curve_": list(model.loss_curve_), "dtype": model.coefs_[0].dtype}


def assert_bitwise(got, want):
    assert got["dtype"] == want["dtype"]
    for k, (a, b) in enumerate(zip(got["parameters"], want["parameters"], strict=True)):
        assert a.shape == b.shape and a.tobytes() == b.tobytes(), f"parameter array {k} differs"
    assert (got["n_iter_"], got["t_"]) == (want["n_iter_"], want["t_"])
    # one loss per partial_fit, i.e. per block: the evolution, block by block
    assert np.array(got["loss_curve_"]).tobytes() == np.array(want["loss_curve_"]).tobytes()


def pinned_alternately(workers):
    """A ``dask.annotate`` placement: the ``partial_fit`` task of the i-th block on worker i % 2."""
    def place(key):
        if isinstance(key, tuple) and str(key[0]).startswith("fit-"):
            return [workers[key[1] % 2]]
        return list(workers)
    return place


def local_passes(estimator, X, y, order, n_passes):
    """``partial_fit`` over the blocks in ``order``, ``n_passes`` times, on one BLAS thread as on a
    worker; the state after each pass."""
    model, states = clone(estimator), []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(n_passes):
            for b in order:
                model.partial_fit(X[blocks()[b]], y[blocks()[b]], classes=CLASSES)
            states.append(state(model))
    return model, states


@pytest.mark.parametrize("solver, dtype, seed, shuffle_blocks", [
    ("sgd", np.float64, 0, True),
    ("adam", np.float32, "RandomState", True),  # the estimator's RNG travels with the model
    ("sgd", np.float32, 0, False),
])
def test_incremental_equals_a_local_partial_fit_loop(client, data, solver, dtype, seed, shuffle_blocks):
    X, y = data
    X = X.astype(dtype)
    dX, dy = dask_arrays(X, y)
    seed = np.random.RandomState(0) if seed == "RandomState" else seed
    estimator = MLPClassifier((10,), solver=solver, batch_size=16, learning_rate_init=0.01, random_state=seed)
    order = list(range(len(CHUNKS)))
    if shuffle_blocks:  # dask_ml._partial.fit's draw
        check_random_state(BLOCK_SEED).shuffle(order)
        assert order != sorted(order)
    workers = sorted(client.scheduler_info()["workers"])

    incremental = wrappers.Incremental(estimator, random_state=BLOCK_SEED, shuffle_blocks=shuffle_blocks)
    on_dask = []
    with distributed.get_task_stream(client) as tasks, \
            dask.annotate(workers=pinned_alternately(workers), allow_other_workers=False):
        incremental.fit(dX, dy, classes=CLASSES)  # a clone of estimator, one pass over the blocks
        on_dask.append(state(incremental.estimator_))
        incremental.partial_fit(dX, dy, classes=CLASSES)  # a second pass, from estimator_
        on_dask.append(state(incremental.estimator_))
    assert not hasattr(estimator, "coefs_")

    model, local = local_passes(estimator, X, y, order, n_passes=2)
    for k, (got, want) in enumerate(zip(on_dask, local)):
        assert want["t_"] == (k + 1) * len(X) and want["n_iter_"] == 1
        assert len(want["loss_curve_"]) == (k + 1) * len(CHUNKS)
        assert_bitwise(got, want)
    if shuffle_blocks:  # the order matters: the blocks in stored order give other weights
        _, stored = local_passes(estimator, X, y, sorted(order), n_passes=1)
        assert stored[0]["parameters"][0].tobytes() != local[0]["parameters"][0].tobytes()

    # every block's partial_fit ran on the other worker than the block before it
    fits = sorted((t["key"][1], t["worker"]) for t in tasks.data
                  if isinstance(t["key"], tuple) and str(t["key"][0]).startswith("fit-") and t["key"][1] >= 0)
    assert len(fits) == 2 * len(CHUNKS)
    for (i, worker) in fits:
        assert worker == workers[i % 2]

    np.testing.assert_array_equal(incremental.predict(dX).compute(), model.predict(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_post_fit_predicts_as_numpy(client, data, dtype):
    """Each chunk is predicted by a worker in one pass: bitwise the local prediction of that chunk
    (one BLAS thread). Against one pass over the whole array the labels are the same and the
    probabilities agree to the README's bound for pieces not split at predict's blocks (BLAS may round a row
    differently with other rows around it)."""
    X, y = data
    X = X.astype(dtype)
    dX, _ = dask_arrays(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = wrappers.ParallelPostFit(MLPClassifier((10,), max_iter=30, random_state=0)).fit(X, y)
    model = post.estimator

    labels = post.predict(dX)
    proba = post.predict_proba(dX)
    assert labels.chunks == (CHUNKS,) and proba.chunks == (CHUNKS, (len(CLASSES),))
    labels, proba = labels.compute(), proba.compute()
    assert proba.dtype == dtype
    with threadpool_limits(limits=1, user_api="blas"):
        per_chunk = np.concatenate([model.predict_proba(X[rows]) for rows in blocks()])
    assert proba.tobytes() == per_chunk.tobytes()

    np.testing.assert_array_equal(labels, model.predict(X))
    bound = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=bound)


def load_example():
    spec = importlib.util.spec_from_file_location("dask_search", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_search_example_on_the_cluster(client, tmp_path):
    """examples/dask_search.py, run as a user would against the cluster's scheduler: every epoch
    of every fit ran on a worker with one BLAS and one Numba thread, and the search found the same
    scores (bit for bit) and best parameters as the same search run locally."""
    assert set(client.run(default_blas_threads).values()) == {1}  # what fastnn takes on a worker
    max_iter = 5
    out = subprocess.run([sys.executable, str(EXAMPLE), "--scheduler", client.scheduler.address,
                          "--log", str(tmp_path), "--max-iter", str(max_iter)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert "same scores bit for bit: True; same best parameters: True" in out
    n_fits = int(re.search(r"(\d+) fits on the cluster", out).group(1))
    assert n_fits == 4 * 3  # 4 candidates, 3 folds; refit=False

    logs = tmp_path.glob("threads-*.txt")
    records = [line.split() for log in logs for line in log.read_text().splitlines()]
    assert len(records) == n_fits * max_iter  # no early stop within 5 epochs (n_iter_no_change=10)
    assert {pid for pid, _, _ in records} <= {str(pid) for pid in client.run(os.getpid).values()}
    assert {(blas, numba) for _, blas, numba in records} == {("1", "1")}


def test_thread_check_sees_the_pools_inside_the_fit(data):
    """The example's check is not vacuous: a fit told to use two BLAS threads fails it."""
    example = load_example()
    X, y = data
    model = MLPClassifier((4,), max_iter=1, n_threads=2, random_state=0)
    with pytest.raises(RuntimeError, match="ran with 2 BLAS"):
        model.fit(X, y, on_epoch=example.BlasThreadCheck(limit=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(n_threads=1).fit(X, y, on_epoch=example.BlasThreadCheck(limit=1))
