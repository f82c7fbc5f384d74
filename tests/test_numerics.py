"""Hard numerics: huge logits, underflowing probabilities, saturated sigmoids. Both engines."""

import warnings

import numpy as np
import pytest

from fastnn import reference as ref
from fastnn.kernels._scalar import ACTIVATION_CODES
from fastnn.kernels.activations import _activate
from fastnn.kernels.softmax import _bias_softmax, _inplace_softmax_cross_entropy_grad

from .conftest import DTYPES


def logits(dtype):
    # Each row: a dominant logit ±1e4 apart from the rest, and a tie.
    return np.array([[1e4, 0, -1e4], [-1e4, -1e4, -1e4 + 1], [1e4, 1e4, -1e4]], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_logits_is_finite_and_exact(dtype):
    Z = logits(dtype)
    want = np.array([[1, 0, 0], [np.exp(-1) / (2 * np.exp(-1) + 1), np.exp(-1) / (2 * np.exp(-1) + 1),
                      1 / (2 * np.exp(-1) + 1)], [0.5, 0.5, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        reference = ref.softmax(Z.T).T
    fast = np.empty_like(Z)
    _bias_softmax(Z, np.zeros(3, dtype), fast)
    for got in (reference, fast):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=np.finfo(dtype).eps * 4, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_is_finite_when_the_true_class_underflows(dtype):
    Z = np.array([[1e4, 0, -1e4], [0, 1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    y = np.array([2, 2, 2])  # each true class has probability 0 in the dtype
    A = ref.softmax(Z.T)
    expected = -np.log(np.finfo(dtype).tiny)  # clipped, per sample
    assert ref.cross_entropy(A, ref.one_hot(y, 3, dtype)) == pytest.approx(expected)
    losses, hits = np.empty(3), np.empty(3, np.int64)
    grad = Z.copy()
    _inplace_softmax_cross_entropy_grad(grad, np.zeros(3, dtype), y, losses, hits)
    np.testing.assert_allclose(losses, expected)
    assert np.isfinite(grad).all() and not hits.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturating_activations_are_stable(dtype, activation):
    Z = np.array([[-1e4, -80, -20, 0, 20, 80, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = ref.ACTIVATIONS[activation](Z)
    fast = np.empty_like(Z)
    _activate(Z, ACTIVATION_CODES[activation], fast)
    low = 0 if activation == "sigmoid" else -1
    for got in (reference, fast):
        assert np.isfinite(got).all()
        assert got[0, 0] == low and got[0, -1] == 1 and got[0, 3] == (0.5 if low == 0 else 0)
        assert np.all(np.diff(got) >= 0)
    # sigmoid(-80) = exp(-80)/(1 + exp(-80)) is a normal number even in float32: no cancellation.
    if activation == "sigmoid":
        np.testing.assert_allclose(fast[0, 1], np.exp(-80.0), rtol=1e-6)
        np.testing.assert_allclose(reference[0, 1], np.exp(-80.0), rtol=1e-6)
