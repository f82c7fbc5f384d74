import numpy as np
import pytest

from fastnn._threads import thread_limits


@pytest.fixture(autouse=True)
def fastnn_threads():
    """fastnn's thread model around every benchmark, as fit sets it."""
    with thread_limits():
        yield


@pytest.fixture(scope="session")
def mnist_shaped():
    """60,000 MNIST-shaped synthetic samples (784 features, 10 classes), float32."""
    rng = np.random.default_rng(0)
    return rng.random((60_000, 784), dtype=np.float32), rng.integers(0, 10, 60_000)
