"""Each fast kernel against its reference counterpart (bounds: the README's exactness table).

The kernels work on the transpose of the reference's layout: a kernel array
``K`` of shape ``(m, n)`` is the reference's ``K.T``.

Bounds: elementwise kernels with the same operations (ReLU, Leaky ReLU and their
masks, bias add, SGD update, row gather) are bitwise equal. Kernels with a
transcendental function (exp, tanh) or a sum are within ``RTOL[dtype]``
relative to the magnitude of the values (NumPy's SIMD ``exp`` and LLVM's differ
by an ulp or two; sums run in another order).
"""

import os

import numba
import numpy as np
import pytest

from fastnn import reference as ref
from fastnn._aligned import ALIGNMENT, aligned_empty
from fastnn.kernels import blas
from fastnn.kernels._scalar import ACTIVATION_CODES
from fastnn.kernels.activations import (
    _activate,
    _activation_derivative,
    _bias_activate,
    _bias_activate_transposed,
    _inplace_row_bias_activate,
)
from fastnn.kernels.backward import _column_sums, _frobenius_norm, _inplace_activation_backward, _row_sums
from fastnn.kernels.blas import _gemm, _inner_chunk, _inplace_gemm_update, _small_block
from fastnn.kernels.dense import _dense_forward, _dense_softmax
from fastnn.kernels.epoch import _gather, _gather_rows, _train_batch
from fastnn.kernels.network import Net, make_work
from fastnn.kernels.optimizers import Mean, _inplace_adam, _inplace_momentum
from fastnn.kernels.outputs import _inplace_output_loss_grad, _squares_sum
from fastnn.kernels.rows import _add_but_last
from fastnn.kernels.softmax import _bias_softmax, _inplace_softmax_cross_entropy_grad
from fastnn.kernels.update import _inplace_sgd

from .conftest import ACTIVATIONS, DTYPES, network, on_cache_lines, placed

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = [(1, 1), (1, 7), (5, 3), (33, 17), (257, 129)]
EXACT = ("relu", "leaky_relu")


def test_kernels_are_built_as_the_environment_asks():
    """Serial by default; with FASTNN_PARALLEL_KERNELS=1 (tests/test_parallel_build.py),
    parallel, so that the tests of this module exercise the prange loops."""
    parallel = os.environ.get("FASTNN_PARALLEL_KERNELS") == "1"
    assert _column_sums.targetoptions.get("parallel", False) == parallel
    assert _gather_rows.targetoptions.get("parallel", False) == parallel


@pytest.mark.parametrize("kernel", [_dense_forward, _inplace_output_loss_grad, _squares_sum],
                         ids=["kernel", "ieee_kernel", "sum_kernel"])
def test_kernels_count_no_references(rng, kernel):
    """Built without Numba's reference counting (fastnn/kernels/_jit.py): the code holds no
    update of an array's count. One kernel of each decorator, compiled afresh, as cached code
    cannot be inspected; the output-layer kernel had two updates per row with it."""
    if os.environ.get("FASTNN_PARALLEL_KERNELS") == "1":
        pytest.skip("the parallel build counts references: its prange reductions allocate")
    options = {k: v for k, v in kernel.targetoptions.items() if k != "nopython"}  # njit sets it
    fresh = numba.njit(**options)(kernel.py_func)
    Z, b, Y = random(rng, (4, 3), np.float64), random(rng, 3, np.float64), random(rng, (4, 3), np.float64)
    arguments = {_dense_forward: (Z, Y, b, ACTIVATION_CODES["relu"], np.empty((4, 4)), np.empty((4, 4)),
                                  np.empty(0), np.empty(0)),
                 _inplace_output_loss_grad: (Z, b, Y, np.empty(0), 0, np.empty(4)),
                 _squares_sum: (b,)}
    fresh(*arguments[kernel])
    code = "".join(fresh.inspect_llvm().values())
    assert "define" in code
    assert "NRT_incref" not in code and "NRT_decref" not in code


def assert_close(got, want, dtype, scale=None):
    """``|got − want| ≤ RTOL · (|want| + scale)`` elementwise; ``scale`` defaults to ``max(1, max|want|)``."""
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def gemm_scale(A, W, b):
    """Magnitude of ``A · Wᵀ + b``'s terms, ``max(|A| · |W|ᵀ + |b|)``: a GEMM's error grows with it.

    Every activation and the softmax are 1-Lipschitz, so the bound carries over.
    """
    return max(1.0, float(np.max(np.abs(A) @ np.abs(W).T + np.abs(b))))


def assert_matches(got, want, dtype, exact):
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want, dtype)


def random(rng, shape, dtype, scale=3.0):
    # Exact zeros too, to pin ReLU'(0) = 0 and the sign conventions.
    A = (rng.standard_normal(shape) * scale).astype(dtype)
    A.flat[:: 7] = 0
    return A


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
class TestElementwise:
    def test_activate(self, rng, dtype, shape, activation):
        Z = random(rng, shape, dtype)
        out = np.empty_like(Z)
        _activate(Z, ACTIVATION_CODES[activation], out)
        assert_matches(out, ref.ACTIVATIONS[activation](Z), dtype, activation in EXACT)

    def test_bias_activate(self, rng, dtype, shape, activation):
        Z, b = random(rng, shape, dtype), random(rng, shape[1], dtype)
        out = np.empty_like(Z)
        _bias_activate(Z, b, ACTIVATION_CODES[activation], out)
        want = ref.ACTIVATIONS[activation](Z.T + b[:, None]).T
        assert_matches(out, want, dtype, activation in EXACT)

    def test_bias_activate_transposed(self, rng, dtype, shape, activation):
        Zt, b = random(rng, shape[::-1], dtype), random(rng, shape[1], dtype)
        out = np.empty(shape, dtype)
        _bias_activate_transposed(Zt, b, ACTIVATION_CODES[activation], out)
        want = ref.ACTIVATIONS[activation](Zt + b[:, None]).T
        assert_matches(out, want, dtype, activation in EXACT)

    def test_inplace_row_bias_activate(self, rng, dtype, shape, activation):
        Zt, b = random(rng, shape[::-1], dtype), random(rng, shape[1], dtype)
        want = ref.ACTIVATIONS[activation](Zt + b[:, None])
        _inplace_row_bias_activate(Zt, b, ACTIVATION_CODES[activation])
        assert_matches(Zt, want, dtype, activation in EXACT)

    def test_derivative_from_output(self, rng, dtype, shape, activation):
        Z = random(rng, shape, dtype)
        out = np.empty_like(Z)
        _activation_derivative(ref.ACTIVATIONS[activation](Z), ACTIVATION_CODES[activation], out)
        assert_matches(out, ref.DERIVATIVES[activation](Z), dtype, activation in EXACT)

    def test_activation_backward(self, rng, dtype, shape, activation):
        Z, dA = random(rng, shape, dtype), random(rng, shape, dtype)
        want = dA * ref.DERIVATIVES[activation](Z)
        _inplace_activation_backward(dA, ref.ACTIVATIONS[activation](Z), ACTIVATION_CODES[activation])
        assert_matches(dA, want, dtype, activation in EXACT)


LEAKY = ACTIVATION_CODES["leaky_relu"]
# Leaky ReLU's documented slope is 0.01; these values are worked out by hand from it:
# g(z) = z for z > 0, else 0.01·z; g'(z) = 1 for z > 0, else 0.01 (also at 0).
LEAKY_Z = [-100.0, -2.0, -0.5, 0.0, 3.0]
LEAKY_G = [-1.0, -0.02, -0.005, 0.0, 3.0]
LEAKY_DG = [0.01, 0.01, 0.01, 0.01, 1.0]


def kernel_out(kernel, *args):
    """Run an elementwise kernel whose last parameter is its output, of ``args[0]``'s dtype
    and shape (1, 5)."""
    out = np.empty((1, 5), args[0].dtype)
    kernel(*args, out)
    return out


def backward_of_ones(A):
    dA = np.ones_like(A)
    _inplace_activation_backward(dA, A, LEAKY)
    return dA


LEAKY_CASES = [
    ("reference leaky_relu", ref.leaky_relu, LEAKY_Z, LEAKY_G),
    ("reference derivative", ref.leaky_relu_derivative, LEAKY_Z, LEAKY_DG),
    ("_activate", lambda Z: kernel_out(_activate, Z, LEAKY), LEAKY_Z, LEAKY_G),
    ("_bias_activate", lambda Z: kernel_out(_bias_activate, np.zeros_like(Z), Z[0], LEAKY),
     LEAKY_Z, LEAKY_G),
    ("_bias_activate_transposed",
     lambda Z: kernel_out(_bias_activate_transposed, np.zeros_like(Z.T), Z[0], LEAKY), LEAKY_Z, LEAKY_G),
    # The fast engine takes g' from A = g(Z).
    ("_activation_derivative", lambda A: kernel_out(_activation_derivative, A, LEAKY), LEAKY_G, LEAKY_DG),
    ("_inplace_activation_backward", backward_of_ones, LEAKY_G, LEAKY_DG),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function, given, want", [case[1:] for case in LEAKY_CASES],
                         ids=[case[0] for case in LEAKY_CASES])
def test_leaky_relu_slope_is_one_hundredth(dtype, function, given, want):
    """Both engines against hand-computed values: the tests above compare the engines with each
    other, so a slope changed in the constant they share would pass them."""
    got = function(np.array([given], dtype))
    np.testing.assert_allclose(got, [want], rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
class TestRowsAndSums:
    def test_bias_softmax(self, rng, dtype, shape):
        Z, b = random(rng, shape, dtype), random(rng, shape[1], dtype)
        out = np.empty_like(Z)
        _bias_softmax(Z, b, out)
        assert_close(out, ref.softmax(Z.T + b[:, None]).T, dtype)

    def test_softmax_cross_entropy_grad(self, rng, dtype, shape):
        m, n = shape
        Z, b = random(rng, shape, dtype), random(rng, n, dtype)
        y = rng.integers(0, n, m)
        Y = ref.one_hot(y, n, dtype)
        A = ref.softmax(Z.T + b[:, None])
        losses, hits = np.empty(m), np.empty(m, np.int64)
        _inplace_softmax_cross_entropy_grad(Z, b, y, losses, hits)
        assert_close(Z, (A - Y).T, dtype)
        np.testing.assert_allclose(losses.mean(), ref.cross_entropy(A, Y), rtol=RTOL[dtype])
        np.testing.assert_array_equal(hits, np.argmax(A, axis=0) == y)

    def test_column_sums(self, rng, dtype, shape):
        D = random(rng, shape, dtype)
        out = np.empty(shape[1], dtype)
        _column_sums(D, out)
        assert_close(out, np.sum(D.T, axis=1), dtype)

    def test_row_sums_are_the_column_sums_of_the_transpose_bitwise(self, rng, dtype, shape):
        D = random(rng, shape, dtype)
        want, out = np.empty(shape[1], dtype), np.empty(shape[1], dtype)
        _column_sums(D, want)
        _row_sums(np.ascontiguousarray(D.T), out)
        np.testing.assert_array_equal(out, want)

    def test_frobenius_norm(self, rng, dtype, shape):
        A = random(rng, shape, dtype)
        np.testing.assert_allclose(_frobenius_norm(A), np.linalg.norm(A.astype(np.float64)),
                                   rtol=1e-12)

    def test_sgd_update_is_bitwise(self, rng, dtype, shape):
        theta, grad = random(rng, shape, dtype), random(rng, shape, dtype)
        want = [theta.copy()]
        ref.sgd_update(want, [grad], 0.1)
        _inplace_sgd(theta, grad, dtype(0.1))
        np.testing.assert_array_equal(theta, want[0])

    def test_gather_rows_is_bitwise(self, rng, dtype, shape):
        X, y = random(rng, shape, dtype), rng.integers(0, 9, shape[0])
        idx = rng.permutation(shape[0])
        X_out, y_out = np.empty_like(X), np.empty_like(y)
        _gather_rows(X, idx, X_out)
        _gather(y, idx, y_out)
        np.testing.assert_array_equal(X_out, X[idx])
        np.testing.assert_array_equal(y_out, y[idx])


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_sums_over_several_blocks_add_chunks_in_order(rng, dtype):
    """Columns in blocks of COLUMN_BLOCK (the last one short), rows in SUM_CHUNKS chunks: each
    chunk's sum row by row from 0, then the chunks' sums in order, bitwise."""
    from fastnn.kernels.backward import COLUMN_BLOCK, SUM_CHUNKS

    D = random(rng, (37, 2 * COLUMN_BLOCK + 5), dtype)
    want = np.zeros(D.shape[1], dtype)
    for c in range(SUM_CHUNKS):
        part = np.zeros(D.shape[1], dtype)
        for i in range(c * 37 // SUM_CHUNKS, (c + 1) * 37 // SUM_CHUNKS):
            part += D[i]
        want = part if c == 0 else want + part
    out = np.empty(D.shape[1], dtype)
    _column_sums(D, out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n_in, n_out", [(1, 1, 1), (3, 5, 2), (33, 17, 9), (200, 64, 31),
                                            (1, 3, 2), (4, 17, 9), (32, 784, 64)])  # 2m <= n_out: Wᵀ GEMM
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("transposing", [False, True], ids=["", "inputs transposed"])
@pytest.mark.parametrize("weights_transposed", [False, True], ids=["", "weights transposed"])
def test_dense_forward(rng, dtype, m, n_in, n_out, activation, transposing, weights_transposed):
    """With a buffer for ``A`` transposed (used by short batches only) and without; with ``Wᵀ``
    given (which every batch then reads) and without."""
    A, W, b = random(rng, (m, n_in), dtype), random(rng, (n_out, n_in), dtype), random(rng, n_out, dtype)
    out = np.empty((m, n_out), dtype)
    inputs_t = np.full(m * n_in + 3 if transposing else 0, np.nan, dtype)  # longer than needed
    weights_t = W.T.flatten() if weights_transposed else np.empty(0, dtype)
    _dense_forward(A, W, b, ACTIVATION_CODES[activation], out, np.full_like(out, np.nan), inputs_t, weights_t)
    if transposing and 2 * m <= n_out and not weights_transposed:
        np.testing.assert_array_equal(inputs_t[:m * n_in].reshape(n_in, m), A.T)
    Z = W @ A.T + b[:, None]
    scale = gemm_scale(A, W, b)
    assert_close(out, ref.ACTIVATIONS[activation](Z).T, dtype, scale)
    _dense_softmax(A, W, b, out)
    assert_close(out, ref.softmax(Z).T, dtype, scale)


def kernel_net(weights, biases, activation):
    """The kernels' :class:`Net` holding copies of ``weights`` and ``biases``, and its layout."""
    net = network(weights, biases, activation)
    return Net(net.theta, net.layout.table, ACTIVATION_CODES[activation]), net.layout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes, m", [([4, 3], 1), ([7, 5, 3], 9), ([13, 11, 6, 4], 33)])
@pytest.mark.parametrize("with_gradient", [False, True], ids=["fused", "from the gradient"])
def test_train_batch_is_one_reference_step(rng, dtype, activation, sizes, m, with_gradient):
    """One forward + backward + update equals the reference's three steps: with the update
    fused into the GEMM, and taken from the flat gradient (which also gives the norms)."""
    weights, biases = ref.init_params(sizes, "kaiming", rng, dtype)
    for B in biases:
        B[:] = random(rng, B.shape, dtype, 0.1)
    X, y = random(rng, (m, sizes[0]), dtype, 1.0), rng.integers(0, sizes[-1], m)
    Zs, As = ref.forward(weights, biases, activation, X.T)
    Y = ref.one_hot(y, sizes[-1], dtype)
    dWs, dBs = ref.backward(weights, activation, Zs, As, Y)
    want = [p.copy() for p in weights + biases]
    ref.sgd_update(want, dWs + dBs, 0.5)

    net, layout = kernel_net(weights, biases, activation)
    work = make_work(layout.table, m, dtype, grad_size=layout.size if with_gradient else 0,
                     track_norms=with_gradient)
    loss, hits = _train_batch(X, y, net, work, True, dtype(0.5), np.empty((0, sizes[0]), dtype))

    for got, expected in zip(layout.weights(net.theta) + layout.biases(net.theta), want):
        assert_close(got, expected, dtype)
    np.testing.assert_allclose(loss / m, ref.cross_entropy(As[-1], Y), rtol=RTOL[dtype])
    assert hits == np.sum(np.argmax(As[-1], axis=0) == y)
    if with_gradient:
        np.testing.assert_allclose(work.norms, [np.linalg.norm(dW) for dW in dWs], rtol=RTOL[dtype])
        for got, mean in zip(layout.weights(work.grad) + layout.biases(work.grad), dWs + dBs):
            assert_close(got / m, mean, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n_in, n_out", [(1, 1, 1), (3, 5, 2), (33, 17, 9), (200, 64, 31)])
def test_gemm_update_is_the_sgd_step(rng, dtype, m, n_in, n_out):
    """``W += α·dZᵀ·A`` in one BLAS call equals the reference's ``W −= lr·(dZ·Aᵀ)`` (layouts transposed)."""
    A, dZ = random(rng, (m, n_in), dtype), random(rng, (m, n_out), dtype)
    W = random(rng, (n_out, n_in), dtype)
    want = [W.copy()]
    ref.sgd_update(want, [dZ.T @ A], 0.25)
    _inplace_gemm_update(A, dZ, W, dtype(-0.25))
    assert_close(W, want[0], dtype, gemm_scale(dZ.T, A.T, W))


def operand(rng, shape, dtype, transposed, sliced, aligned=False):
    """A C-ordered operand of ``shape`` (or its transpose's), optionally a row-and-column slice;
    ``aligned``: every row on a cache line (conftest.on_cache_lines)."""
    rows, cols = shape[::-1] if transposed else shape
    if aligned:  # rows padded to whole cache lines, of which a slice skips one
        line = ALIGNMENT // np.dtype(dtype).itemsize  # elements a cache line
        padded = aligned_empty((rows + 1, -(-(cols + line) // line) * line), dtype)
        padded[...] = random(rng, padded.shape, dtype)
        start = line if sliced else 0
        return padded[int(sliced):rows + int(sliced), start:start + cols]
    if sliced:  # rows longer than the operand: BLAS sees a leading dimension > the row length
        return random(rng, (rows + 3, cols + 4), dtype)[1:rows + 1, 2:cols + 2]
    return random(rng, (rows, cols), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (5, 3, 7), (32, 17, 9)])
def test_gemm_against_numpy(rng, dtype, trans_a, trans_b, sliced, m, k, n, aligned=False):
    A = operand(rng, (m, k), dtype, trans_a, sliced, aligned)
    B = operand(rng, (k, n), dtype, trans_b, sliced, aligned)
    C = operand(rng, (m, n), dtype, False, sliced)
    opA, opB = (A.T if trans_a else A), (B.T if trans_b else B)
    want = dtype(0.5) * (opA @ opB) + dtype(2) * C
    _gemm(trans_a, trans_b, dtype(0.5), A, B, dtype(2), C)
    assert_close(C, want, dtype, float(np.max(np.abs(opA) @ np.abs(opB) + 2 * np.abs(C))))


# Shapes that OpenBLAS multiplies whole with its packing kernels but in blocks of rows with its
# small-matrix kernels: 70 rows of C in blocks of 32 (or 16, 8) and a last, shorter one (the
# last shape's float32 A·B also in chunks of its inner size: _inner_chunk).
BLOCKED = [(70, 600, 50), (100, 784, 20), (70, 784, 64)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("m, k, n", BLOCKED)
def test_gemm_in_blocks_against_numpy(rng, gemm_blocks, dtype, trans_a, trans_b, sliced, m, k, n):
    """Whole or in blocks of rows, every transposition, on views with longer rows: NumPy's product."""
    block = _small_block(trans_a, trans_b, m, n, k, np.dtype(dtype).itemsize)
    assert block == m if not gemm_blocks or (trans_a and trans_b) else block < m
    # Products over the batch's rows (Aᵀ·B) in chunks of 32 of them, and A·B where 32-row blocks
    # of C at the whole k exceed the small kernels' size limit (100³ multiply-adds).
    chunked = (bool(gemm_blocks) and not trans_b and dtype == np.float32
               and (trans_a or 32 * n * k > 100 ** 3))
    assert (_inner_chunk(trans_a, trans_b, m, n, k, np.dtype(dtype).itemsize) < k) is chunked
    test_gemm_against_numpy(rng, dtype, trans_a, trans_b, sliced, m, k, n, aligned=True)


@pytest.mark.parametrize("trans_a, trans_b, rows, cols, k, itemsize, want", [
    (False, True, 32, 9, 17, 4, 32),  # OpenBLAS's small kernels take it whole
    (False, True, 64, 32, 784, 4, 32),  # the forward W·Xᵀ of 64 units at batch 32
    (False, True, 64, 128, 784, 4, 8),  # X·Wᵀ, 128 units at batch 64: M·N ≤ 1200 for this product
    (False, True, 64, 128, 784, 8, 8),  # the same in float64
    (False, True, 64, 50, 600, 4, 16),  # the same limit: 32 rows would fit the size limit
    (False, False, 64, 784, 32, 4, 32),  # the gradient dZᵀ·X of 64 units at batch 32
    (False, False, 64, 784, 128, 8, 8),  # the same from dZᵀ as stored, at batch 128, float64
    (True, False, 64, 784, 64, 4, 16),  # the fused update of 64 units at batch 64
    (True, False, 64, 784, 64, 8, 16),  # the same in float64
    (True, False, 64, 784, 128, 4, 8),  # ... at batch 128: in blocks of 8 rows
    (True, False, 64, 784, 128, 8, 64),  # but not in float64: whole
    (False, True, 513, 128, 784, 4, 513),  # 65 blocks of 8 rows would be needed, one more than allowed
    (False, True, 512, 128, 784, 4, 8),
    (True, True, 64, 32, 784, 4, 64),  # OpenBLAS has no small kernel for this product
    (False, False, 64, 784, 784, 4, 64),  # not even 8 rows fit under its size limit
    (False, True, 0, 10, 10, 4, 1),  # no rows: one empty block
])
def test_small_block_follows_openblas_rule(monkeypatch, trans_a, trans_b, rows, cols, k, itemsize, want):
    """Blocks where OpenBLAS's small-matrix kernels take them (float64 products over the batch:
    not in 8-row blocks), and only with those kernels."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    assert _small_block(trans_a, trans_b, rows, cols, k, itemsize) == want
    monkeypatch.setattr(blas.small_kernels, "value", 0)
    assert _small_block(trans_a, trans_b, rows, cols, k, itemsize) == max(rows, 1)


@pytest.mark.parametrize("trans_a, trans_b, rows, cols, k, itemsize, want", [
    (True, False, 128, 784, 64, 4, 32),  # a piece's weight gradient of 128 units, 64 rows
    (True, False, 64, 784, 3750, 4, 32),  # 64 units over a full batch's piece of rows
    (True, False, 128, 784, 32, 4, 32),  # 32 rows or fewer: one call
    (True, False, 128, 784, 33, 4, 32),  # a chunk of 32 and one of 1
    (True, False, 128, 784, 64, 8, 64),  # float64: whole
    (True, True, 128, 784, 64, 4, 64),
    (True, False, 128, 1000, 64, 4, 64),  # 32 rows of C at k = 32 exceed the small kernels' size limit
    (True, False, 256, 784, 128, 4, 32),  # C of 0.8 MB, more than MAX_CHUNKED_OUTPUT_BYTES: 4 chunks
    (True, False, 256, 784, 129, 4, 129),  # but not 5
    (True, False, 2048, 64, 64, 4, 32),  # 64 blocks of 32 rows of C, 512 KiB
    (True, False, 4096, 32, 64, 4, 64),  # 128 blocks would be needed
])
def test_inner_chunk_rule(monkeypatch, trans_a, trans_b, rows, cols, k, itemsize, want):
    """Float32 products over the batch go in 32-row chunks where OpenBLAS's small-matrix kernels
    take C in 32-row blocks at that size; only with those kernels and the switch on."""
    assert_chunk_switches(monkeypatch, blas.inner_chunks, blas.input_chunks,
                          (trans_a, trans_b, rows, cols, k, itemsize), want)


@pytest.mark.parametrize("rows, cols, k, itemsize, want", [
    (103, 128, 784, 4, 196),  # the forward product X·(W[0]ᵀ) of 128 units over a piece of 103 rows
    (6000, 128, 784, 4, 196),  # ... over a full batch's piece
    (64, 64, 784, 4, 392),
    (64, 32, 784, 4, 784),  # 32-row blocks of C fit whole
    (64, 128, 785, 4, 197),  # near-equal chunks, the last one shorter
    (64, 256, 784, 4, 784),  # would take 7 chunks
    (31, 128, 784, 4, 784),  # fewer rows than a block
    (103, 128, 784, 8, 784),  # float64: whole
    (64, 784, 128, 4, 32),  # the units split's weight gradient dZᵀ·X at batch 128 (as stored: A·B)
])
def test_input_chunk_rule(monkeypatch, rows, cols, k, itemsize, want):
    """Float32 products A·B go in at most 4 near-equal chunks of their inner size where OpenBLAS's
    small-matrix kernels then take C in 32-row blocks; only with those kernels and their switch on."""
    assert_chunk_switches(monkeypatch, blas.input_chunks, blas.inner_chunks,
                          (False, False, rows, cols, k, itemsize), want)
    assert _inner_chunk(False, True, rows, cols, k, itemsize) == k  # A·Bᵀ: never


def assert_chunk_switches(monkeypatch, own, other, args, want):
    """``_inner_chunk(*args)`` is ``want`` with the small kernels and both switches on, and with
    the ``other`` chunks' switch off; all of ``k`` with its ``own`` switch off or without the small
    kernels."""
    k = args[4]
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    assert _inner_chunk(*args) == want
    monkeypatch.setattr(other, "value", 0)
    assert _inner_chunk(*args) == want
    monkeypatch.setattr(other, "value", 1)
    monkeypatch.setattr(own, "value", 0)
    assert _inner_chunk(*args) == k
    monkeypatch.setattr(own, "value", 1)
    monkeypatch.setattr(blas.small_kernels, "value", 0)
    assert _inner_chunk(*args) == k


@pytest.mark.parametrize("cols, k, want", [(128, 784, True), (64, 784, True), (256, 784, False),
                                           (100, 64, True), (1200, 784, False)])
def test_small_input_blocks(monkeypatch, cols, k, want):
    """Whether the engines read a first layer's weights transposed: its forward product, whole or
    in chunks, fits the small kernels in 32-row blocks; never without them or the switch."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    assert blas.small_input_blocks(cols, k) is want
    monkeypatch.setattr(blas.input_chunks, "value", 0)
    assert blas.small_input_blocks(cols, k) is False
    monkeypatch.setattr(blas.input_chunks, "value", 1)
    monkeypatch.setattr(blas.small_kernels, "value", 0)
    assert blas.small_input_blocks(cols, k) is False


def test_input_chunks_add_up_in_order(rng, monkeypatch):
    """A·B of 70 rows, 128 columns and inner size 784 in chunks: each 32-row block of C (32, 32,
    6 rows) bitwise its four chunks' products (196 columns of A) added in turn; ``beta`` applies
    to C once, not per chunk."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    A, B = random(rng, (70, 784), np.float32), random(rng, (784, 128), np.float32)
    C0 = random(rng, (70, 128), np.float32)
    want = C0.copy()
    for i in (0, 32, 64):
        for start in range(0, 784, 196):
            block = want[i:i + 32]  # a view: each chunk adds to the block left by the last
            _gemm(False, False, 2.0, A[i:i + 32, start:start + 196].copy(), B[start:start + 196].copy(),
                  0.5 if start == 0 else 1.0, block)
    assert_chunked(monkeypatch, blas.input_chunks, False, A, B, C0, want)


def test_chunks_add_up_in_order(rng, monkeypatch):
    """A product over 70 rows in chunks: bitwise the chunks' products added to C in turn (32, 32
    and 6 rows); and ``beta`` applies to C once, not per chunk."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    A, B = random(rng, (70, 40), np.float32), random(rng, (70, 50), np.float32)
    C0 = random(rng, (40, 50), np.float32)
    want = C0.copy()
    for start, beta in ((0, 0.5), (32, 1.0), (64, 1.0)):
        _gemm(True, False, 2.0, A[start:start + 32].copy(), B[start:start + 32].copy(), beta, want)
    assert_chunked(monkeypatch, blas.inner_chunks, True, A, B, C0, want)


def assert_chunked(monkeypatch, switch, trans_a, A, B, C0, want):
    """``C0 ← 2·op(A)·B + 0.5·C0`` through ``_gemm`` is bitwise ``want`` (its chunks added in
    turn), and not what the product gives with ``switch`` off (whole)."""
    got = C0.copy()
    _gemm(trans_a, False, 2.0, A, B, 0.5, got)
    np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(switch, "value", 0)
    whole = C0.copy()
    _gemm(trans_a, False, 2.0, A, B, 0.5, whole)
    assert not np.array_equal(whole, got)  # the chunks were taken: the sum rounds otherwise


@pytest.mark.parametrize("offset, row_bytes, want", [(0, 3136, True), (0, 256, True), (16, 3136, False),
                                                     (0, 40, False), (0, 200, False)])
def test_on_cache_lines(offset, row_bytes, want):
    """The tests' check of the engines' buffers (conftest.on_cache_lines)."""
    X = placed(np.zeros((3, row_bytes // 4), np.float32), offset)
    assert on_cache_lines(X) is want
    assert on_cache_lines(X[:1]) is (offset == 0)  # one row: its start alone


def test_small_kernels_are_used_with_openblas_avx512_cores():
    """The switch is on by default exactly where the kernels' OpenBLAS runs an AVX-512 core, as
    threadpoolctl (which asks the library itself) reports it."""
    from threadpoolctl import threadpool_info

    cores = [i.get("architecture") for i in threadpool_info() if i["filepath"] == blas.SOURCE]
    assert blas.CORE == (cores[0] if cores else None)
    assert blas.small_kernels.value == (blas.CORE in blas.SMALL_KERNEL_CORES)


def test_gemm_refuses_mismatched_shapes(rng):
    A, B = random(rng, (4, 3), np.float64), random(rng, (5, 2), np.float64)
    with pytest.raises(ValueError, match="shapes do not match"):
        _gemm(False, False, 1.0, A, B, 0.0, np.empty((4, 2)))


@pytest.mark.parametrize("view", [lambda X: X[:, ::2], lambda X: X.T, lambda X: X[::-1]])
def test_gemm_refuses_rows_that_are_not_contiguous(rng, view):
    """BLAS would read the wrong elements: refuse, never compute silently wrong."""
    X = view(random(rng, (6, 6), np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        _gemm(False, False, 1.0, X, np.ones((X.shape[1], 2)), 0.0, np.empty((X.shape[0], 2)))


BLAS_RUN = """
import sys, warnings
if sys.argv[1] == "no wheel":
    sys.modules["scipy_openblas32"] = None  # as if the wheel could not be imported
warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning after max_iter epochs
import numpy as np
from sklearn.datasets import load_digits
from fastnn.kernels import blas
from fastnn.testing import assert_engines_equal
X, y = load_digits(return_X_y=True)
assert_engines_equal(X[:400] / 16, y[:400], max_iter=2, hidden_layer_sizes=(512,), batch_size=32,
                     dtype="float32", solver="sgd", momentum=0.0, alpha=0.0, learning_rate_init=0.1,
                     n_iter_no_change=float("inf"))
print(blas.SOURCE)
"""


def run_with_blas(how, library=None):
    """``BLAS_RUN`` in a fresh process (the kernels bind their BLAS at import), with
    ``FASTNN_BLAS=library`` if given: its output, or the error it ended with."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FASTNN_BLAS"}
    if library is not None:
        env["FASTNN_BLAS"] = library
    out = subprocess.run([sys.executable, "-c", BLAS_RUN, how], capture_output=True, text=True, env=env)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


def test_scipy_blas_is_the_fallback():
    assert run_with_blas("no wheel") == "scipy.linalg.cython_blas"


def wheel_library():
    import scipy_openblas32

    directory = scipy_openblas32.get_lib_dir()
    return next(os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.startswith("lib"))


def mkl_library():
    """MKL's library as the ``mkl`` wheel installs it, or None."""
    import glob
    import sys

    found = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    return found[0] if found else None


@pytest.mark.parametrize("library", [wheel_library, mkl_library], ids=["wheel by path", "mkl"])
def test_fastnn_blas_names_the_library(library):
    """``FASTNN_BLAS`` binds the kernels to the library at that path; the engines still agree."""
    path = library()
    if path is None:
        pytest.skip("the mkl wheel is not installed")
    assert run_with_blas("wheel", path) == path


@pytest.mark.parametrize("path, error", [("/no/such/libblas.so", "cannot load it"),
                                         (np.__file__, "cannot load it"),
                                         ("libc.so.6", "no sgemm_ in it")])
def test_fastnn_blas_refuses_what_is_not_a_blas(path, error):
    assert run_with_blas("wheel", path).startswith(f"ImportError: FASTNN_BLAS={path}: {error}")


def test_a_gemm_that_computes_wrong_is_refused():
    """The load check's product: float32 GEMM read as float64 (in bounds: it reads and writes
    half the bytes) gives wrong numbers."""
    from fastnn.kernels import blas

    blas._check_gemm(blas._addresses["dgemm"], np.float64, "same")  # the right one passes
    with pytest.raises(ImportError, match="FASTNN_BLAS=wrong: its float64 GEMM gave wrong results"):
        blas._check_gemm(blas._addresses["sgemm"], np.float64, "wrong")


def test_kernels_use_the_openblas_wheel():
    """pyproject requires it: the kernels' BLAS is the scipy-openblas32 library, unless
    ``FASTNN_BLAS`` named another for this run."""
    from fastnn.kernels import blas

    assert blas.SOURCE == os.environ.get("FASTNN_BLAS", wheel_library())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes, m", [([5, 4, 3], 7), ([9, 8, 6, 4], 33)])
def test_train_batch_gives_the_gradient_below(rng, dtype, activation, sizes, m):
    """Trained on a hidden layer's output, a step also returns that layer's ``dZ``:
    ``(W[1]ᵀ·dZ[1]) ∗ g'(Z[0])``, propagated down from ``A − Y`` by the chain rule."""
    weights, biases = ref.init_params(sizes, "kaiming", rng, dtype)
    X, y = random(rng, (m, sizes[0]), dtype, 1.0), rng.integers(0, sizes[-1], m)
    Zs, As = ref.forward(weights, biases, activation, X.T)
    dZ = As[-1] - ref.one_hot(y, sizes[-1], dtype)
    for l in range(len(weights) - 1, 0, -1):
        dZ = (weights[l].T @ dZ) * ref.DERIVATIVES[activation](Zs[l - 1])
    net, layout = kernel_net(weights[1:], biases[1:], activation)
    got = np.empty((m, sizes[1]), dtype)
    _train_batch(np.ascontiguousarray(As[1].T), y, net, make_work(layout.table, m, dtype), True,
                 dtype(0.5), got)
    assert_close(got, dZ.T, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ["momentum", "adam"])
@pytest.mark.parametrize("written, within", [(0.5, True), (-3.0, True), (-3.5, False), (4.0, False),
                                             (np.inf, False), (np.nan, False)])
def test_updates_tell_whether_every_value_they_write_is_within_a_bound(dtype, rule, written, within):
    """The update kernels report whether every new value of θ is within ``±bound`` (here 3.25),
    NaN and infinities outside: the solver epoch skips the L2 sum by it where α = 0. With a
    gradient of ones, rate 1 and the rules' memory off, both steps are ``θ ← θ − 1``: one
    parameter starts at ``written + 1``, the others within ``[−1, 1]``."""
    n, bound, plain = 37, 3.25, Mean(0.0, 1.0, False)
    theta = np.linspace(-1, 1, n).astype(dtype)
    theta[n // 2] = dtype(written) + 1
    grad, m, v = np.ones(n, dtype), np.zeros(n, dtype), np.zeros(n, dtype)
    if rule == "momentum":  # μ = 0: v = −g
        answer = _inplace_momentum(theta, grad, grad[:0], m, 1.0, 0.0, False, plain, bound)
    else:  # β₁ = β₂ = 0, ε = 0: m = g, v = g²
        answer = _inplace_adam(theta, grad, grad[:0], m, v, 1.0, 0.0, 0.0, 0.0, plain, bound)
    np.testing.assert_array_equal(theta[n // 2], dtype(written))  # NaN where NaN
    assert np.abs(np.delete(theta, n // 2)).max() <= 2
    assert answer is within


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_pieces", [1, 2, 3, 5])
def test_pieces_gradients_added_but_the_last_then_the_last_are_their_in_order_sum(rng, dtype, n_pieces):
    """The epochs add the pieces' gradients into row 0 in piece order but the last, which the
    update adds as it reads it: ``row 0 + last`` rounds to the in-order sum, bitwise; rows
    other than row 0 and elements outside ``lo:hi`` are left alone."""
    grads = random(rng, (n_pieces, 53), dtype) * 40
    before = grads.copy()
    lo, hi = 7, 41
    total, last = _add_but_last(grads, lo, hi)
    want = before[0, lo:hi].copy()
    for row in before[1:, lo:hi]:
        want += row
    got = total + last if n_pieces > 1 else total
    assert last.shape == ((hi - lo,) if n_pieces > 1 else (0,))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(grads[1:], before[1:])
    np.testing.assert_array_equal(np.delete(grads[0], np.s_[lo:hi]), np.delete(before[0], np.s_[lo:hi]))
    assert np.shares_memory(total, grads[0])
