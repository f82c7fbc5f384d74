"""The split epochs: the first hidden layer's units (fastnn.kernels.split) or each batch's rows
(fastnn.kernels.rows) shared out to worker threads."""

import subprocess
import sys

import numpy as np
import pytest

from fastnn import fast, reference, rows, split
from fastnn._threads import thread_limits
from fastnn._trainer import TrainingDivergedError, train
from fastnn.engine import make_engine
from fastnn.kernels.split import _train_epoch_share
from fastnn.layout import Layout
from fastnn.testing import TRAINING_RTOL

from .conftest import ACTIVATIONS, network
from .test_training import tutorial_init


@pytest.fixture
def many_cores(monkeypatch):
    """Let the engine split the small networks of these tests, and start more workers
    than this machine has cores (they then take turns)."""
    monkeypatch.setattr(split, "available_cores", lambda: 8)
    monkeypatch.setattr(split, "MIN_SPLIT_WEIGHTS", 0)


ENGINES = {"units": split.SplitEngine, "rows": rows.RowsEngine}


@pytest.fixture(params=ENGINES)
def sharing(request, monkeypatch):
    """make_engine's split engine: sharing units or rows at every batch size. Returns its class."""
    monkeypatch.setattr(rows, "MIN_ROW_SHARING_ROWS", 1 if request.param == "rows" else 10**9)
    return ENGINES[request.param]


def trained(kind, X, y, *, hidden_layer_sizes, batch_size, activation="relu", dtype="float32", epochs=10,
            learning_rate=0.1, n_threads=1, seed=0, nudge=False, made=None):
    """The split epoch serves the old engine stack only (the estimators train on fastnn.solvers):
    train ``make_engine(kind, …)`` as the old estimator did, the tutorial's init of the activation
    from ``default_rng(seed)``, one permutation per epoch from the same generator. Returns the engine
    and the loss of each epoch. ``nudge``: one ulp more on the first output weight."""
    X = np.ascontiguousarray(X, dtype)
    sizes = [X.shape[1], *hidden_layer_sizes, 10]
    rng = np.random.default_rng(seed)
    weights, biases = reference.init_params(sizes, tutorial_init(activation), rng, np.dtype(dtype).type)
    if nudge:
        weights[-1][0, 0] = np.nextafter(weights[-1][0, 0], np.inf)
    engine = make_engine(kind, X, y, network(weights, biases, activation), min(batch_size, len(X)), n_threads)
    if made is not None:
        made.append(engine)
    losses = []
    with thread_limits(engine.blas_threads):
        train(engine, epochs=epochs, learning_rate=learning_rate, shuffle=True, rng=rng,
              on_epoch=lambda record: losses.append(record["loss"]))
    return engine, losses


def labels(engine, X):
    W, B = engine.layout.weights(engine.theta), engine.layout.biases(engine.theta)
    return np.argmax(reference.predict_proba(W, B, engine.activation,
                                             np.ascontiguousarray(X.T, engine.theta.dtype)), axis=0)


def assert_split_equal(X, y, *, X_test, dtype, n_threads, engine, **params):
    """The split epoch of class ``engine`` against the reference engine, to fastnn.testing's
    bounds: the parameters relative to the largest, the loss curves, the held-out labels."""
    made = []
    got, got_losses = trained("fast", X, y, dtype=dtype, n_threads=n_threads, made=made, **params)
    want, want_losses = trained("reference", X, y, dtype=dtype, **params)
    assert type(made[0]) is engine and made[0].n_workers == n_threads
    rtol = TRAINING_RTOL[dtype]
    np.testing.assert_allclose(got.theta, want.theta, rtol=0, atol=rtol * np.abs(want.theta).max(),
                               err_msg="parameters differ between engines")
    np.testing.assert_allclose(got_losses, want_losses, rtol=rtol,
                               err_msg="loss curves differ between engines")
    np.testing.assert_array_equal(labels(got, X_test), labels(want, X_test))


def assert_stable(X, y, **params):
    """As conftest.assert_stable, on the reference engine of the old stack."""
    plain, _ = trained("reference", X, y, **params)
    moved, _ = trained("reference", X, y, nudge=True, **params)
    change = np.abs(plain.theta - moved.theta).max() / np.abs(plain.theta).max()
    bound = TRAINING_RTOL[plain.theta.dtype.name]
    assert change < bound / 10, f"a one-ulp nudge moved the model by {change:.1e} (bound {bound})"


# Learning rate 0.1, 10 epochs: stable with every activation (test_split_settings_are_stable).
SPLIT_SETTINGS = [
    (2, {"batch_size": 32, "hidden_layer_sizes": (64,)}),
    (3, {"batch_size": 50, "hidden_layer_sizes": (7,)}),  # uneven shares, last batch partial
    (2, {"batch_size": 1437, "hidden_layer_sizes": (32,)}),  # full batch, rows as stored
    (2, {"batch_size": 50, "hidden_layer_sizes": (40, 20)}),  # the layers above the second
    (3, {"batch_size": 32, "hidden_layer_sizes": (25, 16, 12)}),
    (2, {"batch_size": 1437, "hidden_layer_sizes": (24, 12)}),
]
SPLIT_IDS = ["2-batch32", "3-batch50-uneven", "2-full", "2-two-hidden", "3-three-hidden", "2-full-two-hidden"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_threads, settings", SPLIT_SETTINGS, ids=SPLIT_IDS)
def test_split_agrees_with_reference(digits, many_cores, sharing, dtype, activation, n_threads, settings):
    X_train, X_test, y_train, _ = digits
    assert_split_equal(X_train, y_train, X_test=X_test, dtype=dtype, activation=activation,
                       epochs=10, n_threads=n_threads, engine=sharing, **settings)


# Every setting (tests/test_training.py checks SETTINGS' stability through the estimator's
# initial draws, not these engines'; there: why float32 only).
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [32, 64, 128])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_mnist_wide_batches_agree_with_reference(many_cores, sharing, gemm_blocks, dtype, batch_size,
                                                 n_threads):
    """784 inputs, 128 units: where the kernels' OpenBLAS has small-matrix kernels, the first
    layer's GEMMs run in blocks of rows at these batch sizes (fastnn.kernels.blas._small_block),
    and whole elsewhere: both ways within the bounds of the reference."""
    rng = np.random.default_rng(0)
    X, y = rng.random((300, 784)), rng.integers(0, 10, 300)
    engine = sharing if n_threads > 1 else fast.SerialEngine
    assert_split_equal(X, y, X_test=X[:100], dtype=dtype, n_threads=n_threads, engine=engine,
                       hidden_layer_sizes=(128,), batch_size=batch_size, epochs=3, learning_rate=0.01)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_steps_reading_transposed_weights_agree_with_reference(many_cores, gemm_blocks, made_engines,
                                                                n_threads):
    """Batches of 1,050 rows, 784 inputs, 128 units, float32: where the kernels' OpenBLAS has
    small-matrix kernels, the first layer's forward products read W[0]ᵀ, copied once a step
    (fastnn.kernels.network.transposes_weights), serial and sharing rows; else W[0]. Within the
    bounds of the reference either way (a copy left from the step before is not)."""
    rng = np.random.default_rng(0)
    X, y = rng.random((2100, 784)), rng.integers(0, 10, 2100)
    engine = rows.RowsEngine if n_threads > 1 else fast.SerialEngine
    assert_split_equal(X, y, X_test=X[:100], dtype="float32", n_threads=n_threads, engine=engine,
                       hidden_layer_sizes=(128,), batch_size=1050, epochs=3, learning_rate=0.01)
    got = made_engines[0]
    works = got.works if n_threads > 1 else [got.work]
    assert [w.weights_t.size for w in works] == [784 * 128 if gemm_blocks else 0] * n_threads
    W, B, X32 = got.layout.weights(got.theta), got.layout.biases(got.theta), X.astype(np.float32)
    np.testing.assert_allclose(fast.predict_proba(W, B, "relu", X32),  # 2,100 rows: it reads W[0]ᵀ too
                               reference.predict_proba(W, B, "relu", np.ascontiguousarray(X32.T)).T,
                               rtol=0, atol=TRAINING_RTOL["float32"])


STABILITY = {name: s for name, (_, s) in zip(SPLIT_IDS, SPLIT_SETTINGS)}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("settings", STABILITY.values(), ids=STABILITY.keys())
def test_split_settings_are_stable(digits, activation, settings):
    X_train, _, y_train, _ = digits
    assert_stable(X_train, y_train, dtype="float32", activation=activation, epochs=10, **settings)


def test_training_uses_the_workers_it_is_given(digits, many_cores, sharing):
    X_train, _, y_train, _ = digits
    made = []
    trained("fast", X_train, y_train, epochs=1, n_threads=3, hidden_layer_sizes=(16,), batch_size=32,
            made=made)
    assert [(type(engine), engine.n_workers) for engine in made] == [(sharing, 3)]


@pytest.mark.parametrize("hidden, n_threads, track, want", [
    ((16,), 4, False, 4), ((3,), 4, False, 3), ((16, 8), 4, False, 4), ((3, 8), 4, False, 3),
    ((), 4, False, 1), ((16,), 4, True, 1), ((16,), 1, False, 1)])
def test_split_workers(many_cores, hidden, n_threads, track, want):
    """A hidden layer needed, at most one worker per unit of the first, none when tracking
    gradients."""
    assert split.split_workers(Layout([64, *hidden, 10]), n_threads, track) == want


@pytest.mark.parametrize("n_in, hidden, want", [(64, 511, 1), (64, 512, 2), (784, 41, 1), (784, 42, 2)])
def test_no_split_below_the_minimum_size(monkeypatch, n_in, hidden, want):
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    assert split.MIN_SPLIT_WEIGHTS == 32768
    assert split.split_workers(Layout([n_in, hidden, 10]), 2) == want


def test_workers_at_most_one_per_core(monkeypatch):
    monkeypatch.setattr(split, "available_cores", lambda: 2)
    assert split.split_workers(Layout([784, 64, 10]), 8) == 2


def test_batch_of_one_sample(digits, many_cores, sharing):
    """A worker may get no rows of a batch to gather."""
    X_train, _, y_train, _ = digits
    # Rate 0.01 for 2 epochs: batch size 1 is chaotic at 0.1 (fastnn.testing), not at a tenth of it.
    assert_split_equal(X_train[:200], y_train[:200], X_test=X_train[:200], dtype="float64", epochs=2,
                       batch_size=1, learning_rate=0.01, n_threads=2, hidden_layer_sizes=(16,),
                       engine=sharing)


def test_split_fits_are_bitwise_repeatable(digits, many_cores, sharing):
    X_train, _, y_train, _ = digits
    made = []
    a, b = (trained("fast", X_train, y_train, seed=3, epochs=3, n_threads=3, hidden_layer_sizes=(128,),
                    batch_size=32, made=made)[0] for _ in range(2))
    assert [type(e) for e in made] == [sharing] * 2
    np.testing.assert_array_equal(a.theta, b.theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [[64, 24, 10], [64, 24, 16, 10]], ids=["1-hidden", "2-hidden"])
def test_one_worker_is_bitwise_the_serial_epoch(digits, dtype, sizes):
    """Alone, a worker does the serial epoch's arithmetic exactly: with more, only the split
    of the second layer's sum and the GEMM shapes differ."""
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train, dtype), y_train.astype(np.int64)
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(0), dtype)
    order = np.random.default_rng(1).permutation(len(X))
    serial, alone = network(weights, biases), network(weights, biases)
    fast.SerialEngine(X, y, serial, 32).epoch(order, 0.1)
    split.SplitEngine(X, y, alone, 32, n_workers=1).epoch(order, 0.1)
    np.testing.assert_array_equal(alone.theta, serial.theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [[64, 24, 10], [64, 24, 16, 10]], ids=["1-hidden", "2-hidden"])
def test_one_rows_worker_is_bitwise_the_serial_epoch(digits, dtype, sizes):
    """Alone, on batches of one piece, a worker sharing rows does the arithmetic of the serial
    epoch that forms the batch's gradient before its step (as it does to track gradient
    norms), exactly."""
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train, dtype), y_train.astype(np.int64)
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(0), dtype)
    order = np.random.default_rng(1).permutation(len(X))
    serial, alone = network(weights, biases), network(weights, biases)
    want = fast.SerialEngine(X, y, serial, 50, track_gradients=True).epoch(order, 0.1)
    engine = rows.RowsEngine(X, y, alone, 50, n_workers=1)
    assert engine.gather_rows == 50
    got = engine.epoch(order, 0.1)
    np.testing.assert_array_equal(alone.theta, serial.theta)
    assert (got.loss, got.accuracy) == (want.loss, want.accuracy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, piece", [(100, 16), (1437, 200)], ids=["shuffled", "full-as-stored"])
def test_rows_results_do_not_depend_on_the_workers(digits, dtype, batch, piece):
    """Pieces are cut by the batch's size alone and added in piece order, whoever computed
    them: one, two or three workers (more than this machine's cores: they take turns, and
    the pieces each takes change from run to run) give the same bits, and pieces of other
    sizes give other bits within the engines' bound."""
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train, dtype), y_train.astype(np.int64)
    weights, biases = reference.init_params([64, 24, 10], "kaiming", np.random.default_rng(0), dtype)
    order = np.random.default_rng(1).permutation(len(X))
    results = {}
    for n_workers, rows_a_piece in [(1, piece), (2, piece), (3, piece), (2, piece // 2 + 1)]:
        net = network(weights, biases)
        engine = rows.RowsEngine(X, y, net, batch, n_workers=n_workers, piece_rows=rows_a_piece)
        engine.epoch(order, 0.1)
        results[n_workers, rows_a_piece] = net.theta, engine.epoch(order[::-1].copy(), 0.1).loss
    theta, loss = results[1, piece]
    for n_workers in (2, 3):
        np.testing.assert_array_equal(results[n_workers, piece][0], theta)
        assert results[n_workers, piece][1] == loss
    other = results[2, piece // 2 + 1][0]
    assert not np.array_equal(other, theta), "pieces of another size should round differently"
    bound = TRAINING_RTOL[np.dtype(dtype).name] * np.abs(theta).max()
    np.testing.assert_allclose(other, theta, rtol=0, atol=bound)


@pytest.mark.parametrize("sizes, itemsize, want", [
    ([784, 128, 10], 4, 10),  # 407 KB a gradient: 10 fit in PIECE_BYTES
    ([784, 256, 128, 10], 4, 4),
    ([784, 128, 10], 8, 5),
    ([64, 24, 10], 8, 16),  # small: MAX_PIECES
    ([4096, 4096, 10], 4, 2),  # 67 MB a gradient: still two
])
def test_pieces_are_capped_by_their_gradients_bytes(sizes, itemsize, want):
    assert rows.max_pieces(Layout(sizes).size, itemsize) == want
    assert rows.pieces_of(8192, Layout(sizes).size, itemsize)[1] == want  # 16 pieces of 512 rows, capped
    assert rows.pieces_of(8192, Layout(sizes).size, itemsize, piece_rows=512)[1] == rows.MAX_PIECES


@pytest.mark.parametrize("batch, want", [
    (2048, (512, 4, 512)),  # pieces of PIECE_ROWS rows
    (1024, (512, 2, 512)),  # half the batch
    (100, (64, 2, 64)),  # ... at least MIN_PIECE_ROWS
    (64, (64, 1, 64)),  # one piece
    (1, (64, 1, 1)),
    (60_000, (512, 10, 6000)),  # a full batch: capped by the gradients' bytes
])
def test_pieces_have_half_a_batch_from_64_to_512_rows(batch, want):
    assert rows.pieces_of(batch, Layout([784, 128, 10]).size, 4) == want


def test_capped_pieces_do_not_depend_on_the_workers(digits, monkeypatch):
    """With the cap by bytes in force (three pieces of a batch of 100, where pieces of 8 rows
    would be 13), two and three workers give the same bits, and the buffers hold three pieces."""
    monkeypatch.setattr(rows, "PIECE_ROWS", 8)
    weights, biases = reference.init_params([64, 24, 10], "kaiming", np.random.default_rng(0), np.float64)
    monkeypatch.setattr(rows, "PIECE_BYTES", 3 * Layout([64, 24, 10]).size * 8)
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train, np.float64), y_train.astype(np.int64)
    order = np.random.default_rng(1).permutation(len(X))
    thetas = []
    for n_workers in (2, 3):
        net = network(weights, biases)
        engine = rows.RowsEngine(X, y, net, 100, n_workers=n_workers)
        assert engine.grads.shape[0] == 3 and engine.gather_rows == 34
        engine.epoch(order, 0.1)
        thetas.append(net.theta)
    np.testing.assert_array_equal(thetas[0], thetas[1])


# Each barrier of the split epochs and the test-only stall before what it publishes (the
# workers' fastnn.kernels.split.Share or fastnn.kernels.rows.Crew): sharing units, the worker's
# share of the first two gathered batches (the start barrier), of each batch's second-layer sums
# (the first), of each batch's output gradient (the second); sharing rows, the gradient of each
# piece it takes (the first), its block of the step (the second).
STALLS = {"units-start": (split.SplitEngine, "shares", "stall_start"),
          "units-first": (split.SplitEngine, "shares", "stall_partials"),
          "units-second": (split.SplitEngine, "shares", "stall"),
          "rows-first": (rows.RowsEngine, "crews", "stall_gradient"),
          "rows-second": (rows.RowsEngine, "crews", "stall_update")}


# Five pieces a batch of 50 when sharing rows: both workers take some.
PIECES = {split.SplitEngine: {}, rows.RowsEngine: {"piece_rows": 10}}


@pytest.mark.parametrize("stalled", [0, 1])
@pytest.mark.parametrize("barrier", STALLS)
def test_each_barrier_holds_the_others_back(digits, barrier, stalled):
    """One worker stalls (about 10 ms) before it writes what the others read after the
    ``barrier``. The result must be bitwise the unstalled one. A barrier that does not wait lets
    a worker read rows not yet gathered, or the sums or gradient of an earlier batch, or start
    the next batch on parameters another worker has not yet stepped, whatever the machine's
    timing."""
    engine_class, holders, stall_field = STALLS[barrier]
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train[:200]), y_train[:200].astype(np.int64)
    weights, biases = reference.init_params([64, 24, 10], "kaiming", np.random.default_rng(0), np.float64)
    order = np.random.default_rng(1).permutation(len(X))
    results = []
    for stall in (0, 3_000_000):
        net = network(weights, biases)
        engine = engine_class(X, y, net, 50, n_workers=2, **PIECES[engine_class])
        held = getattr(engine, holders)
        held[stalled] = held[stalled]._replace(**{stall_field: stall})
        engine.epoch(order, 0.1)
        results.append(net.theta)
    np.testing.assert_array_equal(results[1], results[0])


def test_a_diverging_split_epoch_puts_the_weights_back(digits, many_cores, sharing):
    """fastnn._trainer.train, which drives the split epoch: an epoch that ends with a non-finite
    loss or weight leaves the parameters as they were before it (here the initial ones)."""
    X_train, _, y_train, _ = digits
    X = np.ascontiguousarray(X_train, np.float32)
    weights, biases = reference.init_params([64, 16, 10], "kaiming", np.random.default_rng(0), np.float32)
    net = network(weights, biases)
    initial = net.theta.copy()
    engine = make_engine("fast", X, y_train, net, 32, 2)
    assert type(engine) is sharing
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="diverged in epoch 1"):
        train(engine, epochs=3, learning_rate=1e30, shuffle=True, rng=np.random.default_rng(1),
              on_epoch=lambda record: None)
    np.testing.assert_array_equal(engine.theta, initial)


FAILING_WORKER = """
import numpy as np
from fastnn import reference, rows, split
from fastnn.engine import Network
from fastnn.layout import Layout
share = split.SplitEngine._share
def broken(self, worker, b, deep):
    own = share(self, worker, b, deep)
    return own._replace(W0=own.W0[:, :-1]) if worker == 1 else own  # a wrong shape: the GEMM raises
split.SplitEngine._share = broken
rng = np.random.default_rng(0)
X, y = rng.random((500, 20)), rng.integers(0, 3, 500)
W, B = reference.init_params([20, 8, 3], "kaiming", rng, np.float64)
layout = Layout([20, 8, 3])
engine = ENGINE(X, y, Network(layout, layout.pack(W, B, np.float64), "relu"), 32, n_workers=2)
if ENGINE is rows.RowsEngine:  # work buffers smaller than a piece: the kernel raises
    engine.works[1] = engine.works[1]._replace(losses=engine.works[1].losses[:1])
try:
    engine.epoch(np.arange(500), 0.1)
except RuntimeError as error:
    print(error)
"""


@pytest.mark.parametrize("engine", ["split.SplitEngine", "rows.RowsEngine"])
def test_a_failing_worker_stops_the_others(engine):
    """The other workers must not wait for it at the barrier forever."""
    out = subprocess.run([sys.executable, "-c", FAILING_WORKER.replace("ENGINE", engine)],
                         capture_output=True, text=True, timeout=120)
    assert "a training worker failed" in out.stdout, out.stderr


def test_an_interrupted_epoch_leaves_the_layers_in_step(digits, many_cores, monkeypatch):
    """Ctrl-C lands when the workers have finished: the layers they keep copies of must
    then hold the same epoch as the first layer, which they update in place."""
    X_train, _, y_train, _ = digits
    X, y = np.ascontiguousarray(X_train), y_train.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(X))

    def trained(epoch_kernel):
        monkeypatch.setattr(split, "_train_epoch_share", epoch_kernel)
        weights, biases = reference.init_params([64, 16, 12, 10], "kaiming", np.random.default_rng(1),
                                                np.float64)
        net = network(weights, biases)
        engine = split.SplitEngine(X, y, net, 32, n_workers=2)
        try:
            engine.epoch(order, 0.1)
        except KeyboardInterrupt:
            pass
        return net.theta

    whole = trained(_train_epoch_share)

    def interrupted(worker, *args):
        result = _train_epoch_share(worker, *args)
        if worker == 0:
            raise KeyboardInterrupt
        return result

    np.testing.assert_array_equal(trained(interrupted), whole)
