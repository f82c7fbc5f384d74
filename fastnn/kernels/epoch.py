"""One whole epoch of mini-batch SGD in a single compiled call, and its parts.

Per batch of ``m`` samples (rows of ``X`` in ``order``), layers ``l = 1..L``::

    A[l] = g(A[l-1] · W[l]ᵀ + b[l])             (_dense_forward; softmax for l = L)
    dZ[L] = A[L] − onehot(y)                    (fused with the loss, in place)
    dA[l-1] = dZ[l] · W[l]        then  dZ[l-1] = dA[l-1] ∗ g'(A[l-1])
    W[l] −= (α/m) · dZ[l]ᵀ · A[l-1]             b[l] −= (α/m) · Σ_rows dZ[l]
                                                (one GEMM writing into W: blas.py)

which is :mod:`fastnn.reference`'s math transposed, with the ``1/m`` folded into
the step. The same pass can instead write the batch's summed gradient
``Σ_rows dZ[l]ᵀ · A[l-1]`` into a flat array of the parameters' layout and leave
the parameters alone (:func:`_train_batch` with ``update=False``): what L-BFGS
and a data-parallel step need. Every buffer is allocated once per fit by the
caller (:func:`fastnn.kernels.network.make_work`) and sliced to the batch; the
interpreter is not entered between batches.
"""

from numba import prange

from ._jit import helper, kernel
from ._scalar import like
from .backward import _backpropagate, _column_sums, _frobenius_norm
from .blas import _gemm
from .dense import _dense_forward, _dense_softmax, _transpose_into
from .network import _bias, _block, _layer, _units_below, _weights
from .softmax import _inplace_softmax_cross_entropy_grad
from .update import _inplace_sgd, _inplace_sgd_layer


@kernel
def _gather_rows(X, idx, X_out):
    """``X_out[i] = X[idx[i]]`` for a matrix ``X``: one shuffled batch's rows, made contiguous.

    The element loop, not a row-slice copy: Numba's slice assignment measured 3x slower here
    (bench/test_bench_kernels.py, group "batch gather"), and its shape-error message alone
    took 2 s to compile (bench/compile_time.py).
    """
    n_features = X.shape[1]
    for i in prange(idx.shape[0]):
        row = idx[i]
        for j in range(n_features):
            X_out[i, j] = X[row, j]


@helper
def _gather(y, idx, y_out):
    """``y_out[i] = y[idx[i]]`` for a vector ``y`` (labels, sample weights)."""
    for i in range(idx.shape[0]):
        y_out[i] = y[idx[i]]


@helper
def _hidden_forward(Xb, net, work):
    """Every hidden layer's output for the batch ``Xb`` into ``work.acts``; return the last
    (``Xb`` itself when there is no hidden layer)."""
    m = Xb.shape[0]
    capacity = work.losses.shape[0]
    A = Xb
    for l in range(net.table.shape[0] - 1):
        out = _block(work.acts, net.table, l, capacity, m)
        scratch = _block(work.deltas, net.table, l, capacity, m)
        first = l == 0  # Work's buffers fit the first layer
        inputs_t = work.inputs_t if first else work.inputs_t[:0]
        weights_t = work.weights_t if first else work.weights_t[:0]
        _dense_forward(A, _weights(net.theta, net.table, l), _bias(net.theta, net.table, l), net.code,
                       out, scratch, inputs_t, weights_t)
        A = out
    return A


@helper
def _transpose_weights(net, work):
    """``work.weights_t = W[0]ᵀ`` where ``work`` has that buffer (:func:`.network.transposes_weights`):
    after every change of θ, before the first layer's next forward product."""
    if work.weights_t.shape[0] > 0:
        W = _weights(net.theta, net.table, 0)
        if work.weights_t.shape[0] != W.size:
            raise ValueError("the transposed weights' buffer does not fit the first layer")
        _transpose_into(W, work.weights_t.reshape(W.shape[1], W.shape[0]))


@helper
def _forward(Xb, yb, net, work):
    """Every layer's output for the batch ``Xb`` into ``work.acts``; the output layer's
    block ends as ``dZ[L] = softmax − onehot(yb)``, which is returned. Each row's loss
    and hit go to ``work.losses``, ``work.hits``."""
    L = net.table.shape[0]
    m = Xb.shape[0]
    A = _hidden_forward(Xb, net, work)
    dZ = _block(work.acts, net.table, L - 1, work.losses.shape[0], m)
    _gemm(False, True, 1.0, A, _weights(net.theta, net.table, L - 1), 0.0, dZ)
    _inplace_softmax_cross_entropy_grad(dZ, _bias(net.theta, net.table, L - 1), yb, work.losses[:m],
                                        work.hits[:m])
    return dZ


@kernel
def _predict(X, net, work, out):
    """``out = softmax(…)``: the class probabilities of every row of ``X`` (``work`` holds
    ``X.shape[0]`` rows)."""
    L = net.table.shape[0]
    _transpose_weights(net, work)
    A = _hidden_forward(X, net, work)
    _dense_softmax(A, _weights(net.theta, net.table, L - 1), _bias(net.theta, net.table, L - 1), out)


@helper
def _layer_gradient(dZ, A_in, grad, table, l):
    """Layer ``l``'s summed gradient into the flat ``grad``: ``dW = dZᵀ·A_in``, ``db = Σ_rows dZ``."""
    _gemm(True, False, 1.0, dZ, A_in, 0.0, _weights(grad, table, l))
    _column_sums(dZ, _bias(grad, table, l))


@helper
def _train_batch(Xb, yb, net, work, update, step, input_delta):
    """Forward and backward through the batch ``Xb`` (``m × n_in``); return its summed loss
    and hit count.

    With ``update``, take the SGD step ``θ −= (step/m) · dθ`` on ``net.theta``. When
    ``work.grad`` is not empty, the summed gradient of the batch is written there
    first (and the step, if any, taken from it); otherwise the step is fused into
    the weight-gradient GEMM. When ``work.norms`` is not empty, ``norms[l] += ‖dW[l]‖``
    (the batch mean's norm). When ``input_delta`` is not empty it receives
    ``(dZ[1] · W[1]) ∗ g'(Xb)``: the gradient of the layer below, when ``Xb = g(Z)``
    is itself a hidden layer's output (the split epoch trains the layers above its
    second this way).
    """
    table, theta, code = net.table, net.theta, net.code
    m = Xb.shape[0]
    capacity = work.losses.shape[0]
    step_m = like(Xb, step / m)
    with_grad = work.grad.shape[0] > 0
    dZ = _forward(Xb, yb, net, work)
    for l in range(table.shape[0] - 1, -1, -1):
        A_in = Xb if l == 0 else _block(work.acts, table, l - 1, capacity, m)
        W = _weights(theta, table, l)
        if with_grad:
            _layer_gradient(dZ, A_in, work.grad, table, l)
            if work.norms.shape[0] > 0:
                work.norms[l] += _frobenius_norm(_weights(work.grad, table, l)) / m
        if l > 0:  # dA[l-1] needs W[l] before its update
            below = _block(work.deltas, table, l - 1, capacity, m)
            _backpropagate(dZ, W, A_in, code, below)
        elif input_delta.shape[0] > 0:
            _backpropagate(dZ, W, Xb, code, input_delta)
        if update and with_grad:
            _inplace_sgd(_layer(theta, table, l), _layer(work.grad, table, l), step_m)
        elif update:
            start = _units_below(table, l)
            _inplace_sgd_layer(dZ, A_in, W, _bias(theta, table, l),
                               work.grad_b[start:start + table[l, 1]], step_m)
        if l > 0:
            dZ = _block(work.deltas, table, l - 1, capacity, m)
    return work.losses[:m].sum(), work.hits[:m].sum()


@helper
def _batch(data, k):
    """Batch ``k`` of the epoch: rows ``k·batch_size…`` (:func:`_rows`)."""
    start = k * data.batch_size
    return _rows(data, start, min(start + data.batch_size, data.X.shape[0]))


@helper
def _rows(data, start, stop):
    """Rows ``start…stop`` of the epoch: of ``X`` as stored, or gathered in ``order`` into the
    batch buffers."""
    if data.order.shape[0] == 0:
        return data.X[start:stop], data.y[start:stop]
    Xb, yb = data.x_batch[:stop - start], data.y_batch[:stop - start]
    _gather_rows(data.X, data.order[start:stop], Xb)
    _gather(data.y, data.order[start:stop], yb)
    return Xb, yb


@helper
def _check_order(data, rows):
    """Raise unless ``data.order`` is empty (rows as stored) or holds one index per row of
    ``data.X``, with gather buffers of at least ``rows`` rows (any epoch data: ``Batches``,
    ``Samples``)."""
    if data.order.shape[0] != 0 and (data.order.shape[0] != data.X.shape[0] or data.x_batch.shape[0] < rows
                                     or data.y_batch.shape[0] < rows):
        raise ValueError("order or the gather buffers do not fit the data")


@kernel
def _run_batches(data, net, work, update, step, input_delta):
    """Run :func:`_train_batch` on each batch of ``data`` (:class:`~.network.Batches`) in turn:
    with ``update``, one epoch of SGD steps of size ``step``; without, the summed gradient of
    ``data``'s single batch into ``work.grad``. Return the summed loss and hits.

    One compiled function serves the epoch, the gradient and the split epoch's layers above
    its second (which pass their ``input_delta``): the cold start compiles it once.
    The work buffers must hold ``min(batch_size, n)`` rows (and the gather buffers
    too when ``data.order`` is given); ``order`` must hold valid row indices. Only the
    sizes are checked here: the engine (:mod:`fastnn.fast`) checks ``order``.
    """
    n = data.X.shape[0]
    rows = min(data.batch_size, n)
    n_batches = -(-n // data.batch_size) if data.batch_size > 0 else 0
    if data.batch_size < 1 or work.losses.shape[0] < rows:
        raise ValueError("work buffers are smaller than a batch")
    if not update and (n_batches != 1 or work.grad.shape[0] == 0):
        raise ValueError("a gradient is taken of one batch, into a gradient array")
    _check_order(data, rows)
    loss, n_hits = 0.0, 0
    for k in range(n_batches):
        Xb, yb = _batch(data, k)
        _transpose_weights(net, work)
        batch_loss, batch_hits = _train_batch(Xb, yb, net, work, update, step, input_delta)
        loss += batch_loss
        n_hits += batch_hits
    return loss, n_hits
