"""The reference engine's gradients against independent math (float64)."""

import numpy as np
import pytest

from fastnn import reference as ref

from .conftest import ACTIVATIONS


def loss_at(weights, biases, activation, X, Y):
    return ref.cross_entropy(ref.forward(weights, biases, activation, X)[1][-1], Y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [[3, 4], [5, 7, 3], [4, 6, 5, 3]])
def test_backward_matches_central_differences(activation, sizes):
    rng = np.random.default_rng(7)
    weights, biases = ref.init_params(sizes, "xavier", rng, np.float64)
    for B in biases:
        B[:] = rng.standard_normal(B.shape) * 0.1
    m = 11
    # Random inputs: a pre-activation within h of ReLU's kink, where the difference quotient
    # is meaningless, has negligible probability (and is fixed by the seed).
    X = rng.standard_normal((sizes[0], m))
    Y = ref.one_hot(rng.integers(0, sizes[-1], m), sizes[-1], np.float64)
    Zs, As = ref.forward(weights, biases, activation, X)
    dWs, dBs = ref.backward(weights, activation, Zs, As, Y)
    h = 1e-6
    for theta, analytic in zip(weights + biases, dWs + dBs):
        numeric = np.empty_like(theta)
        for k in np.ndindex(theta.shape):
            saved = theta[k]
            theta[k] = saved + h
            up = loss_at(weights, biases, activation, X, Y)
            theta[k] = saved - h
            down = loss_at(weights, biases, activation, X, Y)
            theta[k] = saved
            numeric[k] = (up - down) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_one_step_by_hand():
    """A 1-1-2 network, one sample, worked out on paper.

    W1 = [[2]], B1 = [[-1]], W2 = [[1], [-1]], B2 = 0, x = 1, y = 0, α = 0.5:
    z1 = 1, a1 = 1, z2 = (1, −1), a2 = (e², 1)/(e² + 1) = (σ(2), σ(−2)),
    dz2 = (σ(2) − 1, σ(−2)) = (−σ(−2), σ(−2)), dW2 = dz2 · a1 = dz2,
    dz1 = W2ᵀ dz2 · ReLU'(1) = −2σ(−2), dW1 = dz1 · x, dB1 = dz1.
    """
    s = 1 / (1 + np.exp(2.0))
    weights = [np.array([[2.0]]), np.array([[1.0], [-1.0]])]
    biases = [np.array([[-1.0]]), np.zeros((2, 1))]
    X, Y = np.array([[1.0]]), np.array([[1.0], [0.0]])
    Zs, As = ref.forward(weights, biases, "relu", X)
    np.testing.assert_allclose(As[-1], [[1 - s], [s]])
    assert ref.cross_entropy(As[-1], Y) == pytest.approx(-np.log(1 - s))
    dWs, dBs = ref.backward(weights, "relu", Zs, As, Y)
    np.testing.assert_allclose(dWs[1], [[-s], [s]])
    np.testing.assert_allclose(dWs[0], [[-2 * s]])
    np.testing.assert_allclose(dBs[0], [[-2 * s]])
    ref.sgd_update(weights + biases, dWs + dBs, 0.5)
    np.testing.assert_allclose(weights[0], [[2 + s]])
    np.testing.assert_allclose(biases[1], [[s / 2], [-s / 2]])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_derivatives_match_central_differences(activation):
    Z = np.linspace(-6, 6, 241) + 0.013  # avoid z = 0 exactly
    h = 1e-6
    g = ref.ACTIVATIONS[activation]
    numeric = (g(Z + h) - g(Z - h)) / (2 * h)
    np.testing.assert_allclose(ref.DERIVATIVES[activation](Z), numeric, rtol=1e-6, atol=1e-9)


def test_relu_derivative_at_zero_is_zero():
    assert ref.relu_derivative(np.zeros(1))[0] == 0
    assert ref.leaky_relu_derivative(np.zeros(1))[0] == ref.LEAKY_SLOPE


def test_init_scales():
    rng = np.random.default_rng(0)
    for init, gain in (("xavier", 1), ("kaiming", 2)):
        (W,), (B,) = ref.init_params([400, 300], init, rng, np.float64)
        assert W.shape == (300, 400) and B.shape == (300, 1) and not B.any()
        assert np.std(W) == pytest.approx(np.sqrt(gain / 400), rel=0.02)
