"""The engines' interface: the flat parameter vector, gradients without an update, a step from
a gradient, the full-batch loss and gradient, choosing an engine, compile announcements."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import MLPClassifier, fast, reference, rows, solvers, split
from fastnn._aligned import ALIGNMENT, aligned_copy, aligned_empty
from fastnn.engine import make_engine
from fastnn.layout import Layout
from fastnn.testing import parameters

from .conftest import ACTIVATIONS, DTYPES, flat_vector, kernel_signatures, network, on_cache_lines

BOUND = {np.float32: 1e-5, np.float64: 1e-12}  # the README's bounds, relative to the largest value
SIZES = [[6, 5, 3], [6, 4, 5, 3]]


def problem(dtype, sizes, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    weights, biases = reference.init_params(sizes, "xavier", rng, dtype)
    for B in biases:  # non-zero biases, so that their gradients and steps show
        B[:] = rng.standard_normal(B.shape).astype(dtype) * 0.1
    return X, y, weights, biases


def engines(X, y, weights, biases, activation="tanh", batch=None):
    """A reference and a serial fast engine on copies of the same network."""
    batch = batch or len(X)
    return [cls(X, y, network(weights, biases, activation), batch)
            for cls in (reference.ReferenceEngine, fast.SerialEngine)]


def assert_close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=0, atol=BOUND[dtype] * max(1.0, np.abs(want).max()))


def test_layout_table_and_views():
    layout = Layout([4, 3, 2])
    np.testing.assert_array_equal(layout.table, [[0, 3, 4, 12], [15, 2, 3, 21]])
    assert layout.size == 3 * 5 + 2 * 4
    flat = np.arange(layout.size, dtype=np.float64)
    W0, W1 = layout.weights(flat)
    b0, b1 = layout.biases(flat)
    assert W0.shape == (3, 4) and b0.shape == (3, 1) and W1.shape == (2, 3) and b1.shape == (2, 1)
    np.testing.assert_array_equal(W0.ravel(), np.arange(12))
    np.testing.assert_array_equal(b1.ravel(), [21, 22])
    W1[0, 0] = -1  # views: writing one writes the flat vector
    assert flat[15] == -1
    repacked = layout.pack(layout.weights(flat), layout.biases(flat), np.float64)
    np.testing.assert_array_equal(repacked, flat)
    tail, start = layout.tail(1)
    assert tail.sizes == (3, 2) and start == 15 and layout.tail(2)[0].n_layers == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_parameters_are_views_of_one_vector(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=1, random_state=0).fit(X_train, y_train)
    theta, owner = flat_vector(model)
    assert owner.nbytes <= theta.nbytes + ALIGNMENT  # one vector, with at most its alignment to spare
    for array in parameters(model):
        assert np.shares_memory(array, theta)
    # The flat vector is the Layout's: coefs_[l] is W[l] transposed, intercepts_[l] is b[l].
    layout = Layout([64, 16, 8, 10])
    for W, coef, b, intercept in zip(layout.weights(theta), model.coefs_, layout.biases(theta),
                                     model.intercepts_):
        np.testing.assert_array_equal(W.T, coef)
        np.testing.assert_array_equal(b[:, 0], intercept)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_assigned_weights_are_what_the_next_fit_starts_from(digits):
    """scikit-learn code assigns new arrays; a warm fit must train those, not a stale vector."""
    X_train, _, y_train, _ = digits
    model = MLPClassifier(max_iter=1, random_state=0, warm_start=True).fit(X_train, y_train)
    twin = MLPClassifier(max_iter=1, random_state=0, warm_start=True).fit(X_train, y_train)
    model.coefs_ = [np.zeros_like(W) + 0.01 for W in model.coefs_]
    for W in twin.coefs_:  # the same values, written into the views
        W[...] = 0.01
    model.fit(X_train, y_train)
    twin.fit(X_train, y_train)
    for got, want in zip(parameters(model), parameters(twin)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_step_is_one_elementwise_kernel(dtype):
    """θ ← θ − step·g over the flat vector: the fast kernel bitwise equals NumPy's (same ops)."""
    X, y, weights, biases = problem(dtype, SIZES[1])
    ref, fast_engine = engines(X, y, weights, biases)
    grad = np.random.default_rng(1).standard_normal(ref.theta.size).astype(dtype)
    want = ref.theta - dtype(0.3) * grad
    for engine in (ref, fast_engine):
        engine.apply_step(grad, 0.3)
        np.testing.assert_array_equal(engine.theta, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_batch_gradient_leaves_the_parameters_alone(dtype, sizes, activation):
    """The summed gradient of some rows: fast against reference, parameters unchanged."""
    X, y, weights, biases = problem(dtype, sizes)
    ref, fast_engine = engines(X, y, weights, biases, activation, batch=8)
    rows = np.array([3, 17, 5, 5, 30])
    before = ref.theta.copy()
    grads = []
    for engine in (ref, fast_engine):
        grad = np.full_like(engine.theta, np.nan)
        loss, hits = engine.batch_gradient(rows, grad)
        np.testing.assert_array_equal(engine.theta, before)
        grads.append((grad, loss, hits))
    (g_ref, loss_ref, hits_ref), (g_fast, loss_fast, hits_fast) = grads
    assert_close(g_fast, g_ref, dtype)
    np.testing.assert_allclose(loss_fast, loss_ref, rtol=BOUND[dtype])
    assert hits_fast == hits_ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_gradient_then_step_is_one_training_step(dtype, kind):
    """batch_gradient + apply_step(grad, lr/m) is the fused epoch's step on a single batch."""
    X, y, weights, biases = problem(dtype, SIZES[1])
    stepped = make_engine(kind, X, y, network(weights, biases, "relu"), len(X))
    fused = make_engine(kind, X, y, network(weights, biases, "relu"), len(X))
    grad = np.empty_like(stepped.theta)
    loss, hits = stepped.batch_gradient(None, grad)
    stepped.apply_step(grad, 0.5 / len(X))
    stats = fused.epoch(None, 0.5)
    assert_close(stepped.theta, fused.theta, dtype)
    np.testing.assert_allclose(loss / len(X), stats.loss, rtol=BOUND[dtype])
    assert hits / len(X) == stats.accuracy


def central_differences(engine, theta, h=1e-6):
    out = np.empty_like(theta)
    for k in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        out[k] = (engine.loss_and_gradient(up)[0] - engine.loss_and_gradient(down)[0]) / (2 * h)
    return out


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_loss_and_gradient_against_finite_differences(sizes, activation, kind):
    """Full batch, float64, at a parameter vector that is not the engine's own."""
    X, y, weights, biases = problem(np.float64, sizes)
    engine = make_engine(kind, X, y, network(weights, biases, activation), 8)
    own = engine.theta.copy()
    theta = own + np.random.default_rng(2).standard_normal(own.size) * 0.05
    loss, grad = engine.loss_and_gradient(theta)
    np.testing.assert_array_equal(engine.theta, own)
    np.testing.assert_allclose(grad, central_differences(engine, theta), rtol=1e-5, atol=1e-8)
    assert loss == engine.loss_and_gradient(theta)[0]


def test_loss_and_gradient_refuses_a_vector_of_another_size():
    X, y, weights, biases = problem(np.float64, SIZES[0])
    engine = make_engine("fast", X, y, network(weights, biases, "relu"), 8)
    with pytest.raises(ValueError, match=f"theta must hold {engine.theta.size} parameters"):
        engine.loss_and_gradient(np.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold, engine", [(10**9, split.SplitEngine), (1, rows.RowsEngine)],
                         ids=["units", "rows"])
def test_split_engine_gradient_is_the_serial_one(monkeypatch, dtype, threshold, engine):
    """The split engines take gradients and steps with the serial kernels: the same bits."""
    monkeypatch.setattr(split, "MIN_SPLIT_WEIGHTS", 0)
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    monkeypatch.setattr(rows, "MIN_ROW_SHARING_ROWS", threshold)
    X, y, weights, biases = problem(dtype, SIZES[1])
    serial = make_engine("fast", X, y, network(weights, biases, "relu"), 8, n_threads=1)
    workers = make_engine("fast", X, y, network(weights, biases, "relu"), 8, n_threads=2)
    assert type(serial) is fast.SerialEngine and type(workers) is engine
    grads = [np.empty_like(serial.theta) for _ in range(2)]
    serial.batch_gradient(None, grads[0])
    workers.batch_gradient(None, grads[1])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("engine", [fast.SerialEngine, split.SplitEngine, rows.RowsEngine])
def test_read_only_data_compiles_no_kernel_again(monkeypatch, engine):
    """An engine hands its kernels the data read-only whatever its flag: after an epoch, a batch's
    gradient, the mean gradient and a prediction on writeable arrays, the same on read-only
    ones loads or compiles no kernel, and gives the same numbers."""
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    X, y, weights, biases = problem(np.float32, SIZES[1])
    extra = {} if engine is fast.SerialEngine else {"n_workers": 2}
    order = np.random.default_rng(3).permutation(len(X))
    results = []
    for read_only in (False, True):
        Xs, ys = X.copy(), y.copy()
        Xs.flags.writeable = ys.flags.writeable = not read_only
        trained = engine(Xs, ys, network(weights, biases, "relu"), 8, **extra)
        loss = trained.epoch(order, 0.1).loss
        grad = np.empty_like(trained.theta)
        trained.batch_gradient(order[:5], grad)
        mean_loss, mean_grad = trained.loss_and_gradient(trained.theta)
        proba = fast.predict_proba(weights, biases, "relu", Xs)
        results.append([trained.theta, np.float64(loss), grad, np.float64(mean_loss), mean_grad, proba])
        if not read_only:
            before = kernel_signatures()
    assert kernel_signatures() == before
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", [fast.SerialEngine, split.SplitEngine, rows.RowsEngine])
def test_a_batch_of_every_row_is_taken_as_stored(monkeypatch, dtype, engine):
    """A fast engine takes a batch of every row as stored, whatever the order
    (fastnn.fast.full_batch_as_stored): bitwise its epoch in stored order, and within the bound
    of the reference's epoch in that order, whose sums over rows follow the order. The order is
    still checked."""
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    X, y, weights, biases = problem(dtype, SIZES[1])
    order = np.random.default_rng(3).permutation(len(X))
    extra = {} if engine is fast.SerialEngine else {"n_workers": 2}
    results = []
    for cls, epoch_order, kwargs in ((engine, order, extra), (engine, None, extra),
                                     (reference.ReferenceEngine, order, {})):
        trained = cls(X, y, network(weights, biases, "relu"), len(X) + 5, **kwargs)
        losses = [trained.epoch(epoch_order, 0.1).loss for _ in range(3)]
        results.append((trained.theta, losses))
    (in_order, order_losses), (as_stored, stored_losses), (want, want_losses) = results
    np.testing.assert_array_equal(in_order, as_stored)
    assert order_losses == stored_losses
    assert_close(in_order, want, dtype)
    np.testing.assert_allclose(order_losses, want_losses, rtol=BOUND[dtype])
    with pytest.raises(ValueError, match="order must hold 40 row indices"):
        engine(X, y, network(weights, biases, "relu"), len(X), **extra).epoch(order[:-1], 0.1)


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 3, 784)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_aligned_empty_starts_on_a_cache_line(shape, dtype):
    array = aligned_empty(shape, dtype)
    assert array.shape == shape and array.dtype == dtype and array.flags.c_contiguous
    assert array.size == 0 or array.ctypes.data % ALIGNMENT == 0  # an empty array has no data
    array[...] = 1  # writable, and its own memory
    assert array.sum() == array.size


@pytest.mark.parametrize("dtype", [None, np.float32, np.dtype(np.float64)])
def test_aligned_copy_is_an_equal_array_on_a_cache_line(dtype):
    source = np.arange(12, dtype=np.int64).reshape(3, 4).T  # not C-ordered
    copy = aligned_copy(source, dtype)
    assert copy.ctypes.data % ALIGNMENT == 0 and copy.flags.c_contiguous
    assert copy.dtype == (source.dtype if dtype is None else dtype)
    np.testing.assert_array_equal(copy, source)


def first_layer_operands(engine):
    """The arrays a fast engine's first-layer GEMMs read: the layer's weights, the batches'
    gather buffers, and each worker's activations and deltas."""
    arrays = [engine.layout.weights(engine.theta)[0], engine._x_batches[0]]
    for share in getattr(engine, "shares", []):
        arrays += [share.W0, share.hidden, share.delta]
    for work in getattr(engine, "works", [getattr(engine, "work", None)]):
        if work is not None:
            arrays += [work.acts, work.deltas]
    return arrays


@pytest.mark.parametrize("engine", [fast.SerialEngine, split.SplitEngine, rows.RowsEngine])
def test_first_layer_operands_start_on_cache_lines(monkeypatch, engine):
    """Where OpenBLAS's small-matrix kernels multiply in place, they need rows on cache lines
    (conftest.on_cache_lines): the engines allocate them so, 784 inputs at batch 32."""
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    rng = np.random.default_rng(0)
    X, y = rng.random((100, 784), dtype=np.float32), rng.integers(0, 10, 100)
    weights, biases = reference.init_params([784, 128, 10], "kaiming", rng, np.float32)
    extra = {} if engine is fast.SerialEngine else {"n_workers": 2}
    trained = engine(X, y, network(weights, biases), 32, **extra)
    trained.epoch(rng.permutation(100), 0.01)
    arrays = first_layer_operands(trained)
    assert len(arrays) >= 4
    for array in arrays:
        assert on_cache_lines(array if array.ndim == 2 else array[None])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
def test_solver_operands_start_on_cache_lines():
    """The estimators' fast solver: θ, the gather buffers, the units' activations and deltas."""
    rng = np.random.default_rng(0)
    X, y = rng.random((100, 784), dtype=np.float32), rng.integers(0, 10, 100)
    est = MLPClassifier(hidden_layer_sizes=(128,), batch_size=32, max_iter=1, engine="fast").fit(X, y)
    assert est.coefs_[0].ctypes.data % ALIGNMENT == 0  # views of θ
    problem = solvers.Problem(X, np.eye(10, dtype=np.float32)[y], None, "log_loss", 0.0,
                              Layout([784, 128, 10]), Layout([784, 128, 10]).pack(
                                  [c.T for c in est.coefs_], est.intercepts_, np.float32), "relu")
    solver = solvers.make_solver("fast", problem, 32, n_workers=2, share_units=True)
    solver._samples(rng.permutation(100), 0)
    arrays = [problem.theta, solver._gathers[0][0]]
    for units in solver.units:
        arrays += [units.hidden, units.acts, units.delta]
    for array in arrays:
        assert array.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("share_units", [False, True])
def test_gradients_start_on_cache_lines(share_units):
    """Each piece's (or worker's) gradient of θ, into which the first layer's weight-gradient GEMM
    writes, starts on a cache line, though θ's size (101,770) is not a whole number of them: in
    the rows engine and in the solver sharing rows or units."""
    rng = np.random.default_rng(0)
    X, y = rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300)
    layout = Layout([784, 128, 10])
    assert layout.size * 4 % ALIGNMENT != 0
    weights, biases = reference.init_params(layout.sizes, "kaiming", rng, np.float32)
    engine = rows.RowsEngine(X, y, network(weights, biases), 300, n_workers=2, piece_rows=64)
    problem = solvers.Problem(X, np.eye(10, dtype=np.float32)[y], None, "log_loss", 0.0, layout,
                              layout.pack(weights, biases, np.float32), "relu")
    solver = solvers.make_solver("fast", problem, 300, n_workers=2, share_units=share_units, piece_rows=64)
    for grads in (engine.grads, solver.grads):
        assert grads.shape[0] >= 2 and grads.shape[1] >= layout.size
        assert on_cache_lines(grads)
    for work in solver.works:
        assert work.grad.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("kind, n_threads, track, want", [
    ("reference", 2, False, reference.ReferenceEngine), ("fast", 1, False, fast.SerialEngine),
    ("fast", 2, True, fast.SerialEngine), ("fast", 2, False, split.SplitEngine)])
def test_make_engine_chooses_by_kind_threads_and_size(monkeypatch, kind, n_threads, track, want):
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    X, y, weights, biases = problem(np.float32, [200, 200, 3])
    engine = make_engine(kind, X, y, network(weights, biases, "relu"), 8, n_threads, track)
    assert type(engine) is want
    assert engine.blas_threads == (1 if want is split.SplitEngine else n_threads)


@pytest.mark.parametrize("n, batch, want", [(600, 511, split.SplitEngine), (600, 512, rows.RowsEngine),
                                             (511, 600, split.SplitEngine), (512, 600, rows.RowsEngine)])
def test_make_engine_shares_rows_from_a_batch_size_up(monkeypatch, n, batch, want):
    """Two workers share units below fastnn.rows.MIN_ROW_SHARING_ROWS rows a batch (a batch
    larger than the data has as many rows as the data), rows from it up."""
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    assert rows.MIN_ROW_SHARING_ROWS == 512
    X, y, weights, biases = problem(np.float32, [200, 200, 3], n=n)
    engine = make_engine("fast", X, y, network(weights, biases, "relu"), batch, 2)
    assert type(engine) is want and engine.n_workers == 2 and engine.blas_threads == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["FastSolver", "ReferenceSolver"])
def test_an_interrupted_fit_keeps_the_last_finished_epoch(digits, monkeypatch, solver):
    """Ctrl-C (KeyboardInterrupt) lands as the third epoch's kernel returns: the model holds
    the parameters of two epochs, bitwise, and says it trained two."""
    X_train, _, y_train, _ = digits
    engine = "fast" if solver == "FastSolver" else "reference"
    two = MLPClassifier(max_iter=2, random_state=0, engine=engine).fit(X_train, y_train)
    cls = getattr(solvers, solver)
    epoch = cls.epoch
    calls = []

    def interrupted(self, order, optimizer):
        loss = epoch(self, order, optimizer)
        calls.append(loss)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return loss

    monkeypatch.setattr(cls, "epoch", interrupted)
    model = MLPClassifier(max_iter=5, random_state=0, engine=engine, n_iter_no_change=float("inf"))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X_train, y_train)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    for got, want in zip(parameters(model), parameters(two)):
        np.testing.assert_array_equal(got, want)
    # The optimizer too is as after two epochs: training on gives the 3-epoch model.
    monkeypatch.setattr(cls, "epoch", epoch)
    three = MLPClassifier(max_iter=3, random_state=0, engine=engine, shuffle=False).fit(X_train, y_train)
    stopped = MLPClassifier(max_iter=3, random_state=0, engine=engine, shuffle=False)
    calls.clear()
    monkeypatch.setattr(cls, "epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(X_train, y_train)
    monkeypatch.setattr(cls, "epoch", epoch)
    stopped.partial_fit(X_train, y_train)
    for got, want in zip(parameters(stopped), parameters(three)):
        np.testing.assert_array_equal(got, want)


FIRST_FIT = """
import numpy as np
from fastnn import MLPClassifier
from tests.conftest import read_only_twins
X = np.random.default_rng(0).random((60, 5))
MLPClassifier(max_iter=1, verbose=True, dtype="float64").fit(X, np.arange(60) % 3).predict(X)
print("read-only twins:", read_only_twins())
"""


def test_a_cold_cache_is_announced_once(tmp_path):
    """The first fit in a new Numba cache says it compiles; a later process, loading the
    cache, says nothing. (float64, a small net: the kernels compile for these types.) Neither
    process compiled or loaded a kernel twice for the same types but read-only arrays (the
    data are read-only, the buffers not: fastnn._aligned.read_only, kernels._scalar.const)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", FIRST_FIT], env=env, capture_output=True, text=True,
                           timeout=300, cwd=Path(__file__).resolve().parent.parent) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.count("compiling the fast engine for float64") == 1
    assert "compiling" not in runs[1].stdout
    assert all("read-only twins: []" in run.stdout for run in runs), runs[0].stdout + runs[1].stdout


def test_will_compile_reads_the_cache_index():
    """In this process the default kernels are loaded or cached: a fit would not compile."""
    X, y, weights, biases = problem(np.float32, SIZES[0])
    engine = make_engine("fast", X, y, network(weights, biases, "relu"), 8)
    engine.epoch(None, 0.1)
    assert not engine.will_compile()
    kernel, (data, *rest) = engine._epoch_call(None, 0.1)
    never_compiled = data._replace(y=data.y.astype(np.int8))  # labels of a type no fit passes
    assert fast.will_compile(kernel, never_compiled, *rest)
    assert not make_engine("reference", X, y, network(weights, biases, "relu"), 8).will_compile()
