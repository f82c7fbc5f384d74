"""Peak memory of a fit, traced by tracemalloc (NumPy reports its buffers to it)."""

import tracemalloc

import numpy as np
import pytest

from fastnn import MLPClassifier
from fastnn._threads import default_blas_threads
from fastnn.layout import Layout
from fastnn.split import split_workers

N, FEATURES, HIDDEN, CLASSES = 20_000, 784, 128, 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((N, FEATURES), dtype=np.float32), rng.integers(0, CLASSES, N)


def peak_of_fit(X, y, **params):
    model = MLPClassifier(hidden_layer_sizes=(HIDDEN,), epochs=1, random_state=0, **params)
    model.fit(X[:300], y[:300])  # load the compiled kernels first: that is not the fit's data
    tracemalloc.start()
    try:
        model.fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fast_minibatch_fit_does_not_copy_float32_data(data):
    X, y = data
    assert peak_of_fit(X, y, batch_size=128) < 0.05 * X.nbytes


def test_fast_minibatch_fit_copies_float64_data_once(data):
    X, y = data
    X64 = X.astype(np.float64)
    assert peak_of_fit(X64, y, batch_size=128) < 1.1 * X.nbytes  # one float32 copy


def test_reference_fit_copies_the_data_once(data):
    X, y = data
    # The (features, samples) transpose, plus one-hot labels and per-batch temporaries.
    assert peak_of_fit(X, y, batch_size=128, engine="reference") < 1.1 * X.nbytes


@pytest.mark.parametrize("n_threads", [1, None])
def test_full_batch_memory_need_is_as_stated(data, n_threads):
    """README: full-batch training on n samples needs about
    itemsize · n · (2 · H + c · n_classes) bytes beyond the data, c = 1 with one
    worker and 2·w + 1 with w workers."""
    X, y = data
    workers = split_workers(Layout([FEATURES, HIDDEN, CLASSES]), n_threads or default_blas_threads())
    copies = 2 * workers + 1 if workers > 1 else 1
    stated = X.itemsize * N * (2 * HIDDEN + copies * CLASSES)
    peak = peak_of_fit(X, y, batch_size=None, n_threads=n_threads)
    assert 0.9 * stated < peak < 1.1 * stated
