"""A dense layer's forward pass: one BLAS GEMM, then one fused epilogue pass.

.. math:: A = g(A_{prev} W^T + b)

``A_prev`` is ``(m, n_in)``, ``W`` the reference's ``(n_out, n_in)`` and ``b``
``(n_out,)``; the engine's ``(samples, features)`` layout is the transpose of
the reference's ``Z = W·A + B``. The GEMM is a BLAS call (:mod:`.blas`) with
``W`` passed as a transposed operand, not copied; or, where the caller keeps a copy of ``Wᵀ``
(the first layer at large batches: :func:`.network.transposes_weights`), ``A_prev · (Wᵀ)``, a
product of two untransposed operands, which OpenBLAS's small-matrix kernels run faster.

For a short batch (``2·m ≤ n_out``) the GEMM is computed the other way round,
``W · A_prevᵀ``, and the epilogue transposes it while adding the bias: OpenBLAS
runs that product 1.3x faster at batch 32 with 64 or 128 units
(``bench/test_bench_kernels.py``, group "forward GEMM at batch 32") and is
slower with it for long batches (a copy of ``Wᵀ``, where given, comes first). Where the caller
gives a buffer for it (narrow inputs:
:func:`.network.transposes_inputs`), ``A_prev`` is first transposed into it, so that
OpenBLAS multiplies two untransposed operands, faster again at those widths.
"""


from ._jit import helper, kernel
from .activations import _bias_activate, _bias_activate_transposed
from .blas import _gemm
from .network import _short_batch
from .softmax import _bias_softmax


@helper
def _transpose_into(A, out):
    """``out = Aᵀ`` (``out`` C-contiguous, of ``Aᵀ``'s shape)."""
    for j in range(A.shape[1]):
        for i in range(A.shape[0]):
            out[j, i] = A[i, j]


@kernel
def _dense_forward(A_prev, W, b, code, out, work, inputs_t, weights_t):
    """``out = g(A_prev · Wᵀ + b)``, ``out`` of shape ``(m, n_out)``; ``work`` (C-contiguous,
    of ``out``'s shape) is overwritten, and so is ``inputs_t`` (flat): if it holds ``A_prev``'s
    elements, a short batch's product reads ``A_prev`` transposed there. If ``weights_t`` (flat)
    is not empty, it holds ``Wᵀ``, and the product reads it: ``A_prev · (Wᵀ)``."""
    m, n_out = out.shape
    if weights_t.shape[0] > 0:
        _gemm(False, False, 1.0, A_prev, weights_t.reshape(W.shape[1], n_out), 0.0, out)
        _bias_activate(out, b, code, out)
    elif _short_batch(m, n_out):
        Zt = work.reshape(n_out, m)
        n_in = A_prev.shape[1]
        if inputs_t.shape[0] >= m * n_in:
            At = inputs_t[:m * n_in].reshape(n_in, m)
            _transpose_into(A_prev, At)
            _gemm(False, False, 1.0, W, At, 0.0, Zt)
        else:
            _gemm(False, True, 1.0, W, A_prev, 0.0, Zt)
        _bias_activate_transposed(Zt, b, code, out)
    else:
        _gemm(False, True, 1.0, A_prev, W, 0.0, out)
        _bias_activate(out, b, code, out)


@helper
def _dense_softmax(A_prev, W, b, out):
    """``out = softmax(A_prev · Wᵀ + b)`` row by row: the output layer."""
    _gemm(False, True, 1.0, A_prev, W, 0.0, out)
    _bias_softmax(out, b, out)

