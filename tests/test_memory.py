"""Peak memory of a fit, traced by tracemalloc (NumPy reports its buffers to it)."""

import tracemalloc

import numpy as np
import pytest

from fastnn import MLPClassifier, estimator, rows, solvers
from fastnn._threads import default_blas_threads
from fastnn.kernels.network import transposes_weights
from fastnn.layout import Layout
from fastnn.split import split_workers

N, FEATURES, HIDDEN, CLASSES = 20_000, 784, 128, 10
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # one epoch


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((N, FEATURES), dtype=np.float32), rng.integers(0, CLASSES, N)


def peak_of_fit(X, y, **params):
    model = MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=1, random_state=0, **params)
    model.fit(X[:300], y[:300])  # load the compiled kernels first: that is not the fit's data
    tracemalloc.start()
    try:
        model.fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# theta, its gradient, Adam's two moments, and the copies of theta and the moments that an
# epoch ended by an exception (Ctrl-C) puts back: README, Memory.
PARAMETER_COPIES = 7
N_PARAMETERS = Layout([FEATURES, HIDDEN, CLASSES]).size


def parameter_need(itemsize):
    return PARAMETER_COPIES * N_PARAMETERS * itemsize


def test_fast_minibatch_fit_does_not_copy_float32_data(data):
    """Beyond what the parameters need, less than a twentieth of X: the targets, the batch."""
    X, y = data
    assert peak_of_fit(X, y, batch_size=128) < 0.05 * X.nbytes + parameter_need(X.itemsize)


def test_fast_minibatch_fit_does_not_copy_float64_data(data):
    """dtype=None follows X: float64 data trains in float64, as it is."""
    X, y = data
    X64 = X.astype(np.float64)
    assert peak_of_fit(X64, y, batch_size=128) < 0.05 * X64.nbytes + parameter_need(X64.itemsize)


def test_fast_minibatch_fit_copies_float64_data_once_for_float32(data):
    X, y = data
    X64 = X.astype(np.float64)
    assert peak_of_fit(X64, y, batch_size=128, dtype="float32") < 1.1 * X.nbytes  # one float32 copy


def test_reference_fit_copies_the_data_once(data):
    X, y = data
    # The (features, samples) transpose, plus the targets and per-batch temporaries.
    assert peak_of_fit(X, y, batch_size=128, engine="reference") < 1.1 * X.nbytes


def test_full_batch_memory_need_is_as_stated(data):
    """README: full-batch training on n samples with w workers sharing rows, in P pieces of
    r = ⌈n/P⌉ rows, needs about itemsize · (n · n_classes + w · r · (2 · Σ hidden widths +
    n_classes) + (6 + P) · n_parameters + w · n_features · h₁) bytes beyond the data: the targets,
    each worker's activations and deltas for a piece, the parameters' copies with a gradient per
    piece, and each worker's copy of W[0]ᵀ where the engine reads it (h₁ units). One worker
    takes the batch whole (P = 1)."""
    X, y = data
    layout = Layout([FEATURES, HIDDEN, CLASSES])
    workers = split_workers(layout, default_blas_threads())
    pieces = rows.pieces_of(N, N_PARAMETERS, X.itemsize)[1] if workers > 1 else 1
    piece = -(-N // pieces)
    activations = workers * piece * (2 * HIDDEN + CLASSES)
    transposed = workers * FEATURES * HIDDEN if transposes_weights(layout.table, N, X.dtype) else 0
    stated = X.itemsize * (N * CLASSES + activations + (6 + pieces) * N_PARAMETERS + transposed)
    # With shuffle=True the solver gathers each batch's rows in their shuffled order: for a full
    # batch, a copy of X.
    peak = peak_of_fit(X, y, batch_size=N, shuffle=False)
    assert 0.9 * stated < peak < 1.1 * stated


def peak_of_predict(model, X):
    model.predict_proba(X[:10])  # the compiled kernels are loaded first
    tracemalloc.start()
    try:
        model.predict_proba(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def block_bytes(model):
    """What one block of predict's activations takes: every layer's Z and A."""
    row_bytes = 2 * model.coefs_[0].itemsize * sum(c.shape[1] for c in model.coefs_)
    return estimator.predict_block_rows(row_bytes) * row_bytes


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_predict_memory_is_bounded(engine):
    """A 2048-unit layer over 12,000 rows: 197 MB of activations in one pass, one block of 1024
    rows (17 MB) at a time in predict."""
    rng = np.random.default_rng(0)
    X = rng.random((12_000, 16), dtype=np.float32)
    model = MLPClassifier(hidden_layer_sizes=(2048,), max_iter=1, engine=engine, random_state=0)
    model.fit(X[:200], rng.integers(0, CLASSES, 200))
    one_pass = 2 * X.itemsize * len(X) * (2048 + CLASSES)
    assert one_pass > 10 * block_bytes(model)
    result = len(X) * CLASSES * X.itemsize
    assert peak_of_predict(model, X) < 1.1 * block_bytes(model) + result


def test_wide_layers_get_fewer_rows_per_block(monkeypatch):
    """No block's activations exceed PREDICT_BLOCK_BYTES (as long as one row fits)."""
    monkeypatch.setattr(estimator, "PREDICT_BLOCK_BYTES", 2**20)
    assert estimator.predict_block_rows(1000) == estimator.PREDICT_BLOCK_ROWS
    assert estimator.predict_block_rows(2**20 // 100 + 1) == 99
    assert estimator.predict_block_rows(2**21) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_predictions_go_block_by_block(monkeypatch, engine, dtype):
    """The blocks tile X in order from row 0, each the engine's own pass over its rows; so pieces
    of X split at a multiple of the block predict bitwise as X at once, and pieces split elsewhere
    (or one pass over all rows) agree to the README's bound for a dense layer: BLAS rounds a row
    differently with other rows around it (OpenBLAS's float64 kernels do, in this network)."""
    rng = np.random.default_rng(1)
    X = rng.random((5003, 64)).astype(dtype)
    model = MLPClassifier(hidden_layer_sizes=(300,), activation="tanh", max_iter=1, engine=engine,
                          dtype=dtype, random_state=0).fit(X[:300], rng.integers(0, CLASSES, 300))
    name = "predict_output" if engine == "fast" else "predict_output_reference"
    predict = getattr(solvers, name)
    theta, layout = model._pack_parameters(np.dtype(dtype))
    one_pass = predict(layout, theta, "tanh", "log_loss", X)
    blocks = []

    def recorded(layout, theta, activation, loss, rows):
        blocks.append((rows.copy(), predict(layout, theta, activation, loss, rows)))
        return blocks[-1][1]

    monkeypatch.setattr(estimator, name, recorded)
    proba = model.predict_proba(X)
    assert [len(rows) for rows, _ in blocks] == [1024] * 4 + [907]
    np.testing.assert_array_equal(np.concatenate([rows for rows, _ in blocks]), X)
    assert proba.tobytes() == np.concatenate([p for _, p in blocks]).tobytes()

    assert proba.tobytes() == np.concatenate([model.predict_proba(X[:2048]),
                                              model.predict_proba(X[2048:])]).tobytes()
    bound = {"float32": 1e-5, "float64": 1e-12}[dtype]  # README: a dense layer's bound
    elsewhere = np.concatenate([model.predict_proba(X[:1000]), model.predict_proba(X[1000:])])
    np.testing.assert_allclose(proba, elsewhere, rtol=0, atol=bound)
    np.testing.assert_allclose(proba, one_pass, rtol=0, atol=bound)
