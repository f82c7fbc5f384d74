import importlib
import pkgutil
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastnn import MLPClassifier
from fastnn._aligned import ALIGNMENT, aligned_empty
from fastnn.testing import TRAINING_RTOL, parameters

# "ci" keeps the property tests within CI's budget and draws the same examples every run
# (a red CI is then a change of ours, not a new draw); "dev" explores, run it by hand:
#   pytest --hypothesis-profile=dev
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

DTYPES = [np.float32, np.float64]
# scikit-learn's names ("logistic" is the sigmoid) and fastnn's leaky_relu.
ACTIVATIONS = ["relu", "leaky_relu", "logistic", "tanh", "identity"]
# The old engine stack's training rule through the estimator: plain mini-batch SGD (no momentum,
# no L2 term) at rate 0.1 for exactly max_iter epochs (no early stop: scikit-learn then warns
# with a ConvergenceWarning at the end of fit).
PLAIN_SGD = {"solver": "sgd", "momentum": 0.0, "alpha": 0.0, "learning_rate_init": 0.1,
             "n_iter_no_change": float("inf")}


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled digits, scaled to [0, 1], split 80/20 with a fixed seed."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.2, random_state=0, stratify=y)


def flat_vector(model):
    """The one flat vector θ of which a fitted model's parameters are views (``Layout`` order, so
    starting with the first weight), and the buffer that holds it: θ starts on a cache line
    inside a slightly larger buffer (fastnn._aligned), which NumPy reports as every view's
    ``base``."""
    first, owner = model.coefs_[0], model.coefs_[0].base
    size = sum(p.size for p in parameters(model))
    start = first.ctypes.data - owner.ctypes.data
    return owner.view(np.uint8)[start:start + size * first.itemsize].view(first.dtype), owner


def on_cache_lines(X):
    """Whether every row of the 2-D ``X`` starts on a cache line (fastnn._aligned.ALIGNMENT),
    as OpenBLAS's small-matrix kernels run fastest."""
    return X.ctypes.data % ALIGNMENT == 0 and (X.shape[0] < 2 or X.strides[0] % ALIGNMENT == 0)


def placed(array, offset):
    """A copy of ``array`` whose data start ``offset`` bytes past a cache line."""
    raw = aligned_empty(array.nbytes + ALIGNMENT, np.uint8)[offset:offset + array.nbytes]
    out = raw.view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def kernel_dispatchers():
    """Every compiled function of fastnn.kernels, by module and name (one imported into
    another module is listed there too)."""
    from numba.core.dispatcher import Dispatcher

    import fastnn.kernels

    for info in pkgutil.iter_modules(fastnn.kernels.__path__):
        module = importlib.import_module(f"fastnn.kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Dispatcher):
                yield f"{info.name}.{name}", value


def kernel_signatures():
    """Each kernel's count of compiled (or cache-loaded) argument-type signatures in this
    process."""
    return {name: len(kernel.signatures) for name, kernel in kernel_dispatchers()}


def read_only_twins():
    """The kernels' signatures in this process that differ from another of the same kernel only
    in which arrays are read-only: each was compiled once more than needed."""
    twins = []
    for name, kernel in kernel_dispatchers():
        seen = Counter(", ".join(map(str, types)).replace("readonly ", "") for types in kernel.signatures)
        twins += [f"{name}({signature})" for signature, count in seen.items() if count > 1]
    return twins


def network(weights, biases, activation="relu"):
    """An engine's :class:`~fastnn.engine.Network` holding copies of ``weights`` and ``biases``."""
    from fastnn.engine import network_of

    return network_of(weights, biases, activation)


@pytest.fixture(params=[0, 1], ids=["whole-gemms", "gemm-blocks"])
def gemm_blocks(request, monkeypatch):
    """Both ways the kernels can call BLAS, whatever this machine's BLAS is: each GEMM whole,
    or in the blocks of rows that OpenBLAS's AVX-512 small-matrix kernels take
    (fastnn.kernels.blas._small_block; float32 products over the batch also in chunks of its
    rows, _inner_chunk; elsewhere the blocks run OpenBLAS's other kernels).
    The kernels read the switch at run time. Returns it."""
    from fastnn.kernels import blas

    monkeypatch.setattr(blas.small_kernels, "value", request.param)
    return request.param


@pytest.fixture
def made_engines(monkeypatch):
    """The fast engines (serial or split) that the test's fits create, in order."""
    from fastnn import fast

    made = []
    init = fast.FastEngine.__init__

    def recorded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(fast.FastEngine, "__init__", recorded)
    return made


def assert_stable(X, y, **params):
    """Training with ``params`` is out of the chaotic regime, where comparing two engines
    would test chaos, not rounding: one ulp more on one output weight (in use whatever the
    data: a softmax unit is never dead) must move the trained reference model by less than
    a tenth of the engines' bound, relative to its largest parameter."""
    params = {"random_state": 0, **params, "engine": "reference", "n_threads": 1}
    initialize = MLPClassifier._initialize
    nudges = []

    def nudged(self, *args, **kwargs):
        initialize(self, *args, **kwargs)
        self.coefs_[-1][0, 0] = np.nextafter(self.coefs_[-1][0, 0], np.inf)
        nudges.append(self.coefs_[-1][0, 0])

    plain = MLPClassifier(**params).fit(X, y)
    with mock.patch.object(MLPClassifier, "_initialize", nudged):
        moved = MLPClassifier(**params).fit(X, y)
    assert len(nudges) == 1
    pairs = list(zip(parameters(plain), parameters(moved)))
    change = max(np.abs(a - b).max() for a, b in pairs) / max(np.abs(a).max() for a, _ in pairs)
    bound = TRAINING_RTOL[plain.coefs_[0].dtype.name]
    assert change < bound / 10, f"a one-ulp nudge moved the model by {change:.1e} (bound {bound})"
