"""One training epoch of the same model (dense ReLU layers, softmax, cross-entropy, and an
update :class:`Rule`: plain SGD, SGD with Nesterov's momentum, or Adam) in each
implementation a user might pick, for bench/compare.py.

Each ``make_*`` takes the data ``X`` (n_samples × n_features, float32), labels
``y``, the layer sizes, the batch size, the learning rate, the initial
weights and the rule, and returns ``(epoch, params)``: ``epoch(order)`` trains one epoch
over the rows in ``order`` (the same order for every implementation);
the caller runs them inside :func:`limits`, the thread model ``fit`` would set;
``params()`` returns the current weights and biases in the reference's shapes,
so that ``tests/test_bench_peers.py`` can check that every peer does the same math.
"""

from typing import NamedTuple

import numpy as np

from fastnn import reference
from fastnn._threads import available_cores, default_blas_threads, thread_limits
from fastnn.engine import make_engine, network_of
from fastnn.solvers import Optimizer, Problem, make_solver
from fastnn.split import split_workers


class Rule(NamedTuple):
    """An update rule as scikit-learn defines it (``name``: "sgd" for plain SGD, "nesterov",
    "adam"): Nesterov's ``v ← μv − ηg``, ``θ ← θ + μv − ηg``; Adam's ``θ ← θ − η_t m / (√v + ε)``
    with ``η_t = η √(1 − β₂ᵗ) / (1 − β₁ᵗ)``. PyTorch's Adam adds ``ε`` to the bias-corrected
    ``√v̂`` instead, the same step but for ``ε``'s scale: the fairness test runs Adam with
    ``ε = 1e-30``, where the two agree to rounding."""

    name: str = "sgd"
    momentum: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


PLAIN = Rule()


def _copies(weights, biases):
    return [W.copy() for W in weights], [B.copy() for B in biases]


def synthetic(n, sizes):
    """What the in-process benchmarks train on: the generator (seed 0, which then draws their
    batch orders), ``n`` MNIST-shaped random float32 rows of ``sizes[0]`` features with labels
    of ``sizes[-1]`` classes, and Kaiming-normal initial weights and biases (seed 1)."""
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], n)
    weights, biases = reference.init_params(sizes, "kaiming", np.random.default_rng(1), np.float32)
    return rng, X, y, weights, biases


def limits(epoch):
    """The threads ``epoch`` runs with: fastnn's fast engine says how many BLAS threads it
    needs (one, when its workers share out the cores); the others get every core for
    BLAS, as ``fit`` gives them. Enter it once, untimed, as ``fit`` does once per fit."""
    return thread_limits(getattr(epoch, "blas_threads", None))


def make_fastnn(kind):
    def make(X, y, sizes, batch, lr, weights, biases, rule=PLAIN, piece_rows=None):
        net = network_of(weights, biases, "relu")
        if rule.name != "sgd":
            return _solver_epoch(kind, X, y, net, batch, lr, rule, piece_rows)
        if piece_rows is not None:  # make_engine picks its engine and pieces itself
            raise ValueError("piece_rows applies to the solver epoch, not to plain SGD's engines")
        engine = make_engine(kind, X, y, net, batch, n_threads=default_blas_threads())
        return engine_epoch(engine, lr), lambda: (net.layout.weights(net.theta), net.layout.biases(net.theta))

    return make


def engine_epoch(engine, lr):
    """An epoch of the plain-SGD ``engine`` at rate ``lr`` over rows in a given order, carrying
    the BLAS threads the engine needs (:func:`limits`)."""
    def epoch(order):
        engine.epoch(order, lr)

    epoch.blas_threads = engine.blas_threads
    return epoch


def _solver_epoch(kind, X, y, net, batch, lr, rule, piece_rows=None):
    """The estimators' solver epoch with ``rule``, with as many worker threads as ``fit`` would
    use (:func:`fastnn.split.split_workers`); ``piece_rows``: as :class:`fastnn.solvers.FastSolver`'s."""
    Y = np.eye(net.layout.sizes[-1], dtype=X.dtype)[y]
    workers = split_workers(net.layout, default_blas_threads()) if kind == "fast" else 1
    problem = Problem(X, Y, None, "log_loss", 0.0, net.layout, net.theta, "relu")
    solver = make_solver(kind, problem, batch, n_workers=workers, piece_rows=piece_rows)
    optimizer = Optimizer(rule.name, net.theta, lr, momentum=rule.momentum, beta_1=rule.beta_1,
                          beta_2=rule.beta_2, epsilon=rule.epsilon)

    def epoch(order):
        solver.epoch(order, optimizer)

    return epoch, lambda: (net.layout.weights(net.theta), net.layout.biases(net.theta))


class _NumPyRule:
    """``rule``'s step over a list of NumPy arrays, in place, with its state."""

    def __init__(self, rule, lr, params):
        self.rule, self.lr, self.t = rule, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        r, lr = self.rule, self.lr
        self.t += 1
        if r.name == "adam":
            lr = lr * np.sqrt(1 - r.beta_2 ** self.t) / (1 - r.beta_1 ** self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if r.name == "sgd":
                p -= p.dtype.type(lr) * g
            elif r.name == "nesterov":
                m *= p.dtype.type(r.momentum)
                m -= p.dtype.type(lr) * g
                p += p.dtype.type(r.momentum) * m - p.dtype.type(lr) * g
            else:
                m *= p.dtype.type(r.beta_1)
                m += p.dtype.type(1 - r.beta_1) * g
                v *= p.dtype.type(r.beta_2)
                v += p.dtype.type(1 - r.beta_2) * g * g
                p -= p.dtype.type(lr) * m / (np.sqrt(v) + p.dtype.type(r.epsilon))


make_fast = make_fastnn("fast")
make_reference = make_fastnn("reference")


def make_numpy(X, y, sizes, batch, lr, weights, biases, rule=PLAIN):
    """The same math as a NumPy user would write it, in the (samples, features) layout."""
    weights, biases = _copies(weights, biases)
    Wt = [W.T.copy() for W in weights]
    b = [B.ravel().copy() for B in biases]
    eye = np.eye(sizes[-1], dtype=X.dtype)
    update = _NumPyRule(rule, lr, Wt + b)

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
            dWs, dbs = [None] * len(Wt), [None] * len(Wt)
            for l in reversed(range(len(Wt))):
                dWs[l], dbs[l] = acts[l].T @ dZ, dZ.sum(axis=0)
                if l > 0:
                    dZ = (dZ @ Wt[l].T) * (acts[l] > 0)
            update.step(Wt + b, dWs + dbs)

    return epoch, lambda: ([W.T for W in Wt], [v[:, None] for v in b])


def make_torch(X, y, sizes, batch, lr, weights, biases, rule=PLAIN):
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
    if rule.name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(rule.beta_1, rule.beta_2),
                                     eps=rule.epsilon)
    else:
        nesterov = rule.name == "nesterov"
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=rule.momentum if nesterov else 0.0,
                                    nesterov=nesterov)
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


def make_jax(X, y, sizes, batch, lr, weights, biases, rule=PLAIN):
    """A whole epoch compiled with ``lax.scan`` over the full batches, then the remainder; the
    rule written out as scikit-learn's (optax is not a dependency)."""
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

    tree = jax.tree_util.tree_map

    def update(carry, grads):
        params, m, v, t = carry
        t = t + 1
        if rule.name == "sgd":
            return tree(lambda p, g: p - lr * g, params, grads), m, v, t
        if rule.name == "nesterov":
            m = tree(lambda m, g: rule.momentum * m - lr * g, m, grads)
            return tree(lambda p, m, g: p + rule.momentum * m - lr * g, params, m, grads), m, v, t
        m = tree(lambda m, g: rule.beta_1 * m + (1 - rule.beta_1) * g, m, grads)
        v = tree(lambda v, g: rule.beta_2 * v + (1 - rule.beta_2) * g * g, v, grads)
        rate = lr * jnp.sqrt(1 - rule.beta_2 ** t) / (1 - rule.beta_1 ** t)
        return tree(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + rule.epsilon), params, m, v), m, v, t

    def step(carry, xb, yb):
        return update(carry, jax.grad(loss)(carry[0], xb, yb))

    n_full = len(X) // batch

    @jax.jit
    def run(carry, order):
        idx = order[:n_full * batch].reshape(n_full, batch)

        def body(c, rows):
            return step(c, Xj[rows], yj[rows]), None

        carry, _ = jax.lax.scan(body, carry, idx)
        rest = order[n_full * batch:]
        if rest.shape[0]:
            carry = step(carry, Xj[rest], yj[rest])
        return carry

    zeros = tree(jnp.zeros_like, params)
    state = {"carry": (params, zeros, zeros, jnp.float32(0))}

    def epoch(order):
        state["carry"] = run(state["carry"], jnp.asarray(order))
        jax.block_until_ready(state["carry"])

    def params():
        return ([np.asarray(W) for W, _ in state["carry"][0]],
                [np.asarray(b)[:, None] for _, b in state["carry"][0]])

    return epoch, params


def make_sklearn(X, y, sizes, batch, lr, weights, biases, rule=PLAIN, shuffle=True):
    """scikit-learn's MLPClassifier with ``rule``.

    It shuffles with its own generator; with ``shuffle=False`` (an ``order``
    that is ``arange``) it visits the rows as stored, like the others.
    """
    from sklearn.neural_network import MLPClassifier

    nesterov = rule.name == "nesterov"
    solver = "adam" if rule.name == "adam" else "sgd"
    model = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver=solver,
                          momentum=rule.momentum if nesterov else 0.0, nesterovs_momentum=nesterov,
                          beta_1=rule.beta_1, beta_2=rule.beta_2, epsilon=rule.epsilon,
                          learning_rate_init=lr, alpha=0.0, batch_size=batch, shuffle=shuffle, random_state=0)
    classes = np.unique(y)
    model.partial_fit(X[:batch], y[:batch], classes=classes)
    model.coefs_ = [W.T.copy() for W in weights]
    model.intercepts_ = [B.ravel().copy() for B in biases]
    del model._optimizer  # the first partial_fit's step: the next starts the rule's state afresh

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
