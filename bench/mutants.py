"""Mutation check: does the test suite catch one-line bugs?

    python bench/mutants.py                        # every mutant, whole suite each (about an hour)
    python bench/mutants.py --list                 # the mutants, and whether each still applies
    python bench/mutants.py --only NAME [NAME ...] [--tests PATH [PATH ...]] [--timeout SECONDS]
    python bench/mutants.py --narrow [--only NAME ...]   # each mutant against its own tests (minutes)

Each mutant replaces a snippet of one file that must occur exactly once in it. For each,
the script copies the repository's tracked files (``git ls-files``) into a scratch
directory, applies the mutant there and runs ``python -m pytest -x -q -p no:cacheprovider``
in the copy, with ``PYTHONPATH`` set to the copy and a fresh ``NUMBA_CACHE_DIR``: Numba
keys a cached kernel on its own file only, so kernels compiled from the original code (a
constant imported from ``fastnn.reference``, say) would otherwise be loaded. A mutant of a
file that no kernel is built from (anything outside ``KERNEL_INPUTS``) runs instead in the
unmutated baseline's copy, whose warm cache holds exactly the kernels it needs, and the file
is put back after it (``--cold``: every mutant in a fresh copy). It prints

- ``killed`` and the first failing test, ``survived`` (a gap in the tests),
- ``stale`` when the snippet is no longer found exactly once (the code changed: update
  the mutant), ``timeout`` when the tests ran longer than ``--timeout``,

then the kill rate: killed / (killed + survived + timeout). First the unmutated copy
must pass the same tests, else every mutant would look killed. With ``--narrow`` each
mutant runs only the tests listed with it (``Mutant.tests``: those meant to kill it), and
the unmutated copy must pass all of them: a quick check (a mutant that survives it may
still be killed by the whole suite). Mutants with an ``equivalent`` reason cannot change
behaviour; they are listed, and run only by ``--only``. Not a test file (pytest does not
collect it) and not run in CI.
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
    tests: tuple = ()  # the most relevant tests (pytest node ids), run by --narrow


T_VALID = "tests/test_validation.py"
T_EQUAL = "tests/test_sklearn_equality.py::test_same_model_as_sklearn_float64"
T_SOLVER = "tests/test_solver.py"
# Why the estimator's finiteness check of FLOAT_PARAMETERS cannot be reached by a float today.
INF_REFUSED = ("scikit-learn's Interval (>= 1.6) refuses +-inf and NaN for every float parameter before this "
               "check: a right bound of None is open at inf")
T_SPLIT_BARRIERS = "tests/test_split.py::test_each_barrier_holds_the_others_back"
T_ROWS_EQUAL = "tests/test_split.py::test_split_agrees_with_reference"

MUTANTS = [
    # Validation: fastnn/_validation.py and the estimator's own checks
    Mutant("learning-rate-inf", "fastnn/estimator.py", "if not np.isfinite(getattr(self, name)):",
           "if np.isnan(getattr(self, name)):",
           "+inf accepted for every float hyper-parameter (only NaN refused)",
           equivalent=INF_REFUSED,
           tests=(f"{T_VALID}::test_non_finite_float_hyper_parameters",)),
    Mutant("epsilon-inf", "fastnn/estimator.py", '"beta_1", "beta_2", "epsilon")', '"beta_1", "beta_2")',
           "epsilon left out of FLOAT_PARAMETERS: epsilon=inf accepted",
           equivalent=INF_REFUSED,
           tests=(f"{T_VALID}::test_non_finite_float_hyper_parameters",)),
    Mutant("hidden-size-zero", "fastnn/estimator.py", "and s > 0 for s in sizes", "and s >= 0 for s in sizes",
           "a hidden layer of 0 units accepted", tests=(f"{T_VALID}::test_bad_hyper_parameters",)),
    Mutant("batch-size-past-n", "fastnn/estimator.py", "if self.batch_size > n_samples:",
           "if self.batch_size > n_samples + 1:",
           "a batch one larger than the data clipped without a warning",
           tests=(f"{T_VALID}::test_batch_size_past_the_samples_is_clipped_with_a_warning",)),
    Mutant("batch-size-unclipped", "fastnn/estimator.py", "int(np.clip(self.batch_size, 1, n_samples))",
           "int(self.batch_size)", "batch_size past the samples not clipped",
           equivalent="both solvers cut every batch at the last row, and the fast one sizes its buffers "
                      "min(batch_size, n)", tests=(T_VALID,)),
    Mutant("text-accepted", "fastnn/_validation.py", 'X.dtype.kind in "USMmV"', 'X.dtype.kind in "SMmV"',
           "an array of str (numbers as text) parsed instead of refused",
           tests=(f"{T_VALID}::test_bad_training_data",)),
    Mutant("dtype-float16", "fastnn/_validation.py", "if name not in DTYPES:", "if name is None:",
           "dtype='float16' accepted", tests=(f"{T_VALID}::test_bad_hyper_parameters",)),
    Mutant("coefs-rows-unchecked", "fastnn/estimator.py", "if shapes[0][0] != self.n_features_in_:",
           "if False:",
           "assigned coefs_[0] with too few rows for the features reach the kernels",
           tests=(f"{T_VALID}::test_edited_parameters_are_refused_not_read_out_of_bounds",)),
    Mutant("partial-fit-unseen-label", "fastnn/estimator.py",
           "elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):", "elif False:",
           "partial_fit trains on labels outside classes_ (searchsorted puts them in another class)",
           tests=(f"{T_VALID}::test_unseen_labels_at_score_and_partial_fit",)),
    Mutant("warm-start-fewer-classes", "fastnn/estimator.py", "if set(classes) != set(self.classes_):",
           "if not set(classes) <= set(self.classes_):",
           "warm start accepts y with fewer classes than before",
           tests=(T_VALID, "tests/test_api.py::test_warm_start_continues")),
    # Reference engine
    Mutant("leaky-slope", "fastnn/reference.py", "LEAKY_SLOPE = 0.01", "LEAKY_SLOPE = 0.1",
           "Leaky ReLU's slope 0.1 in both engines (they share the constant)",
           tests=("tests/test_kernels.py::test_leaky_relu_slope_is_one_hundredth",)),
    Mutant("relu-derivative-at-zero", "fastnn/reference.py", "return (Z > 0).astype(Z.dtype)",
           "return (Z >= 0).astype(Z.dtype)", "reference ReLU'(0) = 1", tests=("tests/test_gradients.py",)),
    Mutant("softmax-unshifted", "fastnn/reference.py", "np.exp(Z - Z.max(axis=0, keepdims=True))",
           "np.exp(Z)", "reference softmax without the max shift: overflows on large logits",
           tests=("tests/test_numerics.py",)),
    Mutant("loss-unclipped", "fastnn/reference.py", "np.log(np.maximum(A_out, tiny))", "np.log(A_out)",
           "reference loss infinite when a probability underflows", tests=("tests/test_numerics.py",)),
    Mutant("bias-gradient-unscaled", "fastnn/reference.py",
           "[(1 / m) * dB for dB in dBs]", "dBs", "reference bias gradient summed, not averaged",
           tests=("tests/test_gradients.py", "tests/test_kernels.py")),
    Mutant("init-fan-out", "fastnn/reference.py", "np.sqrt(gain / n_in)", "np.sqrt(gain / n_out)",
           "initial weights scaled by the fan-out", tests=("tests/test_gradients.py::test_init_scales",)),
    Mutant("sgd-half-step", "fastnn/reference.py", "theta -= learning_rate * d_theta",
           "theta -= learning_rate * d_theta / 2", "reference update rule takes half a step",
           tests=("tests/test_gradients.py", "tests/test_kernels.py")),
    Mutant("l2-loss-not-halved", "fastnn/losses.py", "(0.5 * alpha) * l2_penalty(theta, layout) / S",
           "alpha * l2_penalty(theta, layout) / S", "reference L2 loss term without the 1/2",
           tests=("tests/test_losses.py",)),
    # Kernels of the old engines
    Mutant("sigmoid-negative-branch", "fastnn/kernels/_scalar.py",
           "one / (one + e) if z >= 0 else e / (one + e)", "one / (one + e) if z >= 0 else one / (one + e)",
           "fast sigmoid wrong for z < 0", tests=("tests/test_kernels.py",)),
    Mutant("leaky-derivative-at-zero", "fastnn/kernels/_scalar.py",
           "return one if a > 0 else like(a, LEAKY_SLOPE)", "return one if a >= 0 else like(a, LEAKY_SLOPE)",
           "fast Leaky ReLU'(0) = 1", tests=("tests/test_kernels.py",)),
    Mutant("softmax-hits-inverted", "fastnn/kernels/softmax.py", "hits[i] = np.argmax(Z[i]) == y[i]",
           "hits[i] = np.argmax(Z[i]) != y[i]", "fast engine counts misses as hits",
           tests=("tests/test_kernels.py",)),
    Mutant("column-sums-skip-chunk", "fastnn/kernels/backward.py",
           "total[j] = partial[j] if c == 0 else total[j] + partial[j]",
           "total[j] = partial[j] if c == 0 else total[j] + partial[j] * (c != 1)",
           "bias gradient leaves out the second chunk of rows",
           tests=("tests/test_kernels.py",)),
    Mutant("weights-climb", "fastnn/kernels/update.py", "_inplace_gemm_update(A_in, dZ, W, -step)",
           "_inplace_gemm_update(A_in, dZ, W, step)", "fast update rule climbs the weight gradient",
           tests=("tests/test_kernels.py",)),
    Mutant("step-not-averaged", "fastnn/kernels/epoch.py", "step_m = like(Xb, step / m)",
           "step_m = like(Xb, step)", "fast step on the batch's summed gradient, not its mean",
           tests=("tests/test_kernels.py", "tests/test_engine.py")),
    Mutant("gather-labels-unshuffled", "fastnn/kernels/epoch.py", "        y_out[i] = y[idx[i]]",
           "        y_out[i] = y[i]",
           "shuffled batches keep the labels (old engines) and sample weights (solvers) in stored order",
           tests=(T_SOLVER, "tests/test_training.py")),
    Mutant("solver-targets-unshuffled", "fastnn/kernels/solver.py",
           "_gather_rows(data.Y, idx, data.y_batch[lo:hi])",
           "_gather_rows(data.Y, idx[::-1], data.y_batch[lo:hi])",
           "a shuffled batch takes its targets in another order than its inputs", tests=(T_SOLVER,)),
    Mutant("order-past-the-end", "fastnn/fast.py", "order.max() >= n", "order.max() > n",
           "an order holding index n accepted: the kernels read past X",
           tests=("tests/test_training.py::test_fast_engine_refuses_a_bad_order",)),
    Mutant("full-batch-gathered", "fastnn/fast.py", "return None if rows >= n else order", "return order",
           "a batch of every row gathered in the epoch's order (not taken as stored)",
           tests=("tests/test_engine.py::test_a_batch_of_every_row_is_taken_as_stored",
                  "tests/test_solver.py::test_a_batch_of_every_row_is_taken_as_stored")),
    Mutant("gradient-updates-theta", "fastnn/fast.py", "False, self._step(0), self._no_delta)",
           "True, self._step(0.1), self._no_delta)", "batch_gradient also takes a step",
           tests=("tests/test_engine.py",)),
    # The solvers' kernels (fastnn/kernels/solver.py, outputs.py, optimizers.py)
    Mutant("solver-penalty-not-halved", "fastnn/kernels/solver.py",
           "return (0.5 * alpha) * np.float64(like(theta, squares)) / S",
           "return alpha * np.float64(like(theta, squares)) / S", "fast L2 loss term without the 1/2",
           tests=(T_SOLVER,)),
    Mutant("solver-penalty-unrounded", "fastnn/kernels/solver.py", "np.float64(like(theta, squares))",
           "np.float64(squares)",
           "the L2 sum not rounded to θ's dtype: an overflowing float32 sum stays finite",
           tests=("tests/test_training.py::test_divergence_is_reported_and_weights_stay_finite",
                  "tests/test_losses.py")),
    Mutant("solver-l2-sum-skipped-unchecked", "fastnn/kernels/solver.py", "if _l2_vanishes(alpha, bounded):",
           "if alpha == 0:", "without L2, squares never summed: an overflowing sum leaves the loss finite",
           tests=(T_SOLVER,)),
    Mutant("solver-l2-term-skipped-unchecked", "fastnn/kernels/solver.py",
           "penalised = not _l2_vanishes(solver.alpha, bounded)", "penalised = solver.alpha != 0",
           "without L2, α·W always left out: an infinite weight never turns NaN", tests=(T_SOLVER,)),
    Mutant("solver-l2-gradient-dropped", "fastnn/kernels/solver.py",
           "_inplace_l2_mean(work.grad, net.theta, net.table, solver.alpha, S)",
           "_inplace_l2_mean(work.grad, net.theta, net.table, 0.0, S)", "fast gradient without the α·W term",
           tests=(T_SOLVER,)),
    Mutant("solver-S-ignores-weights", "fastnn/kernels/solver.py",
           "S = np.float64(m) if sb.shape[0] == 0 else np.float64(sb.sum())", "S = np.float64(m)",
           "fast weighted batch divided by its row count, not its weight sum", tests=(T_SOLVER,)),
    Mutant("solver-step-count-frozen", "fastnn/kernels/solver.py",
           "        t += 1\n        if not _meet(team, 2 * k + 1):",
           "        t += 0\n        if not _meet(team, 2 * k + 1):",
           "the fast epoch does not count its steps: Adam's bias correction stays at step 1",
           tests=(T_SOLVER,)),
    Mutant("unit-step-count-frozen", "fastnn/kernels/solver.py",
           "(stop - start)\n        t += 1\n        if shuffled",
           "(stop - start)\n        t += 0\n        if shuffled",
           "the epoch sharing units does not count its steps", tests=(T_SOLVER,)),
    Mutant("unit-rows-of-a-layer", "fastnn/kernels/network.py", "per_unit = table[0, 2] if weights else 1",
           "per_unit = table[0, 1] if weights else 1",
           "a worker sharing units updates a block of the first layer's weights sized by units, not inputs",
           tests=(T_SOLVER, "tests/test_losses.py")),
    Mutant("unit-mask-of-worker-0", "fastnn/kernels/solver.py",
           "_inplace_activation_backward(own, At[lo:hi], net.code)",
           "_inplace_activation_backward(own, At[:hi - lo], net.code)",
           "a worker sharing units masks its gradient with worker 0's units' activations", tests=(T_SOLVER,)),
    Mutant("row-sums-drop-last-chunk", "fastnn/kernels/backward.py",
           "        for c in range(n_chunks):\n            part = like(out, 0)",
           "        for c in range(n_chunks - 1):\n            part = like(out, 0)",
           "the bias gradient of the units' layout leaves out its last rows",
           tests=("tests/test_kernels.py", T_SOLVER)),
    Mutant("solver-weights-unshuffled", "fastnn/kernels/solver.py",
           "_gather(data.weights, idx, data.w_batch[lo:hi])",
           "_gather(data.weights, idx[::-1], data.w_batch[lo:hi])",
           "a shuffled batch takes its sample weights in another order than its inputs",
           tests=(T_SOLVER,)),
    Mutant("team-S-unshuffled", "fastnn/kernels/solver.py",
           "total += data.weights[i if data.order.shape[0] == 0 else data.order[i]]",
           "total += data.weights[i]", "a shuffled batch's weight sum taken over the stored rows",
           tests=(T_SOLVER,)),
    Mutant("solver-step-l2-dropped", "fastnn/kernels/solver.py",
           "mean = Mean(solver.alpha, S, weights and penalised)",
           "mean = Mean(0.0, S, weights and penalised)",
           "the epoch's update reads the gradient without the α·W term",
           tests=(T_SOLVER,)),
    Mutant("mean-penalises-biases", "fastnn/kernels/outputs.py",
           "v = g + a * w if weights else g", "v = g + a * w",
           "the regularised mean (stored, or read by the update) adds α·b to the biases'",
           tests=("tests/test_optimizers.py", "tests/test_losses.py", T_SOLVER)),
    Mutant("reciprocal-for-every-divisor", "fastnn/kernels/outputs.py",
           "return like(S, 1) / S if mantissa == 0.5 else like(S, 0)", "return like(S, 1) / S",
           "the update multiplies by 1/S for any S, not only a power of two: not bitwise the mean",
           tests=("tests/test_optimizers.py", "tests/test_losses.py")),
    Mutant("solver-no-flush", "fastnn/kernels/solver.py", "from ._fpu import flush_subnormals, restore_fpu",
           "from ._fpu import _read_mxcsr as flush_subnormals, restore_fpu",
           "subnormals not flushed inside the epoch (_fpu's FTZ/DAZ never set)",
           tests=(f"{T_SOLVER}::test_subnormals_flush_inside_an_epoch_only",)),
    Mutant("l2-mean-skips-biases", "fastnn/kernels/outputs.py", "for weights in (True, False):",
           "for weights in (True,):", "fast L2 mean leaves the biases' summed gradient undivided",
           tests=("tests/test_losses.py", T_SOLVER)),
    Mutant("l2-penalty-skips-tail", "fastnn/kernels/outputs.py", "for k in range(x.shape[0]):",
           "for k in range(x.shape[0] - 1):", "fast L2 sum leaves out the last weight of each layer's share",
           tests=("tests/test_losses.py", T_SOLVER)),
    Mutant("nesterov-is-momentum", "fastnn/kernels/optimizers.py",
           "new = theta[k] + (mu * v - eta * g if nesterov else v)",
           "new = theta[k] + (v if nesterov else v)",
           "fast Nesterov step is the plain momentum step", tests=("tests/test_optimizers.py", T_SOLVER)),
    Mutant("adam-epsilon-inside-root", "fastnn/kernels/optimizers.py",
           "new = theta[k] + step * m_k / (np.sqrt(v_k) + eps)",
           "new = theta[k] + step * m_k / np.sqrt(v_k + eps)",
           "fast Adam adds epsilon under the square root", tests=("tests/test_optimizers.py",)),
    Mutant("adam-float64-update", "fastnn/kernels/optimizers.py", "step = -like(m, learning_rate)",
           "step = -np.float64(learning_rate)", "fast Adam forms a float32 update in float64",
           tests=("tests/test_optimizers.py",)),
    Mutant("reference-adam-float64-update", "fastnn/optimizers.py",
           "theta += -m.dtype.type(learning_rate) * m", "theta += -np.float64(learning_rate) * m",
           "reference Adam forms a float32 update in float64", tests=("tests/test_optimizers.py",)),
    # The solvers' engines (fastnn/solvers.py) and the reference update rules
    Mutant("reference-momentum-skips-velocity", "fastnn/optimizers.py", "    theta += velocity\n",
           "    theta -= learning_rate * grad\n", "reference momentum step ignores the velocity",
           tests=("tests/test_optimizers.py",)),
    Mutant("optimizer-adam-step-ahead", "fastnn/solvers.py",
           "opt.adam_learning_rate(self.learning_rate_init, self.beta_1, self.beta_2, self.t)",
           "opt.adam_learning_rate(self.learning_rate_init, self.beta_1, self.beta_2, self.t + 1)",
           "the reference Adam's bias correction one step ahead", tests=(T_SOLVER, T_EQUAL)),
    Mutant("fast-nesterov-flag", "fastnn/solvers.py", 'optimizer.rule == "nesterov"',
           'optimizer.rule == "momentum"', "the fast solver swaps Nesterov's momentum and plain momentum",
           tests=(T_SOLVER,)),
    Mutant("reference-norms-not-averaged", "fastnn/solvers.py", "self.norms /= n_batches",
           "self.norms /= 1", "reference gradient norms summed over batches, not averaged",
           tests=("tests/test_training.py::test_engines_agree_with_gradient_tracking",)),
    Mutant("reference-norms-unscaled", "fastnn/solvers.py",
           "np.linalg.norm(dW.astype(np.float64)) / m for dW", "np.linalg.norm(dW.astype(np.float64)) for dW",
           "reference gradient norms of the summed, not the mean, gradient",
           tests=("tests/test_training.py::test_engines_agree_with_gradient_tracking",)),
    # Estimator
    Mutant("partial-fit-classes-order", "fastnn/estimator.py",
           "not np.array_equal(self.classes_, np.unique(classes))",
           "not np.array_equal(self.classes_, np.asarray(classes))",
           "a later partial_fit refuses classes given in another order or with repeats",
           tests=("tests/test_api.py::test_partial_fit_classes_in_any_order",
                  "tests/test_api.py::test_partial_fit_needs_classes_first_and_accepts_subsets",
                  "tests/test_sklearn_equality.py::test_partial_fit_same_as_sklearn")),
    Mutant("warm-start-always", "fastnn/estimator.py",
           'first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)',
           'first_pass = not hasattr(self, "coefs_")',
           "fit continues from the current weights without warm_start",
           tests=("tests/test_api.py::test_warm_start_continues",
                  "tests/test_sklearn_equality.py::test_warm_start_same_as_sklearn")),
    Mutant("glorot-logistic-gain", "fastnn/estimator.py", '(2.0 if self.activation == "logistic" else 6.0)',
           '(2.0 if self.activation == "tanh" else 6.0)',
           "Glorot bound of factor 2 for tanh instead of logistic",
           tests=("tests/test_api.py::test_default_init_is_scikit_learns_glorot_uniform",)),
    Mutant("binary-two-outputs", "fastnn/estimator.py", "if len(self.classes_) <= 2:",
           "if len(self.classes_) <= 1:", "two classes trained as two logistic units, not one",
           tests=("tests/test_api.py::test_binary_classification_has_one_logistic_unit",)),
    Mutant("stratify-dropped", "fastnn/estimator.py",
           "stratify = problem.Y.astype(bool) if is_classifier(self) and self.n_outputs_ == 1 else None",
           "stratify = None", "early stopping's validation split of a binary classifier not stratified",
           tests=(T_EQUAL,)),
    Mutant("early-stopping-best-not-restored", "fastnn/estimator.py",
           "problem.theta[...] = self._best_parameters", "pass",
           "early stopping keeps the last weights, not the best", tests=(T_EQUAL,)),
    Mutant("early-stopping-best-is-view", "fastnn/estimator.py", "self._best_parameters = theta.copy()",
           "self._best_parameters = theta",
           "the best weights saved as a view: the restore puts back the last",
           tests=(T_EQUAL,)),
    Mutant("adam-follows-schedule", "fastnn/estimator.py",
           'schedule=self.learning_rate if sgd else "constant"',
           "schedule=self.learning_rate", "Adam follows learning_rate's schedule (adaptive: does not stop "
           "on a stall)", tests=(T_EQUAL, "tests/test_optimizers.py")),
    Mutant("schedule-rate-not-applied", "fastnn/estimator.py",
           "self._optimizer.learning_rate = end.learning_rate", "pass",
           "the schedule's next rate is never given to the optimizer", tests=(T_EQUAL,)),
    Mutant("t-counts-epochs", "fastnn/estimator.py", "self.t_ += n", "self.t_ += 1",
           "t_ counts epochs, not samples (invscaling decays by epochs)", tests=(T_EQUAL,)),
    Mutant("diverged-estimator-weights-kept", "fastnn/estimator.py",
           "before = (theta.copy(), [s.copy() for s in", "before = (theta, [s.copy() for s in",
           "the weights saved before an epoch are a view: after divergence nothing is put back",
           tests=("tests/test_training.py::test_divergence_is_reported_and_weights_stay_finite",
                  "tests/test_engine.py::test_an_interrupted_fit_keeps_the_last_finished_epoch")),
    Mutant("diverged-weights-kept", "fastnn/_trainer.py", "before = theta.copy()", "before = theta",
           "old stack: the weights saved before an epoch are a view: after divergence nothing is put back",
           tests=("tests/test_split.py::test_a_diverging_split_epoch_puts_the_weights_back",)),
    # Split epoch and its barriers
    Mutant("split-start-barrier-no-wait", "fastnn/kernels/split.py",
           "_arrive_and_wait(shared.sync, n_workers)",
           "_arrive_and_wait(shared.sync, 0)",
           "the split epoch's start barrier counts in without waiting: rows read before they are gathered",
           tests=(T_SPLIT_BARRIERS,)),
    Mutant("split-first-barrier-no-wait", "fastnn/kernels/split.py",
           "_arrive_and_wait(shared.sync, n_workers * (2 * k + 2))", "_arrive_and_wait(shared.sync, 0)",
           "the split epoch's first barrier counts in without waiting: partial sums read before written",
           tests=(T_SPLIT_BARRIERS,)),
    Mutant("split-second-barrier-no-wait", "fastnn/kernels/split.py",
           "_arrive_and_wait(shared.sync, n_workers * (2 * k + 3))", "_arrive_and_wait(shared.sync, 0)",
           "the split epoch's second barrier counts in without waiting (a race)", tests=(T_SPLIT_BARRIERS,)),
    # Rows engine
    Mutant("rows-first-barrier-no-wait", "fastnn/kernels/rows.py",
           "_arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 1))", "_arrive_and_wait(crew.sync, 0)",
           "the rows epoch's first barrier counts in without waiting: gradients added before written",
           tests=(T_SPLIT_BARRIERS,)),
    Mutant("rows-second-barrier-no-wait", "fastnn/kernels/rows.py",
           "_arrive_and_wait(crew.sync, crew.n_workers * (2 * k + 2))", "_arrive_and_wait(crew.sync, 0)",
           "the rows epoch's second barrier counts in without waiting: a batch on half-stepped parameters",
           tests=(T_SPLIT_BARRIERS,)),
    Mutant("pieces-sum-drops-middle", "fastnn/kernels/rows.py", "total[k] += part[k]",
           "total[k] += 0 * part[k]",
           "of three or more pieces, only the first's and the last's gradients are added",
           tests=(T_ROWS_EQUAL, T_SOLVER)),
    Mutant("pieces-last-dropped", "fastnn/kernels/rows.py",
           "return total, grads[n - 1, lo:hi] if n > 1 else total[:0]", "return total, total[:0]",
           "the last piece's gradient is not handed to the update", tests=(T_ROWS_EQUAL, T_SOLVER)),
    Mutant("update-ignores-last", "fastnn/kernels/_scalar.py",
           "return grad[k] + last[k] if last.shape[0] > 0 else grad[k]", "return grad[k]",
           "the updates read the pieces' sum without its last part", tests=(T_ROWS_EQUAL, T_SOLVER)),
    Mutant("rows-step-by-share", "fastnn/kernels/rows.py", "like(net.theta, step / (stop - start))",
           "like(net.theta, step / (hi - lo))", "the step divided by the worker's rows, not the batch's",
           tests=(T_ROWS_EQUAL,)),
    Mutant("rows-threshold-exclusive", "fastnn/engine.py", ">= rows.MIN_ROW_SHARING_ROWS",
           "> rows.MIN_ROW_SHARING_ROWS", "a batch of exactly the threshold shares units",
           tests=("tests/test_engine.py::test_make_engine_shares_rows_from_a_batch_size_up",)),
    Mutant("validation-every-core", "fastnn/estimator.py", "n_threads=solver.blas_threads)",
           "n_threads=None)", "early stopping's score uses every core between two epochs of split workers",
           tests=("tests/test_api.py::test_validation_scored_with_the_epochs_blas_threads",)),
    Mutant("barrier-no-wait", "fastnn/kernels/sync.py", "while _atomic_load(sync, COUNT) < target:",
           "while _atomic_load(sync, COUNT) < 0:", "the barrier never waits", tests=("tests/test_sync.py",)),
    Mutant("barrier-one-short", "fastnn/kernels/sync.py", "while _atomic_load(sync, COUNT) < target:",
           "while _atomic_load(sync, COUNT) < target - 1:", "the barrier opens with one worker missing",
           tests=("tests/test_sync.py",)),
    Mutant("barrier-ignores-abort", "fastnn/kernels/sync.py", "if _atomic_load(sync, ABORT) != 0:",
           "if _atomic_load(sync, ABORT) > 1:", "workers wait forever for a worker that failed",
           tests=("tests/test_sync.py",)),
    Mutant("split-workers-many-threads", "fastnn/split.py",
           "self.n_workers, self.blas_threads = n_workers, 1",
           "self.n_workers, self.blas_threads = n_workers, n_threads",
           "split workers each run multi-threaded BLAS",
           tests=("tests/test_engine.py::test_make_engine_chooses_by_kind_threads_and_size",)),
    Mutant("workers-beyond-units", "fastnn/split.py", "min(n_threads, available_cores(), sizes[1])",
           "min(n_threads, available_cores())", "more workers than first-layer units",
           tests=("tests/test_split.py::test_split_workers",)),
    Mutant("b1-from-last-worker", "fastnn/split.py", "b1[...] = self.shares[0].b1",
           "b1[...] = self.shares[-1].b1", "second layer's bias taken from the last worker's copy",
           equivalent="every worker steps its own copy of b1 with the same arithmetic on the same dZ",
           tests=("tests/test_split.py",)),
    # Persistence
    Mutant("load-dtype-unchecked", "fastnn/_persist.py", "if array.dtype != dtype:", "if False:",
           "load accepts float64 layers in a file that says float32",
           tests=("tests/test_persist.py",)),
    Mutant("load-state-dtype-unchecked", "fastnn/_persist.py",
           "if state.shape != (size,) or state.dtype != dtype:", "if state.shape != (size,):",
           "load accepts optimizer state of another dtype than the layers", tests=("tests/test_persist.py",)),
    Mutant("load-newer-version", "fastnn/_persist.py", "version == FORMAT_VERSION):",
           "version >= FORMAT_VERSION):", "load reads files of a newer format version",
           tests=("tests/test_persist.py::test_damaged_model_files",)),
    Mutant("load-older-version", "fastnn/_persist.py", "version == FORMAT_VERSION):",
           "version <= FORMAT_VERSION):", "load reads files of an older format version",
           tests=("tests/test_persist.py::test_damaged_model_files",)),
    # Loaders
    Mutant("idx-padded-accepted", "fastnn/datasets.py", "if len(data) != expected:",
           "if len(data) < expected:", "an IDX file with bytes past its stated shape accepted",
           tests=("tests/test_datasets.py",)),
    Mutant("pixels-over-256", "fastnn/datasets.py", "    return X / PIXEL_MAX\n",
           "    return X / 256.0\n", "MNIST pixels scaled by 1/256", tests=("tests/test_datasets.py",)),
    Mutant("csv-header-read", "fastnn/datasets.py", "    except ValueError:\n        return 1",
           "    except ValueError:\n        return 0",
           "a CSV header is parsed as data", tests=("tests/test_datasets.py",)),
    # Command line
    Mutant("predict-on-training-part", "fastnn/cli.py",
           "X, y = parts[2:] if len(parts) == 4 else parts",
           "X, y = parts[:2]", "fastnn predict on MNIST predicts the training set",
           tests=("tests/test_cli.py",)),
    Mutant("cli-oserror-traceback", "fastnn/cli.py",
           "except (ValueError, OSError, ImportError, TrainingDivergedError,",
           "except (ValueError, ImportError, TrainingDivergedError,",
           "a missing data folder ends in a traceback, not a one-line error", tests=("tests/test_cli.py",)),
    Mutant("shuffle-not-composed", "fastnn/estimator.py", "    return sample_idx[order]", "    return order",
           "each epoch's order is a fresh shuffle of arange(n), not scikit-learn's shuffle of the last order",
           tests=("tests/test_sklearn_equality.py",)),
    Mutant("gemm-blocks-skip-last", "fastnn/kernels/blas.py", "    for i in range(0, C.shape[0], block):",
           "    for i in range(0, C.shape[0] - block, block):",
           "a GEMM in blocks leaves its last block of rows out",
           tests=("tests/test_kernels.py",)),
    Mutant("gemm-blocks-first-rows", "fastnn/kernels/blas.py",
           "block_a = A[:, i:i + block] if trans_a else A[i:i + block]",
           "block_a = A[:, 0:block] if trans_a else A[0:block]",
           "every block of a blocked GEMM multiplies the first rows of A", tests=("tests/test_kernels.py",)),
    Mutant("gemm-operands-not-const", "fastnn/kernels/blas.py",
           "alpha, const(A), const(B), beta, C)", "alpha, A, B, beta, C)",
           "the blocked GEMM compiled again for each mix of read-only data and writeable buffers",
           tests=("tests/test_engine.py::test_a_cold_cache_is_announced_once",)),
    Mutant("solver-data-writeable", "fastnn/solvers.py",
           "self.p = problem._replace(X=read_only(problem.X), Y=read_only(problem.Y))", "self.p = problem",
           "the solver epoch takes writeable data as it comes: a read-only X compiles it again",
           tests=("tests/test_validation.py::test_read_only_data_compiles_no_kernel_again",)),
    Mutant("engine-data-writeable", "fastnn/fast.py",
           "self.X, self.y = read_only(X), read_only(np.ascontiguousarray(y, dtype=np.int64))",
           "self.X, self.y = X, np.ascontiguousarray(y, dtype=np.int64)",
           "the tutorial engines take writeable data as it comes: read-only X and y compile them again",
           tests=("tests/test_engine.py::test_read_only_data_compiles_no_kernel_again",)),
    Mutant("small-rule-tn-limit", "fastnn/kernels/blas.py",
           "    return rows * cols <= SMALL_GEMM_TN_MN or trans_a or not trans_b", "    return True",
           "blocks are sized past OpenBLAS's output limit for its TN small kernel",
           tests=("tests/test_kernels.py",)),
    Mutant("small-rule-no-cap", "fastnn/kernels/blas.py",
           " and rows <= block * MAX_SMALL_BLOCKS:", ":",
           "a full batch's product runs in thousands of blocks", tests=("tests/test_kernels.py",)),
    Mutant("small-rule-float64-8-rows", "fastnn/kernels/blas.py",
           "smallest = MIN_FLOAT64_TN_BLOCK_ROWS if trans_a and itemsize == 8 else",
           "smallest = MIN_FLOAT64_TN_BLOCK_ROWS if trans_a and itemsize == 4 else",
           "float64 updates go in 8-row blocks (slower than whole), float32 ones not",
           tests=("tests/test_kernels.py",)),
    Mutant("gemm-blocks-by-address", "fastnn/kernels/blas.py",
           "    if chunk == k:\n        _gemm_blocks(",
           "    if chunk == k and (A.ctypes.data % 64 != 0 or B.ctypes.data % 64 != 0):\n"
           "        _gemm_call(trans_a, trans_b, alpha, A, B, beta, C)\n"
           "    elif chunk == k:\n        _gemm_blocks(",
           "operands off cache lines run whole: results change with where a user's array starts",
           tests=("tests/test_api.py::test_results_do_not_depend_on_where_the_input_starts",)),
    Mutant("small-kernels-off", "fastnn/kernels/blas.py",
           "small_kernels = ctypes.c_int64(CORE in SMALL_KERNEL_CORES)", "small_kernels = ctypes.c_int64(0)",
           "GEMMs never run in blocks, even with OpenBLAS's AVX-512 cores", tests=("tests/test_kernels.py",)),
    Mutant("aligned-empty-unaligned", "fastnn/_aligned.py", "    start = -raw.ctypes.data % ALIGNMENT",
           "    start = 0", "arrays start where NumPy's allocation does, not on a cache line",
           tests=("tests/test_engine.py",)),
    Mutant("theta-unaligned", "fastnn/layout.py", "        flat = aligned_empty(self.size, dtype)",
           "        flat = np.empty(self.size, dtype)", "θ starts where NumPy's allocation does",
           tests=("tests/test_engine.py",)),
    Mutant("split-work-unaligned", "fastnn/split.py", "hidden=aligned_empty((b, w), dtype)",
           "hidden=np.empty((b, w), dtype)", "a split worker's activations start off a cache line",
           tests=("tests/test_engine.py",)),
    Mutant("blas-check-never-fails", "fastnn/kernels/blas.py",
           "if not np.array_equal(c.reshape(2, 2).T, want):", "if not np.array_equal(want, want):",
           "FASTNN_BLAS accepts a library whose GEMM computes wrong", tests=("tests/test_kernels.py",)),
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


# Files that compiled kernels are built from: their own code, and the constants they import
# (fastnn.kernels imports LEAKY_SLOPE from reference.py, the table's columns from layout.py).
KERNEL_INPUTS = ("fastnn/kernels/", "fastnn/reference.py", "fastnn/layout.py")


def scratch_env(root):
    # No .pyc files: a mutated file put back within the same second at the same size would
    # otherwise load the mutant's bytecode.
    env = dict(os.environ, PYTHONPATH=root, NUMBA_CACHE_DIR=os.path.join(root, ".numba-cache"),
               PYTHONDONTWRITEBYTECODE="1")
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


def check_baseline(root, tests, timeout):
    """The unmutated copy in ``root`` must import itself, not an installed fastnn, and pass the tests."""
    copy_repository(root)
    where = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.__file__)"], cwd=root,
                           env=scratch_env(root), capture_output=True, text=True).stdout.strip()
    if not where.startswith(root):
        sys.exit(f"the tests would import fastnn from {where or '(nothing)'}, not from the copy")
    status, detail = run_tests(root, tests, timeout)
    if status != "passed":
        sys.exit(f"the unmutated code does not pass the tests ({status}: {detail}); fix that first")


def run_mutant(mutant, tests, timeout, warm_root=None):
    """Return ``(status, detail)``: killed, survived, stale or timeout.

    A mutant of a file that no kernel is built from runs in ``warm_root`` (the baseline's
    copy, whose Numba cache holds the unmutated kernels), the file put back afterwards;
    any other in a fresh copy with an empty cache."""
    if not applies(mutant):
        return "stale", f"the snippet is not found exactly once in {mutant.path}"
    if warm_root is not None and not mutant.path.startswith(KERNEL_INPUTS):
        path = os.path.join(warm_root, mutant.path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            apply(mutant, warm_root)
            status, detail = run_tests(warm_root, tests, timeout)
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    else:
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
    parser.add_argument("--narrow", action="store_true",
                        help="run each mutant against the tests listed with it, not --tests")
    parser.add_argument("--cold", action="store_true",
                        help="every mutant in a fresh copy with an empty Numba cache (slower)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant (default: 900)")
    args = parser.parse_args()
    if args.list:
        print_list()
        return 0
    mutants = selected(args.only)
    if args.narrow:
        tests_of = {m.name: list(m.tests) or args.tests for m in mutants}
        baseline = sorted({t for tests in tests_of.values() for t in tests})
        if any(not tests for tests in tests_of.values()):
            baseline = args.tests  # a mutant without its own tests runs them all
    else:
        tests_of = {m.name: args.tests for m in mutants}
        baseline = args.tests
    print(f"tests: {' '.join(PYTEST + baseline)}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="fastnn-baseline-") as warm_root:
        check_baseline(warm_root, baseline, args.timeout)
        for mutant in mutants:
            status, detail = run_mutant(mutant, tests_of[mutant.name], args.timeout,
                                        None if args.cold else warm_root)
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
