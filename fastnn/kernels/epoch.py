"""One whole epoch of mini-batch SGD in a single compiled call.

Per batch of ``m`` samples (rows of ``X`` in ``order``), layers ``l = 1..L``::

    A[l] = g(A[l-1] · W[l]ᵀ + b[l])             (_dense_forward; softmax for l = L)
    dZ[L] = A[L] − onehot(y)                    (fused with the loss, in place)
    dA[l-1] = dZ[l] · W[l]        then  dZ[l-1] = dA[l-1] ∗ g'(A[l-1])
    W[l] −= (α/m) · dZ[l]ᵀ · A[l-1]             b[l] −= (α/m) · Σ_rows dZ[l]
                                                (one GEMM writing into W: blas.py)

which is :mod:`fastnn.reference`'s math transposed, with the ``1/m`` folded into
the step. Every buffer is allocated once per fit by the caller and sliced to
the batch; the interpreter is not entered between batches.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from ._scalar import like
from .backward import _backpropagate, _frobenius_norm
from .blas import _gemm
from .dense import _dense_forward
from .softmax import _inplace_softmax_cross_entropy_grad
from .update import _inplace_sgd_layer


@kernel
def _gather_rows(X, y, idx, X_out, y_out):
    """``X_out[i] = X[idx[i]]``, ``y_out[i] = y[idx[i]]``: one shuffled batch, made contiguous.

    The element loop, not a row-slice copy: Numba's slice assignment measured
    3x slower here (bench/test_bench_kernels.py, group "batch gather").
    """
    n_features = X.shape[1]
    for i in prange(idx.shape[0]):
        row = idx[i]
        y_out[i] = y[row]
        for j in range(n_features):
            X_out[i, j] = X[row, j]


@kernel
def _train_batch(Xb, yb, weights, biases, acts, deltas, grad_w, grad_b, losses, hits, norms,
                 code, step, input_delta):
    """One SGD step on the batch ``Xb`` (``m × n_in``); return its summed loss and hit count.

    When ``norms`` is not empty, ``norms[l] += ‖dW[l]‖`` (the batch-mean gradient's norm).
    When ``input_delta`` is not empty, it receives ``(dZ[1] · W[1]) ∗ g'(Xb)``: the
    gradient of the layer below, when ``Xb = g(Z)`` is itself a hidden layer's output
    (the split epoch trains the layers above its second this way).
    """
    L = len(weights)
    m = Xb.shape[0]
    step_m = like(Xb, step / m)
    inputs = [Xb]
    for l in range(L - 1):
        _dense_forward(inputs[l], weights[l], biases[l], code, acts[l][:m], deltas[l][:m])
        inputs.append(acts[l][:m])
    dZ = acts[L - 1][:m]
    _gemm(False, True, 1, inputs[L - 1], weights[L - 1], 0, dZ)
    _inplace_softmax_cross_entropy_grad(dZ, biases[L - 1], yb, losses[:m], hits[:m])
    for l in range(L - 1, -1, -1):
        if norms.shape[0] > 0:
            _gemm(True, False, 1, dZ, inputs[l], 0, grad_w[l])
            norms[l] += _frobenius_norm(grad_w[l]) / m
        if l > 0:  # dA[l-1] needs W[l] before its update
            _backpropagate(dZ, weights[l], inputs[l], code, deltas[l - 1][:m])
        elif input_delta.shape[0] > 0:
            _backpropagate(dZ, weights[0], Xb, code, input_delta)
        _inplace_sgd_layer(dZ, inputs[l], weights[l], biases[l], grad_b[l], step_m)
        if l > 0:
            dZ = deltas[l - 1][:m]
    return np.sum(losses[:m]), np.sum(hits[:m])


@kernel
def _train_epoch(X, y, order, batch_size, weights, biases, acts, deltas, grad_w, grad_b,
                 x_batch, y_batch, losses, hits, norms, code, step):
    """Run one epoch; ``order`` empty means the rows as stored. Return the summed loss and hits.

    The buffers must hold ``min(batch_size, n)`` rows (and ``x_batch``, ``y_batch``
    too when ``order`` is given); ``order`` must hold valid row indices. Only the
    sizes are checked here: :class:`fastnn.fast.Engine` checks ``order``.
    """
    n = X.shape[0]
    rows = min(batch_size, n)
    if batch_size < 1 or acts[0].shape[0] < rows or losses.shape[0] < rows or hits.shape[0] < rows:
        raise ValueError("work buffers are smaller than a batch")
    if order.shape[0] != 0 and (order.shape[0] != n or x_batch.shape[0] < rows
                                or y_batch.shape[0] < rows):
        raise ValueError("order or the gather buffers do not fit the data")
    loss, n_hits = 0.0, 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if order.shape[0] == 0:
            Xb, yb = X[start:stop], y[start:stop]
        else:
            Xb, yb = x_batch[:stop - start], y_batch[:stop - start]
            _gather_rows(X, y, order[start:stop], Xb, yb)
        batch_loss, batch_hits = _train_batch(Xb, yb, weights, biases, acts, deltas, grad_w, grad_b,
                                              losses, hits, norms, code, step, x_batch[:0])
        loss += batch_loss
        n_hits += batch_hits
    return loss, n_hits
