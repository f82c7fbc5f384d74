"""Where the solver epoch's time goes, per batch: the gradient and each pass over the parameters.

    python bench/solver_parts.py [--batch 32] [--dtype float32] [--sizes 784,128,10]

784-128-10 (or ``--sizes``; ReLU, softmax), random data: the forward and backward pass of one
batch (``_objective`` on the batch's rows, less its L2 passes), then each pass over the flat
parameters a step makes: the L2 sum, and the update of SGD with momentum and of Adam, which
form the regularised mean gradient from the summed one as they read it. The L2 mean as a pass
of its own (L-BFGS's objective) is shown too. Microseconds per call, best of 5 repetitions of
200 calls.

Then one worker's share of each pass in a step of ``--workers`` (default 2: the split epoch's
workers share the passes out) against the step's GEMM floor, as bench/compare.py defines it
(the batch's GEMM FLOPs at the rate of a float32 2048³ ``np.matmul`` on every core, timed in
this run), with Adam's square root and division alone on that share: Adam's pass cannot run
faster than the CPU's divider allows. While the update is a pass of its own after the GEMMs,
these ratios are about what a rule adds to plain SGD's ratio to the floor at that batch size.
"""

import argparse
import time

import numpy as np
from compare import flops_per_sample, gemm_rate  # bench/, run as a script
from numba import njit

from fastnn.kernels.network import NO_UNITS, make_work
from fastnn.kernels.optimizers import Mean, _inplace_adam, _inplace_momentum
from fastnn.kernels.outputs import _inplace_l2_mean, _l2_penalty
from fastnn.kernels.solver import _objective, _squares_bound
from fastnn.layout import Layout
from fastnn.solvers import Problem, make_solver


def microseconds(call, calls=200, repeats=5):
    call()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return 1e6 * best


@njit(error_model="numpy")
def _sqrt_and_divide(out, a, b, epsilon):
    """Adam's two correctly rounded operations per parameter, alone: ``a / (√b + ε)``."""
    for k in range(out.shape[0]):
        out[k] = a[k] / (np.sqrt(b[k]) + epsilon)


def worker_share(theta, grad, m, v, mean, bound, layout, workers, batch):
    """Each pass over one worker's share of the parameters, in µs and over the step's floor."""
    n = layout.size // workers
    th, g, m, v, out = theta[:n], grad[:n], m[:n], v[:n], np.empty_like(theta[:n])
    step_floor = flops_per_sample(layout.sizes) * batch / gemm_rate()
    unpenalised = mean._replace(weights=False)
    share = {
        "L2 sum": lambda: _l2_penalty(theta, layout.table, 0, workers, NO_UNITS),
        "momentum update": lambda: _inplace_momentum(th, g, g[:0], m, 1e-9, 0.9, True, mean, bound),
        "Adam update": lambda: _inplace_adam(th, g, g[:0], m, v, 1e-9, 0.9, 0.999, 1e-8, mean, bound),
        # What the solver epoch runs at alpha=0 once θ is bounded (.kernels.solver._step).
        "momentum update, weights read as biases": lambda: _inplace_momentum(
            th, g, g[:0], m, 1e-9, 0.9, True, unpenalised, bound),
        "Adam update, weights read as biases": lambda: _inplace_adam(
            th, g, g[:0], m, v, 1e-9, 0.9, 0.999, 1e-8, unpenalised, bound),
        "square root and division alone": lambda: _sqrt_and_divide(out, m, v, theta.dtype.type(1e-8)),
    }
    print(f"one worker's share of a step of {workers} workers ({n} parameters), against the step's "
          f"GEMM floor ({step_floor * 1e6:.1f} µs):")
    for name, call in share.items():
        t = microseconds(call)
        print(f"  {name}: {t:.1f} µs ({t / (step_floor * 1e6):.2f}x the floor)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", default="784,128,10", help="layer sizes; the digits': 64,100,10")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dtype, b = np.dtype(args.dtype).type, args.batch
    sizes = [int(n) for n in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    layout = Layout(sizes)
    X = rng.random((b, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], b)]
    theta = rng.uniform(-0.05, 0.05, layout.size).astype(dtype)
    solver = make_solver("fast", Problem(X, Y, None, "log_loss", 1e-4, layout, theta, "relu"), b)
    work = make_work(layout.table, b, dtype, grad_size=layout.size)
    grad = rng.standard_normal(layout.size).astype(dtype)
    m, v = np.zeros_like(theta), np.ones_like(theta)
    mean = Mean(1e-4, float(b), True)  # every parameter read as a weight: the costlier path
    bound = _squares_bound.py_func(theta, layout.table)  # as the solver epoch's updates check θ
    parts = {
        "L2 sum": lambda: _l2_penalty(theta, layout.table, 0, 1, NO_UNITS),
        "L2 mean (a pass of its own: L-BFGS only)": lambda: _inplace_l2_mean(grad, theta, layout.table,
                                                                              1e-4, 1.0),
        "momentum update (mean read from the sum)": lambda: _inplace_momentum(
            theta, grad, grad[:0], m, 1e-9, 0.9, True, mean, bound),
        "Adam update (mean read from the sum)": lambda: _inplace_adam(
            theta, grad, grad[:0], m, v, 1e-9, 0.9, 0.999, 1e-8, mean, bound),
    }
    times = {name: microseconds(call) for name, call in parts.items()}
    whole = microseconds(lambda: _objective(X, Y, solver.weights, solver.net, work, solver._solver()))
    name = "-".join(map(str, sizes))
    print(f"{name}, batch {b}, {args.dtype}, {layout.size} parameters; microseconds per call")
    l2_mean = times["L2 mean (a pass of its own: L-BFGS only)"]
    gradient = whole - times["L2 sum"] - l2_mean
    print(f"  forward and backward (objective less its two L2 passes): {gradient:.0f}")
    for name, t in times.items():
        print(f"  {name}: {t:.0f}")
    worker_share(theta, grad, m, v, mean, bound, layout, args.workers, b)


if __name__ == "__main__":
    main()
