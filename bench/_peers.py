"""One training epoch of the same model (dense ReLU layers, softmax, cross-entropy, plain
SGD) in each implementation a user might pick, for bench/compare.py.

Each ``make_*`` takes the data ``X`` (n_samples × n_features, float32), labels
``y``, the layer sizes, the batch size, the learning rate and the initial
weights, and returns ``(epoch, params)``: ``epoch(order)`` trains one epoch
over the rows in ``order`` (the same order for every implementation);
the caller runs them inside :func:`limits`, the thread model ``fit`` would set;
``params()`` returns the current weights and biases in the reference's shapes,
so that ``tests/test_bench_peers.py`` can check that every peer does the same math.
"""

import numpy as np

from fastnn._threads import available_cores, default_blas_threads, thread_limits
from fastnn.engine import make_engine, network_of


def _copies(weights, biases):
    return [W.copy() for W in weights], [B.copy() for B in biases]


def limits(epoch):
    """The threads ``epoch`` runs with: fastnn's fast engine says how many BLAS threads it
    needs (one, when its workers share out the cores); the others get every core for
    BLAS, as ``fit`` gives them. Enter it once, untimed, as ``fit`` does once per fit."""
    return thread_limits(getattr(epoch, "blas_threads", None))


def make_fastnn(kind):
    def make(X, y, sizes, batch, lr, weights, biases):
        net = network_of(weights, biases, "relu")
        engine = make_engine(kind, X, y, net, batch, n_threads=default_blas_threads())

        def epoch(order):
            engine.epoch(order, lr)

        epoch.blas_threads = engine.blas_threads
        return epoch, lambda: (net.layout.weights(net.theta), net.layout.biases(net.theta))

    return make


make_fast = make_fastnn("fast")
make_reference = make_fastnn("reference")


def make_numpy(X, y, sizes, batch, lr, weights, biases):
    """The same math as a NumPy user would write it, in the (samples, features) layout."""
    weights, biases = _copies(weights, biases)
    Wt = [W.T.copy() for W in weights]
    b = [B.ravel().copy() for B in biases]
    eye = np.eye(sizes[-1], dtype=X.dtype)
    lr = X.dtype.type(lr)

    def epoch(order):
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            acts = [X[idx]]
            for l in range(len(Wt)):
                Z = acts[-1] @ Wt[l] + b[l]
                if l < len(Wt) - 1:
                    acts.append(np.maximum(Z, 0))
                else:
                    E = np.exp(Z - Z.max(axis=1, keepdims=True))
                    acts.append(E / E.sum(axis=1, keepdims=True))
            dZ = (acts[-1] - eye[y[idx]]) / len(idx)
            for l in reversed(range(len(Wt))):
                dW, db = acts[l].T @ dZ, dZ.sum(axis=0)
                if l > 0:
                    dZ = (dZ @ Wt[l].T) * (acts[l] > 0)
                Wt[l] -= lr * dW
                b[l] -= lr * db

    return epoch, lambda: ([W.T for W in Wt], [v[:, None] for v in b])


def make_torch(X, y, sizes, batch, lr, weights, biases):
    import torch

    torch.set_num_threads(available_cores())
    layers = []
    for l, (W, B) in enumerate(zip(weights, biases)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(B.ravel()))
        layers.append(linear)
        if l < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def epoch(order):
        order_t = torch.from_numpy(order)
        for start in range(0, len(order), batch):
            idx = order_t[start:start + batch]
            optimizer.zero_grad()
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            optimizer.step()

    def params():
        linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
        return ([layer.weight.detach().numpy() for layer in linears],
                [layer.bias.detach().numpy()[:, None] for layer in linears])

    return epoch, params


def make_jax(X, y, sizes, batch, lr, weights, biases):
    """A whole epoch compiled with ``lax.scan`` over the full batches, then the remainder."""
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(W), jnp.asarray(B.ravel())) for W, B in zip(weights, biases)]
    Xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def loss(params, xb, yb):
        a = xb
        for W, b in params[:-1]:
            a = jax.nn.relu(a @ W.T + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(a @ W.T + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(params, xb, yb):
        grads = jax.grad(loss)(params, xb, yb)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    n_full = len(X) // batch

    @jax.jit
    def run(params, order):
        idx = order[:n_full * batch].reshape(n_full, batch)

        def body(p, rows):
            return step(p, Xj[rows], yj[rows]), None

        params, _ = jax.lax.scan(body, params, idx)
        rest = order[n_full * batch:]
        if rest.shape[0]:
            params = step(params, Xj[rest], yj[rest])
        return params

    state = {"params": params}

    def epoch(order):
        state["params"] = run(state["params"], jnp.asarray(order))
        jax.block_until_ready(state["params"])

    def params():
        return ([np.asarray(W) for W, _ in state["params"]],
                [np.asarray(b)[:, None] for _, b in state["params"]])

    return epoch, params


def make_sklearn(X, y, sizes, batch, lr, weights, biases, shuffle=True):
    """scikit-learn's MLPClassifier with plain SGD.

    It shuffles with its own generator; with ``shuffle=False`` (an ``order``
    that is ``arange``) it visits the rows as stored, like the others.
    """
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", momentum=0.0,
                          nesterovs_momentum=False, learning_rate_init=lr, alpha=0.0,
                          batch_size=batch, shuffle=shuffle, random_state=0)
    classes = np.unique(y)
    model.partial_fit(X[:batch], y[:batch], classes=classes)
    model.coefs_ = [W.T.copy() for W in weights]
    model.intercepts_ = [B.ravel().copy() for B in biases]

    def epoch(order):
        model.partial_fit(X, y)

    return epoch, lambda: ([W.T for W in model.coefs_], [b[:, None] for b in model.intercepts_])


PEERS = {
    "fastnn fast": make_fast,
    "fastnn reference": make_reference,
    "NumPy float32": make_numpy,
    "PyTorch": make_torch,
    "JAX (lax.scan)": make_jax,
    "scikit-learn": make_sklearn,
}
OPTIONAL = {"PyTorch": "torch", "JAX (lax.scan)": "jax"}
