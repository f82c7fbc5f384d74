"""Old code against new, in one run: ms per training epoch of two git revisions.

    python bench/ab.py OLD_REV [NEW_REV] [--rounds 5] [--batches 32,128,1024,full] [--rule sgd]

Each revision is checked out into a temporary worktree (NEW_REV defaults to the working
tree). Rounds alternate between the two, each round a fresh process per revision that
fits the README's benchmark model (784-128-10, ReLU, float32, 60,000 MNIST-shaped
samples; plain SGD, or with ``--rule`` SGD with Nesterov's momentum 0.9 at rate 0.01 or Adam at
0.001, as bench/compare.py runs them) for a few epochs through the public estimator and reports its
fastest epoch (``history_["time"]``, which times the engine's epoch alone); the table
shows the best over rounds, then the median (and range) of each round's new / old: on a
machine whose speed changes within minutes the best of each side can come from different
phases, the ratio within a round from seconds apart. ``digits`` in ``--batches`` is 200 epochs on the digits
(64-100-10, batch 32, float64, SGD with Nesterov's momentum: scikit-learn's defaults).
Alternating keeps a slow phase of a shared machine from landing on one side only. Compile
time is not counted: each process warms up first.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import sys, warnings, numpy as np
from sklearn.exceptions import ConvergenceWarning
from fastnn import MLPClassifier
warnings.simplefilter("ignore", ConvergenceWarning)  # exactly max_iter epochs, no early stop
# The old estimator's network and rule (128 hidden units, float32, plain SGD); RULES: the other rules.
MODEL = dict(hidden_layer_sizes=(128,), dtype="float32", solver="sgd", momentum=0.0, alpha=0.0,
             learning_rate_init=0.01, n_iter_no_change=float("inf"), random_state=0)
batches = sys.argv[1].split(",")
RULES = {"sgd": {}, "nesterov": dict(momentum=0.9, nesterovs_momentum=True),
         "adam": dict(solver="adam", learning_rate_init=0.001)}
SETTINGS = {**MODEL, **RULES[sys.argv[2]]}
rng = np.random.default_rng(0)
X = rng.random((60000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60000)
MLPClassifier(max_iter=1, batch_size=32, **SETTINGS).fit(X[:2000], y[:2000])  # load or compile first
out = []
for batch in batches:
    if batch == "digits":  # the estimators' solver epoch: 64-100-10, float64, SGD with Nesterov's momentum
        from sklearn.datasets import load_digits
        digits = load_digits()
        model = MLPClassifier(hidden_layer_sizes=(100,), batch_size=32, max_iter=200, learning_rate_init=0.01,
                              n_iter_no_change=float("inf"), random_state=0)
        model.fit(digits.data / 16, digits.target)
        out.append(min(model.history_["time"][1:]) * 1e3)
        continue
    # "full": one batch of every row, as stored (the old batch_size=None).
    size, shuffle = (len(X), False) if batch == "full" else (int(batch), True)
    model = MLPClassifier(max_iter=3, batch_size=size, shuffle=shuffle, **SETTINGS).fit(X, y)
    out.append(min(model.history_["time"][1:]) * 1e3)
print(" ".join(f"{t:.3f}" for t in out))
"""


def worktree(rev, root):
    path = tempfile.mkdtemp(prefix="fastnn-ab-")
    subprocess.run(["git", "-C", root, "worktree", "add", "--detach", path, rev], check=True,
                   capture_output=True)
    return path


def epoch_ms(path, batches, rule):
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", CHILD, batches, rule], env=env, cwd=path, check=True,
                         capture_output=True, text=True)
    return [float(v) for v in out.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="32,128,1024,full")
    parser.add_argument("--rule", default="sgd", choices=["sgd", "nesterov", "adam"])
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sides = {args.old: worktree(args.old, root),
             args.new or "working tree": worktree(args.new, root) if args.new else root}
    rounds = {name: [] for name in sides}
    try:
        for _ in range(args.rounds):
            for name, path in sides.items():
                rounds[name].append(epoch_ms(path, args.batches, args.rule))
    finally:
        for name, path in sides.items():
            if path != root:
                subprocess.run(["git", "-C", root, "worktree", "remove", "--force", path],
                               capture_output=True)
    report(rounds, args.batches.split(","), args.rule)


def report(rounds, batches, rule):
    """The best epoch of each side, their ratio, and the median (range) of the rounds' ratios."""
    best = {name: np.min(times, axis=0) for name, times in rounds.items()}
    print(f"{rule}: best of {len(next(iter(rounds.values())))} rounds, ms per epoch")
    print(f"{'revision':<16}" + "".join(f"{b if b == 'digits' else 'batch ' + b:>14}" for b in batches))
    for name, times in best.items():
        print(f"{name[:15]:<16}" + "".join(f"{t:>14.2f}" if b == "digits" else f"{t:>14.1f}"
                                          for b, t in zip(batches, times)))
    old, new = best.values()
    print(f"{'new / old':<16}" + "".join(f"{n / o:>14.2f}" for o, n in zip(old, new)))
    old_rounds, new_rounds = (np.array(times) for times in rounds.values())
    ratios = new_rounds / old_rounds
    print(f"{'rounds: median':<16}" + "".join(f"{np.median(r):>14.2f}" for r in ratios.T))
    print(f"{'  (range)':<16}" + "".join(f"{f'{r.min():.2f}..{r.max():.2f}':>14}" for r in ratios.T))


if __name__ == "__main__":
    main()
