"""The benchmark is fair only if every peer trains the same model: check their weights.

After one epoch from the same weights on the same batch order, every peer's
weights match fastnn's reference engine (float32, to a bound relative to the
largest weight). PyTorch and JAX are checked when installed.
"""

import importlib.util

import numpy as np
import pytest

from bench._peers import OPTIONAL, PEERS, make_sklearn
from fastnn import reference
from fastnn._threads import thread_limits

SIZES, N, BATCH = [20, 16, 12, 5], 300, 32


def trained(make, order, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.random((N, SIZES[0]), dtype=np.float32)
    y = np.arange(N) % SIZES[-1]
    weights, biases = reference.init_params(SIZES, "kaiming", np.random.default_rng(1), np.float32)
    epoch, params = make(X, y, SIZES, BATCH, 0.1, weights, biases, **kwargs)
    with thread_limits():
        epoch(order)
    return params()


def assert_same_model(got, want):
    scale = max(float(np.abs(p).max()) for p in want[0] + want[1])
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", [n for n in PEERS if n not in ("fastnn reference", "scikit-learn")])
def test_peer_trains_the_reference_model(name):
    if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name]) is None:
        pytest.skip(f"{OPTIONAL[name]} is not installed")
    order = np.random.default_rng(2).permutation(N)
    assert_same_model(trained(PEERS[name], order), trained(PEERS["fastnn reference"], order))


def test_sklearn_trains_the_reference_model_in_stored_order():
    order = np.arange(N)
    assert_same_model(trained(make_sklearn, order, shuffle=False),
                      trained(PEERS["fastnn reference"], order))
