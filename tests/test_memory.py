"""Peak memory of a fit, traced by tracemalloc (NumPy reports its buffers to it)."""

import tracemalloc

import numpy as np
import pytest

from fastnn import MLPClassifier, estimator, solvers
from fastnn.layout import Layout

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
    """README: full-batch training on n samples needs about
    itemsize · (n · (2 · H + 2 · n_classes) + 7 · n_parameters) bytes beyond the data: each layer's
    activations and deltas, the targets, and the parameters' copies."""
    X, y = data
    stated = X.itemsize * N * (2 * HIDDEN + 2 * CLASSES) + parameter_need(X.itemsize)
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


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_predict_memory_is_bounded(engine):
    """A 2048-unit layer over 12,000 rows: 197 MB of activations in one pass, about 64 MB in chunks."""
    rng = np.random.default_rng(0)
    X = rng.random((12_000, 16), dtype=np.float32)
    model = MLPClassifier(hidden_layer_sizes=(2048,), max_iter=1, engine=engine, random_state=0)
    model.fit(X[:200], rng.integers(0, CLASSES, 200))
    one_pass = 2 * X.itemsize * len(X) * (2048 + CLASSES)
    assert one_pass > 2.5 * estimator.PREDICT_CHUNK_BYTES
    result = len(X) * CLASSES * X.itemsize
    assert peak_of_predict(model, X) < 1.05 * estimator.PREDICT_CHUNK_BYTES + result


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_chunked_predictions_are_the_engines_own_per_chunk(monkeypatch, engine, dtype):
    """Each chunk is bitwise the engine's one pass over its rows; the chunks tile X in order, each
    within the budget; and the whole agrees with one pass over all rows to the rounding of BLAS
    (which rounds some rows differently with other rows around them)."""
    rng = np.random.default_rng(1)
    X = rng.random((5003, 64)).astype(dtype)
    model = MLPClassifier(hidden_layer_sizes=(300,), activation="tanh", max_iter=1, engine=engine,
                          dtype=dtype, random_state=0).fit(X[:300], rng.integers(0, CLASSES, 300))
    name = "predict_output" if engine == "fast" else "predict_output_reference"
    predict = getattr(solvers, name)
    theta, layout = model._pack_parameters(np.dtype(dtype))
    one_pass = predict(layout, theta, "tanh", "log_loss", X)
    monkeypatch.setattr(estimator, "PREDICT_CHUNK_BYTES", 1500 * 2 * X.itemsize * (300 + CLASSES))
    chunks = []

    def recorded(layout, theta, activation, loss, rows):
        chunks.append((rows.copy(), predict(layout, theta, activation, loss, rows)))
        return chunks[-1][1]

    monkeypatch.setattr(estimator, name, recorded)
    proba = model.predict_proba(X)
    assert [len(rows) for rows, _ in chunks] == [1250, 1251, 1251, 1251]
    np.testing.assert_array_equal(np.concatenate([rows for rows, _ in chunks]), X)
    np.testing.assert_array_equal(proba, np.concatenate([p for _, p in chunks]))
    bound = {"float32": 1e-5, "float64": 1e-12}[dtype]  # README: a dense layer's bound
    np.testing.assert_allclose(proba, one_pass, rtol=0, atol=bound)
