"""Mutation check: does the test suite catch one-line bugs?

    python bench/mutants.py                        # every mutant, whole suite each (about an hour)
    python bench/mutants.py --list                 # the mutants, and whether each still applies
    python bench/mutants.py --only NAME [NAME ...] [--tests PATH [PATH ...]] [--timeout SECONDS]

Each mutant replaces a snippet of one file that must occur exactly once in it. For each,
the script copies the repository's tracked files (``git ls-files``) into a scratch
directory, applies the mutant there and runs ``python -m pytest -x -q -p no:cacheprovider``
in the copy, with ``PYTHONPATH`` set to the copy and a fresh ``NUMBA_CACHE_DIR``: Numba
keys a cached kernel on its own file only, so kernels compiled from the original code (a
constant imported from ``fastnn.reference``, say) would otherwise be loaded. It prints

- ``killed`` and the first failing test, ``survived`` (a gap in the tests),
- ``stale`` when the snippet is no longer found exactly once (the code changed: update
  the mutant), ``timeout`` when the tests ran longer than ``--timeout``,

then the kill rate: killed / (killed + survived + timeout). First the unmutated copy
must pass the same tests, else every mutant would look killed. Mutants with an
``equivalent`` reason cannot change behaviour; they are listed, and run only by
``--only``. Not a test file (pytest does not collect it) and not run in CI.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]


class Mutant(NamedTuple):
    name: str
    path: str
    original: str
    replacement: str
    description: str
    equivalent: str = ""  # why no behaviour can change; empty for a real mutant


MUTANTS = [
    # Validation
    Mutant("learning-rate-inf", "fastnn/_validation.py", "and np.isfinite(value) and value > 0",
           "and value > 0", "learning_rate=inf accepted: the finiteness check dropped"),
    Mutant("positive-int-zero", "fastnn/_validation.py", "_is_int(value) and value >= 1",
           "_is_int(value) and value >= 0", "epochs=0 and n_threads=0 accepted"),
    Mutant("batch-size-past-n", "fastnn/_validation.py", "1 <= value <= n_samples",
           "1 <= value <= n_samples + 1", "a batch one larger than the data accepted"),
    Mutant("default-init-leaky", "fastnn/_validation.py", 'activation in ("relu", "leaky_relu")',
           'activation == "relu"', "init=None gives Leaky ReLU Xavier, not Kaiming"),
    # Reference engine
    Mutant("leaky-slope", "fastnn/reference.py", "LEAKY_SLOPE = 0.01", "LEAKY_SLOPE = 0.1",
           "Leaky ReLU's slope 0.1 in both engines (they share the constant)"),
    Mutant("relu-derivative-at-zero", "fastnn/reference.py", "return (Z > 0).astype(Z.dtype)",
           "return (Z >= 0).astype(Z.dtype)", "reference ReLU'(0) = 1"),
    Mutant("softmax-unshifted", "fastnn/reference.py", "np.exp(Z - Z.max(axis=0, keepdims=True))",
           "np.exp(Z)", "reference softmax without the max shift: overflows on large logits"),
    Mutant("loss-unclipped", "fastnn/reference.py", "np.log(np.maximum(A_out, tiny))", "np.log(A_out)",
           "reference loss infinite when a probability underflows"),
    Mutant("bias-gradient-unscaled", "fastnn/reference.py",
           "[(1 / m) * dB for dB in dBs]", "dBs", "reference bias gradient summed, not averaged"),
    Mutant("init-fan-out", "fastnn/reference.py", "np.sqrt(gain / n_in)", "np.sqrt(gain / n_out)",
           "initial weights scaled by the fan-out"),
    Mutant("sgd-half-step", "fastnn/reference.py", "theta -= learning_rate * d_theta",
           "theta -= learning_rate * d_theta / 2", "reference update rule takes half a step"),
    # Kernels
    Mutant("sigmoid-negative-branch", "fastnn/kernels/_scalar.py",
           "one / (one + e) if z >= 0 else e / (one + e)", "one / (one + e) if z >= 0 else one / (one + e)",
           "fast sigmoid wrong for z < 0"),
    Mutant("leaky-derivative-at-zero", "fastnn/kernels/_scalar.py",
           "return one if a > 0 else like(a, LEAKY_SLOPE)", "return one if a >= 0 else like(a, LEAKY_SLOPE)",
           "fast Leaky ReLU'(0) = 1"),
    Mutant("softmax-hits-inverted", "fastnn/kernels/softmax.py", "hits[i] = np.argmax(Z[i]) == y[i]",
           "hits[i] = np.argmax(Z[i]) != y[i]", "fast engine counts misses as hits"),
    Mutant("column-sums-skip-chunk", "fastnn/kernels/backward.py", "for c in range(1, n_chunks):",
           "for c in range(2, n_chunks):", "bias gradient leaves out the second chunk of rows"),
    Mutant("weights-climb", "fastnn/kernels/update.py", "_inplace_gemm_update(A_in, dZ, W, -step)",
           "_inplace_gemm_update(A_in, dZ, W, step)", "fast update rule climbs the weight gradient"),
    Mutant("step-not-averaged", "fastnn/kernels/epoch.py", "step_m = like(Xb, step / m)",
           "step_m = like(Xb, step)", "fast step on the batch's summed gradient, not its mean"),
    Mutant("gather-labels-unshuffled", "fastnn/kernels/epoch.py", "y_out[i] = y[row]", "y_out[i] = y[i]",
           "shuffled batches keep the labels in stored order"),
    # Split epoch and its barrier
    Mutant("split-second-barrier-no-wait", "fastnn/kernels/split.py",
           "_arrive_and_wait(shared.sync, n_workers * (2 * k + 3))", "_arrive_and_wait(shared.sync, 0)",
           "the split epoch's second barrier counts in without waiting (a race)"),
    Mutant("barrier-no-wait", "fastnn/kernels/sync.py", "while _atomic_load(sync, COUNT) < target:",
           "while _atomic_load(sync, COUNT) < 0:", "the barrier never waits"),
    Mutant("barrier-one-short", "fastnn/kernels/sync.py", "while _atomic_load(sync, COUNT) < target:",
           "while _atomic_load(sync, COUNT) < target - 1:", "the barrier opens with one worker missing"),
    Mutant("barrier-ignores-abort", "fastnn/kernels/sync.py", "if _atomic_load(sync, ABORT) != 0:",
           "if _atomic_load(sync, ABORT) > 1:", "workers wait forever for a worker that failed"),
    # Fast engines' Python shells
    Mutant("split-workers-many-threads", "fastnn/split.py",
           "self.n_workers, self.blas_threads = n_workers, 1",
           "self.n_workers, self.blas_threads = n_workers, n_threads",
           "split workers each run multi-threaded BLAS"),
    Mutant("workers-beyond-units", "fastnn/split.py", "min(n_threads, available_cores(), sizes[1])",
           "min(n_threads, available_cores())", "more workers than first-layer units"),
    Mutant("order-past-the-end", "fastnn/fast.py", "order.max() >= n", "order.max() > n",
           "an order holding index n accepted: the kernels read past X"),
    Mutant("b1-from-last-worker", "fastnn/split.py", "b1[...] = self.shares[0].b1",
           "b1[...] = self.shares[-1].b1", "second layer's bias taken from the last worker's copy",
           equivalent="every worker steps its own copy of b1 with the same arithmetic on the same dZ"),
    # Estimator and trainer
    Mutant("partial-fit-classes-order", "fastnn/estimator.py",
           "classes = np.unique(classes) if first else self.classes_",
           "classes = np.asarray(classes) if first else self.classes_",
           "partial_fit keeps classes in the order given, repeats included"),
    Mutant("warm-start-always", "fastnn/estimator.py", 'keep = params["warm_start"] and hasattr',
           "keep = hasattr", "fit continues from the current weights without warm_start"),
    Mutant("fortran-weights-accepted", "fastnn/estimator.py",
           "W.dtype == B.dtype == dtype and W.flags.c_contiguous and", "W.dtype == B.dtype == dtype and",
           "edited Fortran-ordered weights reach the kernels"),
    Mutant("unknown-label-bound", "fastnn/estimator.py", "unknown = (idx >= len(self.classes_))",
           "unknown = (idx > len(self.classes_))", "labels above every class caught by the second test only",
           equivalent="searchsorted never returns more than len(classes_), and for exactly that the "
                      "comparison with the last class flags the label"),
    Mutant("diverged-weights-kept", "fastnn/_trainer.py", "before = theta.copy()", "before = theta",
           "the weights saved before an epoch are a view: after divergence nothing is put back"),
    # Persistence
    Mutant("load-dtype-unchecked", "fastnn/_persist.py", "if W.dtype != np.dtype(model.dtype):",
           "if False:", "load accepts float64 arrays in a file that says float32"),
    Mutant("load-newer-version", "fastnn/_persist.py", "version == FORMAT_VERSION):",
           "version <= FORMAT_VERSION):", "load reads files of a newer format version"),
    # Loaders
    Mutant("idx-padded-accepted", "fastnn/datasets.py", "if len(data) != expected:",
           "if len(data) < expected:", "an IDX file with bytes past its stated shape accepted"),
    Mutant("pixels-over-256", "fastnn/datasets.py", "    return X / PIXEL_MAX\n",
           "    return X / 256.0\n", "MNIST pixels scaled by 1/256"),
    Mutant("csv-header-read", "fastnn/datasets.py", "    except ValueError:\n        return 1",
           "    except ValueError:\n        return 0",
           "a CSV header is parsed as data"),
    # Command line
    Mutant("predict-on-training-part", "fastnn/cli.py",
           "X, y = parts[2:] if len(parts) == 4 else parts",
           "X, y = parts[:2]", "fastnn predict on MNIST predicts the training set"),
    Mutant("cli-oserror-traceback", "fastnn/cli.py",
           "except (ValueError, OSError, ImportError, TrainingDivergedError,",
           "except (ValueError, ImportError, TrainingDivergedError,",
           "a missing data folder ends in a traceback, not a one-line error"),
    Mutant("nesterov-old-velocity", "fastnn/kernels/optimizers.py",
           "theta[k] += mu * v - eta * grad[k] if nesterov else v",
           "theta[k] += mu * velocity[k] - eta * grad[k] if nesterov else v",
           "fast Nesterov step taken from the velocity before its update"),
    Mutant("adam-epsilon-inside-root", "fastnn/kernels/optimizers.py",
           "theta[k] += step * m_k / (np.sqrt(v_k) + eps)", "theta[k] += step * m_k / np.sqrt(v_k + eps)",
           "fast Adam adds epsilon under the square root"),
    Mutant("reference-momentum-skips-velocity", "fastnn/optimizers.py", "    theta += velocity\n",
           "    theta -= learning_rate * grad\n", "reference momentum step ignores the velocity"),
    Mutant("l2-penalises-biases", "fastnn/kernels/outputs.py", "grad[k] = grad[k] / S",
           "grad[k] = (grad[k] + a * theta[k]) / S", "fast L2 term penalises the biases too"),
    Mutant("l2-loss-not-halved", "fastnn/losses.py", "(0.5 * alpha) * l2_penalty(theta, layout) / S",
           "alpha * l2_penalty(theta, layout) / S", "reference L2 loss term without the 1/2"),
    Mutant("gradient-updates-theta", "fastnn/fast.py", "False, self._step(0), self._no_delta)",
           "True, self._step(0.1), self._no_delta)", "batch_gradient also takes a step"),
]


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split("\0") if name]


def copy_repository(dest):
    for name in tracked_files():
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), target)


def applies(mutant, root=ROOT):
    with open(os.path.join(root, mutant.path), encoding="utf-8") as f:
        return f.read().count(mutant.original) == 1


def apply(mutant, root):
    path = os.path.join(root, mutant.path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(mutant.original, mutant.replacement))


def scratch_env(root):
    env = dict(os.environ, PYTHONPATH=root, NUMBA_CACHE_DIR=os.path.join(root, ".numba-cache"))
    env.pop("FASTNN_PARALLEL_KERNELS", None)
    return env


def first_failure(output):
    """The node id of the first failed or erroring test in pytest's ``-ra`` summary."""
    match = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, re.MULTILINE)
    if match:
        return match.group(1)
    lines = output.strip().splitlines()
    return lines[-1] if lines else "no output"


def run_tests(root, tests, timeout):
    """Run pytest in ``root``; return ``(status, detail)``: passed, failed or timeout."""
    process = subprocess.Popen(PYTEST + tests, cwd=root, env=scratch_env(root), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # pytest and the processes its tests started
        process.communicate()
        return "timeout", f"after {timeout} s"
    if process.returncode == 0:
        return "passed", ""
    return "failed", first_failure(output)


def check_baseline(tests, timeout):
    """The unmutated copy must import itself, not an installed fastnn, and pass the tests."""
    with tempfile.TemporaryDirectory(prefix="fastnn-baseline-") as root:
        copy_repository(root)
        where = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.__file__)"], cwd=root,
                               env=scratch_env(root), capture_output=True, text=True).stdout.strip()
        if not where.startswith(root):
            sys.exit(f"the tests would import fastnn from {where or '(nothing)'}, not from the copy")
        status, detail = run_tests(root, tests, timeout)
    if status != "passed":
        sys.exit(f"the unmutated code does not pass the tests ({status}: {detail}); fix that first")


def run_mutant(mutant, tests, timeout):
    """Return ``(status, detail)``: killed, survived, stale or timeout."""
    if not applies(mutant):
        return "stale", f"the snippet is not found exactly once in {mutant.path}"
    with tempfile.TemporaryDirectory(prefix=f"fastnn-mutant-{mutant.name}-") as root:
        copy_repository(root)
        apply(mutant, root)
        status, detail = run_tests(root, tests, timeout)
    return {"passed": "survived", "failed": "killed"}.get(status, status), detail


def print_list():
    for m in MUTANTS:
        state = "ok" if applies(m) else "STALE"
        print(f"{m.name:<30} {state:<6} {m.path:<28} {m.description}")
        if m.equivalent:
            print(f"{'':<37}equivalent: {m.equivalent}")


def selected(names):
    if not names:
        return [m for m in MUTANTS if not m.equivalent]
    known = {m.name: m for m in MUTANTS}
    unknown = [name for name in names if name not in known]
    if unknown:
        sys.exit(f"unknown mutants: {', '.join(unknown)} (see --list)")
    return [known[name] for name in names]


def main():
    parser = argparse.ArgumentParser(description="Run the tests against one-line bugs (see the module "
                                                 "docstring).")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--tests", nargs="+", default=[], metavar="PATH",
                        help="pytest selection (default: the whole suite)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant (default: 900)")
    args = parser.parse_args()
    if args.list:
        print_list()
        return 0
    mutants = selected(args.only)
    print(f"tests: {' '.join(PYTEST + args.tests)}", flush=True)
    check_baseline(args.tests, args.timeout)
    results = {}
    for mutant in mutants:
        status, detail = run_mutant(mutant, args.tests, args.timeout)
        results.setdefault(status, []).append(mutant.name)
        print(f"{mutant.name:<30} {status:<9} {detail}", flush=True)
    killed, counted = len(results.get("killed", [])), sum(
        len(results.get(s, [])) for s in ("killed", "survived", "timeout"))
    if counted:
        print(f"kill rate: {killed}/{counted} ({killed / counted:.0%})")
    for status in ("survived", "timeout", "stale"):
        if results.get(status):
            print(f"{status}: {', '.join(results[status])}")
    return 1 if results.get("survived") or results.get("timeout") else 0


if __name__ == "__main__":
    sys.exit(main())
