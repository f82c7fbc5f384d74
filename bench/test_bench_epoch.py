"""One training epoch, reference vs fast, 784-128-10 on 60,000 MNIST-shaped samples
(float32), at batch 32, 128, 1024 and full batch; and the tiny 64-32-10 network on
the digits at batch 32.

    pytest bench/test_bench_epoch.py --benchmark-group-by=group
    pytest bench/ --benchmark-json=out.json   # then: pytest-benchmark compare out.json

bench/compare.py times the same epochs beside PyTorch, JAX, NumPy and scikit-learn.
"""

import numpy as np
import pytest

from bench._peers import limits, make_fast, make_reference
from fastnn import reference
from fastnn import split as split_engine
from fastnn.datasets import load_digits
from fastnn.layout import Layout
from fastnn.solvers import Optimizer, Problem, make_solver

ENGINES = {"fast": make_fast, "reference": make_reference}


def bench_epochs(benchmark, make, X, y, sizes, batch, rounds):
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(1), np.float32)
    epoch, _ = make(X, y, sizes, batch, 0.01, weights, biases)
    rng = np.random.default_rng(2)
    with limits(epoch):
        benchmark.pedantic(epoch, setup=lambda: ((rng.permutation(len(X)),), {}),
                           rounds=rounds, warmup_rounds=1)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batch", [32, 128, 1024, None], ids=["32", "128", "1024", "full"])
def test_mnist_epoch(benchmark, mnist_shaped, engine, batch):
    X, y = mnist_shaped
    benchmark.group = f"epoch 784-128-10, batch {batch or 'full'}"
    bench_epochs(benchmark, ENGINES[engine], X, y, [784, 128, 10], batch or len(X), rounds=3)


@pytest.mark.parametrize("engine", ENGINES)
def test_tiny_epoch(benchmark, engine):
    X, y = load_digits()
    benchmark.group = "epoch 64-32-10 on the digits, batch 32"
    bench_epochs(benchmark, ENGINES[engine], X.astype(np.float32), y, [64, 32, 10], 32, rounds=20)


@pytest.mark.parametrize("split", [False, True], ids=["serial", "split"])
def test_tiny_epoch_split_or_serial(benchmark, monkeypatch, split):
    """Why fastnn.split.MIN_SPLIT_WEIGHTS exists: on a small network the split costs more than it saves."""
    monkeypatch.setattr(split_engine, "MIN_SPLIT_WEIGHTS", 0 if split else np.inf)
    X, y = load_digits()
    benchmark.group = "split or serial: epoch 64-32-10 on the digits, batch 32"
    bench_epochs(benchmark, make_fast, X.astype(np.float32), y, [64, 32, 10], 32, rounds=20)


@pytest.mark.parametrize("split", [False, True], ids=["serial", "split"])
@pytest.mark.parametrize("batch", [32, 1024])
def test_deeper_epoch_split_or_serial(benchmark, monkeypatch, mnist_shaped, split, batch):
    """Two hidden layers: the split shares out the first and repeats the layers above the second."""
    monkeypatch.setattr(split_engine, "MIN_SPLIT_WEIGHTS", 0 if split else np.inf)
    X, y = mnist_shaped
    benchmark.group = f"split or serial: epoch 784-256-128-10, batch {batch}"
    bench_epochs(benchmark, make_fast, X, y, [784, 256, 128, 10], batch, rounds=3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [32, 64, 128, 200])
@pytest.mark.parametrize("share", ["serial", "rows", "units"])
def test_solver_epoch_shares_rows_or_units(benchmark, mnist_shaped, dtype, batch, share):
    """The estimators' solver epoch (SGD with Nesterov's momentum, α = 1e-4), 784-128-10 on 20,000
    of the samples: one worker, or two sharing each batch's rows or the first hidden layer's units
    (fastnn.solvers.MAX_UNIT_SHARING_ROWS chooses between the two)."""
    X, y = mnist_shaped[0][:20_000].astype(dtype), mnist_shaped[1][:20_000]
    layout = Layout([784, 128, 10])
    theta = np.random.default_rng(1).uniform(-0.05, 0.05, layout.size).astype(dtype)
    problem = Problem(X, np.eye(10, dtype=dtype)[y], None, "log_loss", 1e-4, layout, theta, "relu")
    solver = make_solver("fast", problem, batch, n_workers=1 if share == "serial" else 2,
                         share_units=share == "units")
    optimizer = Optimizer("nesterov", theta, 0.001)
    rng = np.random.default_rng(2)
    benchmark.group = f"solver epoch, 1 worker or 2 sharing rows or units: batch {batch}, {dtype.__name__}"
    benchmark.pedantic(solver.epoch, setup=lambda: ((rng.permutation(len(X)), optimizer), {}),
                       rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("how", ["sklearn.utils.shuffle", "fastnn shuffled"])
def test_epoch_shuffle(benchmark, how):
    """The estimators' per-epoch shuffle of the digits' 1,797 row indices: scikit-learn's
    function (with its input checks) and fastnn's, which draws the same order."""
    from sklearn.utils import shuffle

    from fastnn.estimator import shuffled

    benchmark.group = "epoch shuffle, 1,797 row indices"
    idx, state = np.arange(1797), np.random.RandomState(0)
    if how == "fastnn shuffled":
        benchmark(shuffled, idx, state)
    else:
        benchmark(shuffle, idx, random_state=state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["nesterov", "adam"])
@pytest.mark.parametrize("transposing", [False, True], ids=["W·Xᵀ", "inputs transposed"])
def test_digits_solver_epoch_transposing_inputs(benchmark, monkeypatch, dtype, rule, transposing):
    """The estimators' solver epoch on the digits (64-100-10, batch 32, serial), with the first
    layer's inputs transposed before its forward GEMM (fastnn.kernels.network.transposes_inputs)
    and without."""
    from fastnn.kernels import network

    if not transposing:
        monkeypatch.setattr(network, "transposes_inputs", lambda table, capacity: False)
    X, y = load_digits()
    layout = Layout([64, 100, 10])
    theta = np.random.default_rng(1).uniform(-0.1, 0.1, layout.size).astype(dtype)
    problem = Problem(X.astype(dtype), np.eye(10, dtype=dtype)[y], None, "log_loss", 1e-4, layout, theta,
                      "relu")
    solver = make_solver("fast", problem, 32)
    assert (solver.works[0].inputs_t.size > 0) == transposing
    optimizer = Optimizer(rule, theta, 0.001)
    rng = np.random.default_rng(2)
    benchmark.group = f"solver epoch on the digits, inputs transposed or not: {rule}, {dtype.__name__}"
    benchmark.pedantic(solver.epoch, setup=lambda: ((rng.permutation(len(X)), optimizer), {}),
                       rounds=40, warmup_rounds=2)
