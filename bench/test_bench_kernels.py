"""Each kernel, reference vs fast, on a batch-128 layer of a 784-128-10 network (float32).

    pytest bench/test_bench_kernels.py --benchmark-group-by=group

Each group holds the reference's NumPy expression and the fast kernel for the
same operation, in the layouts each engine uses.
"""

import numpy as np
import pytest
from numba import njit

from fastnn import reference as ref
from fastnn._aligned import aligned_empty
from fastnn.kernels import blas
from fastnn.kernels._scalar import RELU
from fastnn.kernels.activations import _bias_activate
from fastnn.kernels.backward import _column_sums, _inplace_activation_backward, _row_sums
from fastnn.kernels.blas import _gemm, _gemm_call, _inplace_gemm_update
from fastnn.kernels.dense import _dense_forward, _transpose_into
from fastnn.kernels.epoch import _gather_rows
from fastnn.kernels.softmax import _inplace_softmax_cross_entropy_grad
from fastnn.kernels.update import _inplace_sgd
from tests.conftest import placed

M, N_IN, N_HIDDEN, N_OUT = 128, 784, 128, 10
rng = np.random.default_rng(0)
X = rng.random((M, N_IN), dtype=np.float32)
W = (rng.standard_normal((N_HIDDEN, N_IN)) * 0.05).astype(np.float32)
B = np.zeros((N_HIDDEN, 1), np.float32)
Z = rng.standard_normal((M, N_HIDDEN)).astype(np.float32)
Z_OUT = rng.standard_normal((M, N_OUT)).astype(np.float32)
Y = rng.integers(0, N_OUT, M)
STEP = np.float32(0.01)


@pytest.mark.benchmark(group="dense forward (GEMM + bias + ReLU)")
def test_dense_forward_reference(benchmark):
    Xt = np.ascontiguousarray(X.T)
    benchmark(lambda: ref.relu(W @ Xt + B))


@pytest.mark.benchmark(group="dense forward (GEMM + bias + ReLU)")
def test_dense_forward_fast(benchmark):
    out = np.empty((M, N_HIDDEN), np.float32)
    benchmark(_dense_forward, X, W, B.ravel(), RELU, out, np.empty_like(out), B.ravel()[:0], B.ravel()[:0])


@pytest.fixture
def one_blas_thread():
    """As a worker of the split epoch calls BLAS (64 units: its share of 128)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.mark.benchmark(group="forward GEMM at batch 32")
@pytest.mark.parametrize("units", [64, 128])
def test_forward_gemm_batch32_direct(benchmark, one_blas_thread, units):
    Xb, Wb = X[:32], W[:units]
    benchmark(_gemm, False, True, np.float32(1), Xb, Wb, np.float32(0), np.empty((32, units), np.float32))


@pytest.mark.benchmark(group="forward GEMM at batch 32")
@pytest.mark.parametrize("units", [64, 128])
def test_forward_gemm_batch32_transposed(benchmark, one_blas_thread, units):
    Xb, Wb = X[:32], W[:units]
    benchmark(_gemm, False, True, np.float32(1), Wb, Xb, np.float32(0), np.empty((units, 32), np.float32))


@pytest.mark.benchmark(group="first-layer forward at batch 32")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_in, units", [(64, 100), (128, 100), (256, 128)])
@pytest.mark.parametrize("transposing", [False, True], ids=["W·Xᵀ", "transpose, then W·(Xᵀ)"])
def test_first_layer_forward_transposing_inputs(benchmark, one_blas_thread, dtype, n_in, units, transposing):
    """Where the short-batch forward transposes its inputs first
    (fastnn.kernels.network.MAX_TRANSPOSED_INPUTS): the whole forward pass of a hidden layer."""
    Xb, Wb = np.ascontiguousarray(X[:32, :n_in], dtype), np.ascontiguousarray(W[:units, :n_in], dtype)
    b = B.ravel()[:units].astype(dtype)
    out, scratch = np.empty((32, units), dtype), np.empty((32, units), dtype)
    inputs_t = np.empty(32 * n_in if transposing else 0, dtype)
    benchmark(_dense_forward, Xb, Wb, b, RELU, out, scratch, inputs_t, inputs_t[:0])


@pytest.mark.benchmark(group="a worker's first-layer GEMMs at batch 32: whole, half the rows, half the units")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, units", [(32, 128), (16, 128), (32, 64)], ids=["whole", "rows", "units"])
def test_first_layer_gemms_shared_by_rows_or_units(benchmark, one_blas_thread, dtype, rows, units):
    """Why the solver team shares the first hidden layer's units at small batches
    (fastnn.solvers.MAX_UNIT_SHARING_ROWS): the forward GEMM ``W·Xᵀ`` and the weight gradient
    ``dZᵀ·X`` of one worker's share of a batch of 32 rows of 784-128-10."""
    Xb, Wb = X[:rows].astype(dtype), W[:units].astype(dtype)
    Zt, dW = np.empty((units, rows), dtype), np.empty((units, N_IN), dtype)

    def both():
        _gemm(False, True, 1.0, Wb, Xb, 0.0, Zt)
        _gemm(False, False, 1.0, Zt, Xb, 0.0, dW)

    benchmark(both)


@pytest.mark.benchmark(group="first-layer GEMMs in blocks")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, units", [(32, 64), (32, 128), (64, 64), (128, 64)])
@pytest.mark.parametrize("product", ["W·Xᵀ", "X·Wᵀ", "W += a·dZᵀ·X", "dZᵀ·X", "(dZᵀ stored)·X"])
@pytest.mark.parametrize("offset", [0, 16], ids=["aligned", "16 bytes past"])
@pytest.mark.parametrize("blocks", [False, True], ids=["whole", "blocks"])
def test_first_layer_gemms_in_blocks(benchmark, monkeypatch, one_blas_thread, dtype, rows, units, product,
                                     offset, blocks):
    """One worker's first-layer GEMMs of 784-units-10 at a batch of ``rows`` (the units split at
    batch 32 to 128, the serial engine at 32): the forward both ways round, the plain engines'
    fused update and weight gradient, the solver's weight gradient from ``dZᵀ`` as it stores it;
    whole or in blocks, with the operands on a cache line (as the engines allocate them:
    fastnn._aligned) or 16 bytes past one. Measures OpenBLAS's small-matrix kernels where the
    kernels' OpenBLAS has them (fastnn.kernels.blas.small_kernels), its others elsewhere."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    gemm = blas._gemm_in_blocks if blocks else _gemm_call
    benchmark(gemm, *first_layer_gemm(product, dtype, rows, units, offset))


@pytest.mark.benchmark(group="8-row blocks")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("product", ["W += a·dZᵀ·X", "dZᵀ·X"])
@pytest.mark.parametrize("blocks", [False, True], ids=["whole", "8-row blocks"])
def test_weight_gradients_in_8_row_blocks(benchmark, one_blas_thread, dtype, product, blocks):
    """A worker's fused update and weight gradient of 64 units at batch 128, aligned, whole or in
    the 8-row blocks that OpenBLAS's small-matrix kernels take (none larger fits their limit):
    why float64 products over the batch go in blocks of 16 rows or more only
    (fastnn.kernels.blas.MIN_FLOAT64_TN_BLOCK_ROWS)."""
    call = first_layer_gemm(product, dtype, 128, 64, 0)
    if blocks:
        benchmark(blas._gemm_blocks, *call, 8)
    else:
        benchmark(_gemm_call, *call)


@njit
def weight_gradient_in_chunks(dZ, X, G, chunk):
    """``G = dZᵀ·X`` as the kernels form it (``fastnn.kernels.blas._gemm_in_blocks``) but in
    chunks of ``chunk`` rows of ``dZ`` and ``X`` whatever the rule, each in the blocks of ``G``'s
    rows that OpenBLAS's small-matrix kernels take at that size."""
    block = blas._small_block(True, False, G.shape[0], G.shape[1], min(chunk, X.shape[0]), G.itemsize)
    for start in range(0, X.shape[0], chunk):
        blas._gemm_blocks(True, False, 1.0, dZ[start:start + chunk], X[start:start + chunk],
                          0.0 if start == 0 else 1.0, G, block)


@pytest.mark.benchmark(group="weight gradients in chunks of rows")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [64, 128, 256, 3750])
@pytest.mark.parametrize("units", [64, 128, 256])
@pytest.mark.parametrize("chunk", [0, 16, 32, 64], ids=["whole", "16", "32", "64"])
def test_weight_gradients_in_chunks(benchmark, monkeypatch, one_blas_thread, dtype, rows, units, chunk):
    """One worker's first-layer weight gradient ``dZᵀ·X`` of ``units`` × 784 over ``rows`` rows (a
    piece of a batch shared by rows: 64 rows at batch 1024 until 2026-11-28, 3,750 at full batch; or the units
    split at batch 128), aligned, in one product or in chunks of ``chunk`` rows added in turn:
    why float32 products over the batch go in 32-row chunks (fastnn.kernels.blas.INNER_CHUNK_ROWS)
    and float64 ones whole, and those of 256 units over 128 rows at most
    (fastnn.kernels.blas.MAX_CHUNKED_OUTPUT_BYTES)."""
    if chunk >= rows:
        pytest.skip("one chunk is the whole product")
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    X_rows = aligned_empty((rows, N_IN), dtype)
    X_rows[...] = np.resize(X, (rows, N_IN))
    dZ = aligned_empty((rows, units), dtype)
    dZ[...] = np.resize(Z, (rows, units))
    G = aligned_empty((units, N_IN), dtype)
    benchmark(weight_gradient_in_chunks, dZ, X_rows, G, chunk or rows)


@pytest.mark.benchmark(group="first-layer forward reading W or Wᵀ")
@pytest.mark.parametrize("rows", [64, 103, 128, 3750])
@pytest.mark.parametrize("units", [64, 128, 256])
@pytest.mark.parametrize("way", ["X·Wᵀ", "X·(Wᵀ)", "X·(Wᵀ), input chunks"])
def test_first_layer_forward_reading_transposed_weights(benchmark, monkeypatch, one_blas_thread, rows,
                                                        units, way):
    """One worker's first-layer forward product of 784-units-10 over a piece of ``rows`` rows
    (float32, aligned; 103 rows: a batch of 1,024 in 10 pieces, 3,750: a full batch's piece):
    reading ``W`` as stored (as before; blocks where the small-matrix kernels take them), or a
    copy of ``Wᵀ`` (an untransposed product), in blocks of the whole inner size or in chunks of
    it: why the engines read ``W[0]ᵀ`` at large batches where the chunks fit
    (fastnn.kernels.network.transposes_weights, fastnn.kernels.blas._input_chunk)."""
    monkeypatch.setattr(blas.small_kernels, "value", 1)
    monkeypatch.setattr(blas.input_chunks, "value", int(way.endswith("chunks")))
    Xb = aligned_empty((rows, N_IN), np.float32)
    Xb[...] = np.resize(X, (rows, N_IN))
    Wb = aligned_empty((units, N_IN), np.float32)
    Wb[...] = np.resize(W, (units, N_IN))
    Wt = aligned_empty((N_IN, units), np.float32)
    Wt[...] = Wb.T
    C = aligned_empty((rows, units), np.float32)
    if way == "X·Wᵀ":
        benchmark(_gemm, False, True, 1.0, Xb, Wb, 0.0, C)
    else:
        benchmark(_gemm, False, False, 1.0, Xb, Wt, 0.0, C)


@pytest.mark.benchmark(group="first-layer forward reading W or Wᵀ")
@pytest.mark.parametrize("units", [64, 128, 256])
def test_transposing_first_layer_weights(benchmark, units):
    """What reading ``Wᵀ`` costs a worker once a step: the copy (fastnn.kernels.epoch._transpose_weights)."""
    Wb = np.resize(W, (units, N_IN))
    benchmark(_transpose_into, Wb, aligned_empty((N_IN, units), np.float32))


def first_layer_gemm(product, dtype, rows, units, offset):
    """The arguments of ``_gemm_call`` for one of :func:`test_first_layer_gemms_in_blocks`'s
    products, the operands ``offset`` bytes past a cache line: 0, or 16 (where NumPy's large
    arrays start, past glibc's 16-byte chunk header)."""
    Wb = placed(W[:units].astype(dtype), offset)
    Xb = placed(np.resize(X, (rows, N_IN)).astype(dtype), offset)
    dZ = placed(np.resize(Z, (rows, units)).astype(dtype), offset)
    dZt = placed(np.ascontiguousarray(dZ.T), offset)
    out = {"W·Xᵀ": (units, rows), "X·Wᵀ": (rows, units)}.get(product, (units, N_IN))
    C = placed(np.zeros(out, dtype), offset)
    return {"W·Xᵀ": (False, True, 1.0, Wb, Xb, 0.0, C), "X·Wᵀ": (False, True, 1.0, Xb, Wb, 0.0, C),
            "W += a·dZᵀ·X": (True, False, 1e-9, dZ, Xb, 1.0, Wb),
            "dZᵀ·X": (True, False, 1.0, dZ, Xb, 0.0, C),
            "(dZᵀ stored)·X": (False, False, 1.0, dZt, Xb, 0.0, C)}[product]


@pytest.mark.benchmark(group="bias + ReLU")
def test_bias_relu_reference(benchmark):
    Zt = np.ascontiguousarray(Z.T)
    benchmark(lambda: ref.relu(Zt + B))


@pytest.mark.benchmark(group="bias + ReLU")
def test_bias_relu_fast(benchmark):
    out = np.empty_like(Z)
    benchmark(_bias_activate, Z, B.ravel(), RELU, out)


@pytest.mark.benchmark(group="softmax + cross-entropy gradient")
def test_softmax_grad_reference(benchmark):
    Zt, Yh = np.ascontiguousarray(Z_OUT.T), ref.one_hot(Y, N_OUT, np.float32)

    def run():
        A = ref.softmax(Zt)
        return ref.cross_entropy(A, Yh), A - Yh

    benchmark(run)


@pytest.mark.benchmark(group="softmax + cross-entropy gradient")
def test_softmax_grad_fast(benchmark):
    work, losses, hits = np.empty_like(Z_OUT), np.empty(M), np.empty(M, np.int64)
    b = np.zeros(N_OUT, np.float32)

    def run():
        work[:] = Z_OUT
        _inplace_softmax_cross_entropy_grad(work, b, Y, losses, hits)

    benchmark(run)


@pytest.mark.benchmark(group="backward ReLU mask")
def test_mask_reference(benchmark):
    dA, Zt = np.ascontiguousarray(Z.T), np.ascontiguousarray(Z.T)
    benchmark(lambda: dA * ref.relu_derivative(Zt))


@pytest.mark.benchmark(group="backward ReLU mask")
def test_mask_fast(benchmark):
    dA, A = Z.copy(), np.maximum(Z, 0)
    benchmark(_inplace_activation_backward, dA, A, RELU)


@pytest.mark.benchmark(group="bias gradient")
def test_bias_grad_reference(benchmark):
    Zt = np.ascontiguousarray(Z.T)
    benchmark(lambda: (1 / M) * np.sum(Zt, axis=1, keepdims=True))


@pytest.mark.benchmark(group="bias gradient")
def test_bias_grad_fast(benchmark):
    out = np.empty(N_HIDDEN, np.float32)
    benchmark(_column_sums, Z, out)


@pytest.mark.benchmark(group="bias sums")
@pytest.mark.parametrize("rows", [32, 128])
@pytest.mark.parametrize("way", ["NumPy", "fast"])
def test_row_sums(benchmark, rows, way):
    """A worker's first-layer bias gradient when the units are shared out: 64 units' rows of
    ``dZᵀ`` summed over a batch's rows (the solver epoch's ``_row_sums``)."""
    Dt = np.ascontiguousarray(Z[:rows, :64].T)
    out = np.empty(64, np.float32)
    if way == "NumPy":
        benchmark(np.sum, Dt, axis=1, out=out)
    else:
        benchmark(_row_sums, Dt, out)


@pytest.mark.benchmark(group="weight gradient + SGD update")
def test_weight_update_reference(benchmark):
    Xt, dZt, Wr = np.ascontiguousarray(X.T), np.ascontiguousarray(Z.T), W.copy()

    def run():
        ref.sgd_update([Wr], [(1 / M) * (dZt @ Xt.T)], 1e-6)

    benchmark(run)


@pytest.mark.benchmark(group="weight gradient + SGD update")
def test_weight_update_fast(benchmark):
    Wf = W.copy()
    benchmark(_inplace_gemm_update, X, Z, Wf, np.float32(-1e-6 / M))


@pytest.mark.benchmark(group="SGD update (in place)")
def test_sgd_reference(benchmark):
    Wr, G = W.copy(), W * 0.001
    benchmark(ref.sgd_update, [Wr], [G], 1e-6)


@pytest.mark.benchmark(group="SGD update (in place)")
def test_sgd_fast(benchmark):
    Wf, G = W.copy(), W * 0.001
    benchmark(_inplace_sgd, Wf, G, STEP)


@pytest.mark.benchmark(group="batch gather")
def test_gather_reference(benchmark, mnist_shaped):
    Xt = np.ascontiguousarray(mnist_shaped[0][:5000].T)
    idx = rng.permutation(5000)[:M]
    benchmark(lambda: Xt[:, idx])


@pytest.mark.benchmark(group="batch gather")
def test_gather_fast(benchmark, mnist_shaped):
    Xs = mnist_shaped[0][:5000]
    idx = rng.permutation(5000)[:M]
    benchmark(_gather_rows, Xs, idx, np.empty((M, N_IN), np.float32))
