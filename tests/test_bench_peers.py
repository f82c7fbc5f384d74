"""The benchmark is fair only if every peer trains the same model: check their weights.

After one epoch from the same weights on the same batch order, every peer's
weights match fastnn's reference engine (float32, to a bound relative to the
largest weight). PyTorch and JAX are checked when installed.
"""

import importlib.util
import os

import numpy as np
import pytest

from bench._machine import describe
from bench._peers import OPTIONAL, PEERS, PLAIN, Rule, limits, make_sklearn
from fastnn import reference

N, BATCH = 300, 32
# Two hidden layers, and one: the network fastnn's fast engine splits across workers.
SIZES = [[20, 16, 12, 5], [20, 16, 5]]


# Adam with a negligible epsilon: PyTorch adds it to the bias-corrected root (see Rule).
RULES = {"sgd": (PLAIN, 0.1), "nesterov": (Rule("nesterov"), 0.05),
         "adam": (Rule("adam", epsilon=1e-30), 0.01)}


def trained(make, order, sizes, rule="sgd", **kwargs):
    rng = np.random.default_rng(0)
    X = rng.random((N, sizes[0]), dtype=np.float32)
    y = np.arange(N) % sizes[-1]
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(1), np.float32)
    rule, lr = RULES[rule]
    epoch, params = make(X, y, sizes, BATCH, lr, weights, biases, rule=rule, **kwargs)
    with limits(epoch):
        epoch(order)
    return params()


def assert_same_model(got, want):
    scale = max(float(np.abs(p).max()) for p in want[0] + want[1])
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("sizes", SIZES, ids=["2-hidden", "1-hidden"])
@pytest.mark.parametrize("name", [n for n in PEERS if n not in ("fastnn reference", "scikit-learn")])
def test_peer_trains_the_reference_model(name, sizes, rule):
    if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name]) is None:
        pytest.skip(f"{OPTIONAL[name]} is not installed")
    order = np.random.default_rng(2).permutation(N)
    assert_same_model(trained(PEERS[name], order, sizes, rule),
                      trained(PEERS["fastnn reference"], order, sizes, rule))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("sizes", SIZES, ids=["2-hidden", "1-hidden"])
def test_sklearn_trains_the_reference_model_in_stored_order(sizes, rule):
    order = np.arange(N)
    assert_same_model(trained(make_sklearn, order, sizes, rule, shuffle=False),
                      trained(PEERS["fastnn reference"], order, sizes, rule))


def test_the_rules_move_the_weights_differently():
    """Each rule is its own: not plain SGD under another name."""
    order = np.random.default_rng(2).permutation(N)
    models = {rule: trained(PEERS["fastnn reference"], order, SIZES[1], rule) for rule in RULES}
    first = {rule: model[0][0] for rule, model in models.items()}
    assert not np.allclose(first["sgd"], first["nesterov"], rtol=0, atol=1e-4)
    assert not np.allclose(first["nesterov"], first["adam"], rtol=0, atol=1e-4)


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads /proc/cpuinfo")
def test_benchmarks_name_the_instruction_set_the_cpu_reports():
    """A benchmark's speed claim names its machine: the widest vector set LLVM sees is the one
    the kernel reports in /proc/cpuinfo's flags."""
    with open("/proc/cpuinfo") as info:
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), None)
    if flags is None:
        pytest.skip("/proc/cpuinfo lists no flags (not x86)")
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
                   if flag in flags), None)
    line = describe()
    assert line.endswith(f", {os.cpu_count()} cores")
    if widest is not None:
        assert f", {widest} (" in line
