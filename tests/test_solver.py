"""The solver engines (fastnn/solvers.py): the fast epoch and objective against the reference, for
every output layer, update rule and sample weighting; subnormals flushed only inside the kernels."""

import numpy as np
import pytest

from fastnn import reference, rows
from fastnn.kernels._fpu import X86
from fastnn.layout import Layout
from fastnn.solvers import Optimizer, Problem, make_solver

from .conftest import DTYPES

RULES = ["momentum", "nesterov", "adam"]
# Whole epochs, relative to the largest reference parameter: the bounds of the engines' whole runs.
BOUND = {np.float32: 1e-5, np.float64: 1e-12}


def _problem(loss, dtype, weighted, rng, first_hidden=7):
    n, k = 50, {"log_loss": 3, "binary_log_loss": 2, "squared_error": 2, "poisson": 1}[loss]
    X = rng.random((n, 5)).astype(dtype)
    Y = {"log_loss": lambda: np.eye(k)[rng.integers(0, k, n)],
         "binary_log_loss": lambda: (rng.random((n, k)) > 0.5) * 1.0,
         "squared_error": lambda: rng.random((n, k)),
         "poisson": lambda: rng.poisson(2, (n, k)) * 1.0}[loss]().astype(dtype)
    layout = Layout([5, first_hidden, 6, k])
    theta = rng.uniform(-0.5, 0.5, layout.size).astype(dtype)
    weights = rng.uniform(0.5, 2, n).astype(dtype) if weighted else None
    return Problem(X, Y, weights, loss, 1e-3, layout, theta, "tanh")


def _both_engines(problem, rule, workers, share_units=None):
    """The reference solver, then the fast one with ``workers`` worker threads (sharing rows or
    units, or as the batch size chooses), each on its own copy of ``problem``'s θ (batches of
    16), with its optimizer and that copy."""
    for engine in ("reference", "fast"):
        theta = problem.theta.copy()
        extra = {"n_workers": workers, "share_units": share_units} if engine == "fast" else {}
        solver = make_solver(engine, problem._replace(theta=theta), 16, **extra)
        yield solver, Optimizer(rule, theta, 0.01), theta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["log_loss", "binary_log_loss", "squared_error", "poisson"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("workers, share_units", [(1, None), (2, False), (3, False), (2, True), (3, True)])
def test_fast_epochs_and_objective_match_the_reference(monkeypatch, dtype, loss, rule, weighted, workers,
                                                      share_units):
    """Three shuffled epochs of batches of 16 (the last one, 2 rows, short of 3 workers sharing
    rows), then the objective; the fast epoch serial and shared by 2 or 3 worker threads, each
    taking pieces of the rows (four a batch of 16 here, one the last) or a share of the first
    hidden layer's 7 units."""
    monkeypatch.setattr(rows, "PIECE_ROWS", 5)
    problem = _problem(loss, dtype, weighted, np.random.default_rng(0))
    order = np.random.default_rng(1).permutation(problem.X.shape[0])
    results = []
    for solver, optimizer, theta in _both_engines(problem, rule, workers, share_units):
        losses = [solver.epoch(order, optimizer) for _ in range(3)]
        results.append((theta, losses, *solver.objective(theta), optimizer.t))
    assert solver.share_units == bool(share_units)  # the fast solver, the last one
    (theta_r, losses_r, loss_r, grad_r, t_r), (theta_f, losses_f, loss_f, grad_f, t_f) = results
    bound = BOUND[dtype]
    np.testing.assert_allclose(theta_f, theta_r, rtol=0, atol=bound * np.abs(theta_r).max())
    np.testing.assert_allclose(losses_f, losses_r, rtol=bound)
    np.testing.assert_allclose(loss_f, loss_r, rtol=bound)
    np.testing.assert_allclose(grad_f, grad_r, rtol=0, atol=bound * np.abs(grad_r).max())
    assert t_f == t_r == 12  # 3 epochs of 4 batches


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the reference's, as NumPy's
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("rule", ["momentum", "adam"])
@pytest.mark.parametrize("workers, share_units", [(1, None), (2, False), (2, True)])
def test_without_l2_only_an_overflowing_sum_of_squares_makes_the_loss_nan(rule, workers, share_units):
    """α = 0: the term (α/2) Σ‖W‖² / S is 0, unless Σ‖W‖² overflows θ's dtype: then 0 · inf,
    NaN, as scikit-learn's. A first-layer weight of 1e30
    (float32) on an input that is 0 in every row leaves the forward pass finite and never
    changes (its gradient is 0): the epochs' losses and the objective are NaN from the term
    alone, in both engines, and the other weights agree; without that weight the losses are
    finite and agree too."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(7))._replace(alpha=0.0)
    problem.X[:, 0] = 0
    order = np.random.default_rng(8).permutation(problem.X.shape[0])
    huge = problem.theta.copy()
    problem.layout.weights(huge)[0][:, 0] = 1e30
    for theta, finite in ((problem.theta, True), (huge, False)):
        results = []
        engines = _both_engines(problem._replace(theta=theta), rule, workers, share_units)
        for solver, optimizer, copy in engines:
            losses = [solver.epoch(order, optimizer) for _ in range(2)] + [solver.objective(copy)[0]]
            results.append((copy, np.array(losses)))
        (theta_r, losses_r), (theta_f, losses_f) = results
        assert np.isfinite(losses_f).all() == np.isfinite(losses_r).all() == finite
        assert finite or np.isnan(losses_f).all()
        np.testing.assert_allclose(losses_f, losses_r, rtol=BOUND[np.float32])  # NaN where NaN
        np.testing.assert_array_equal(theta_f == 1e30, theta == 1e30)
        theta_r[theta_r == 1e30] = theta_f[theta_f == 1e30] = 0
        np.testing.assert_allclose(theta_f, theta_r, rtol=0, atol=BOUND[np.float32] * np.abs(theta_r).max())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the reference's, as NumPy's
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("rule", ["momentum", "adam"])
@pytest.mark.parametrize("workers, share_units", [(1, None), (2, False), (2, True)])
def test_without_l2_squares_that_overflow_within_an_epoch_make_its_loss_nan(rule, workers, share_units):
    """α = 0: the fast epoch sums Σ‖W‖² only while an update may have written a weight whose
    square could overflow. Here the squares are finite when the epoch starts (a first-layer
    weight of 1e15 on an input that is 0 in every row, within the bound) and overflow after its
    first step, which the rule's state (a velocity, or Adam's first moment, of 1e30 for that
    weight) sends past 1e29: the epoch's loss is NaN, as the reference's. With a state of 0 the
    weight stays at 1e15 and the losses are finite and agree."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(7))._replace(alpha=0.0)
    problem.X[:, 0] = 0
    problem.layout.weights(problem.theta)[0][:, 0] = 1e15
    order = np.random.default_rng(8).permutation(problem.X.shape[0])
    column = np.zeros_like(problem.theta)
    problem.layout.weights(column)[0][:, 0] = 1
    for push, finite in ((0.0, True), (1e30, False)):
        losses = []
        for solver, optimizer, theta in _both_engines(problem, rule, workers, share_units):
            optimizer.state[0][column == 1] = push
            losses.append(solver.epoch(order, optimizer))
            assert (np.abs(theta[column == 1]) > 1e29).all() != finite
        assert np.isfinite(losses).all() == finite and (finite or np.isnan(losses).all())
        np.testing.assert_allclose(losses[1], losses[0], rtol=BOUND[np.float32])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the reference's, as NumPy's
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("rule", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("workers, share_units", [(1, None), (2, False), (2, True)])
def test_without_l2_a_weight_an_update_makes_infinite_turns_nan_as_the_reference(rule, workers, share_units):
    """α = 0: the fast epoch leaves the term α·W out of the mean gradient while every weight is
    bounded (it is then ±0), and keeps it after an update that wrote an infinite weight, whose
    0·inf is NaN. The rule's state (a velocity, or Adam's first moment, of -inf for the weights
    on one input, which is positive in every row) sends those weights to ±inf at the first
    step; tanh of ±inf is ±1 with a derivative of 0, so their gradient is 0 and the forward
    pass finite, and only the term turns them NaN at the second step, then every parameter
    after it, in both engines. A finite push leaves every parameter finite."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(7))._replace(alpha=0.0)
    problem.X[:, 0] = 0.5
    order = np.random.default_rng(8).permutation(problem.X.shape[0])
    column = np.zeros_like(problem.theta)
    problem.layout.weights(column)[0][:, 0] = 1
    for push, finite in ((-1.0, True), (-np.inf, False)):
        thetas = []
        for solver, optimizer, theta in _both_engines(problem, rule, workers, share_units):
            optimizer.state[0][column == 1] = push
            solver.epoch(order, optimizer)
            thetas.append(theta)
        theta_r, theta_f = thetas
        assert np.isfinite(theta_f).all() == np.isfinite(theta_r).all() == finite
        assert finite or (np.isnan(theta_f).all() and np.isnan(theta_r).all())
        if finite:
            bound = BOUND[np.float32] * np.abs(theta_r).max()
            np.testing.assert_allclose(theta_f, theta_r, rtol=0, atol=bound)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tracked_gradient_norms_match_the_reference(dtype):
    """track_gradients (one worker, each batch whole): after each epoch every layer's mean ‖dW‖
    over its batches, as the reference solver forms it."""
    problem = _problem("log_loss", dtype, False, np.random.default_rng(5))
    order = np.random.default_rng(6).permutation(problem.X.shape[0])
    norms = []
    for engine in ("reference", "fast"):
        theta = problem.theta.copy()
        solver = make_solver(engine, problem._replace(theta=theta), 16, track_gradients=True)
        optimizer = Optimizer("nesterov", theta, 0.01)
        per_epoch = []
        for _ in range(2):
            solver.epoch(order, optimizer)
            per_epoch.append(np.array(solver.norms))
        norms.append(per_epoch)
    assert np.all(np.array(norms[0]) > 0)
    np.testing.assert_allclose(norms[1], norms[0], rtol=BOUND[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("workers", [1, 2])
def test_epochs_with_the_inputs_transposed_match_the_reference(dtype, rule, workers):
    """40 first-layer units, 5 inputs, batches of 16 (one piece, which either of 2 workers
    sharing rows may take): the forward product reads a transposed copy of the batch
    (kernels.network.transposes_inputs)."""
    from fastnn.kernels.network import transposes_inputs

    problem = _problem("log_loss", dtype, False, np.random.default_rng(0), first_hidden=40)
    order = np.random.default_rng(1).permutation(problem.X.shape[0])
    thetas = []
    for solver, optimizer, theta in _both_engines(problem, rule, workers, share_units=False):
        for _ in range(3):
            solver.epoch(order, optimizer)
        thetas.append(theta)
    assert transposes_inputs(problem.layout.table, 16)
    assert all(work.inputs_t.size == 5 * 16 for work in solver.works)
    bound = BOUND[dtype]
    np.testing.assert_allclose(thetas[1], thetas[0], rtol=0, atol=bound * np.abs(thetas[0]).max())


def _mnist_wide(rng, n, dtype, activation="relu"):
    """``n`` random rows of 784 inputs and 10 classes for 784-128-10 (ReLU or ``activation``,
    log-loss, α = 1e-4), θ on a cache line as the estimators allocate it; and a permutation of
    the rows."""
    layout = Layout([784, 128, 10])
    X = rng.random((n, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, n)]
    theta = layout.pack(*reference.init_params(layout.sizes, "kaiming", rng, dtype), dtype)
    return Problem(X, Y, None, "log_loss", 1e-4, layout, theta, activation), rng.permutation(n)


def _two_epochs(problem, order, rule, batch, **fast):
    """Two epochs of the reference solver, then of the fast one (``fast``: its workers), each on
    its own copy of θ: ``[(θ, losses, solver, optimizer)]``, reference first."""
    results = []
    for engine in ("reference", "fast"):
        layout = problem.layout
        copy = layout.pack(layout.weights(problem.theta), layout.biases(problem.theta), problem.X.dtype)
        extra = fast if engine == "fast" else {}
        solver = make_solver(engine, problem._replace(theta=copy), batch, **extra)
        optimizer = Optimizer(rule, copy, 0.001 if rule == "adam" else 0.01)
        results.append((copy, [solver.epoch(order, optimizer) for _ in range(2)], solver, optimizer))
    return results


def _assert_whole_run_close(got, want, optimizer, bound):
    """``got`` within :func:`_whole_run_atol` of ``want``, parameter by parameter."""
    excess = np.abs(got.astype(np.float64) - want) / _whole_run_atol(want, optimizer, bound)
    assert excess.max() <= 1, f"θ[{excess.argmax()}] is {excess.max():.4g} times its bound from the reference"


def _whole_run_atol(want, optimizer, bound):
    """Per parameter, how far a fast run's θ may be from the reference run's ``want``:
    ``bound · max|θ|``, and with Adam, which divides each step by the parameter's own gradient
    scale √v̂ (ε = 1e-8), also ``lr · t · bound · max √v̂ / (√v̂ + ε)``: the GEMMs round a
    gradient to ``bound`` of the largest, so a parameter whose gradients are a millionth of the
    largest (a unit that nearly never fires) takes steps of that size from rounding alone. Seen
    with OpenBLAS's Haswell kernels: one weight of 784-128-10 off by 1.001 of ``bound · max|θ|``,
    its √v̂ 5e-8 against a largest of 0.2; within 0.13 of this bound."""
    atol = bound * np.abs(want).max()
    if optimizer.rule != "adam":
        return atol
    v_hat = optimizer.state[1] / (1 - optimizer.beta_2 ** optimizer.t)
    scale = np.sqrt(v_hat.astype(np.float64))
    rounding_steps = optimizer.learning_rate_init * optimizer.t * bound * scale.max()
    return atol + rounding_steps / (scale + optimizer.epsilon)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("batch, workers, share_units", [(32, 1, None), (32, 2, True), (64, 2, True),
                                                         (128, 2, False), (128, 2, True)])
def test_mnist_wide_epochs_match_the_reference(gemm_blocks, dtype, rule, batch, workers, share_units):
    """784 inputs, 128 first-layer units: where the kernels' OpenBLAS has small-matrix kernels,
    the first layer's GEMMs run in blocks of rows (fastnn.kernels.blas._small_block), and whole
    elsewhere; both within the whole-run bounds."""
    problem, order = _mnist_wide(np.random.default_rng(0), 300, dtype)
    (want, want_losses, _, optimizer), (got, got_losses, solver, _) = _two_epochs(
        problem, order, rule, batch, n_workers=workers, share_units=share_units)
    assert solver.share_units == bool(share_units)
    _assert_whole_run_close(got, want, optimizer, BOUND[dtype])
    np.testing.assert_allclose(got_losses, want_losses, rtol=BOUND[dtype])


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("workers", [1, 2])
def test_steps_reading_transposed_weights_match_the_reference(gemm_blocks, rule, workers):
    """Batches of 1,050 rows (float32): where the kernels' OpenBLAS has small-matrix kernels, the
    first layer's forward products read W[0]ᵀ, copied once a step (and once for the objective
    and the predictions: fastnn.kernels.network.transposes_weights), else W[0]; the epochs, the
    objective over all 2,100 rows and the predictions within the whole-run bounds either way
    (a copy left from the step before is not). Tanh: with ReLU, of 2,100 × 128 pre-activations
    one was 1e-7 from 0, where ReLU's derivative jumps, and that row's share of its unit's
    gradient was in one engine's objective and not the other's."""
    from fastnn.solvers import predict_output, predict_output_reference

    problem, order = _mnist_wide(np.random.default_rng(0), 2100, np.float32, "tanh")
    (want, want_losses, reference_solver, optimizer), (got, got_losses, solver, _) = _two_epochs(
        problem, order, rule, 1050, n_workers=workers)
    bound = BOUND[np.float32]
    _assert_whole_run_close(got, want, optimizer, bound)
    np.testing.assert_allclose(got_losses, want_losses, rtol=bound)
    (want_loss, want_grad), (got_loss, got_grad) = reference_solver.objective(want), solver.objective(want)
    np.testing.assert_allclose(got_loss, want_loss, rtol=bound)
    np.testing.assert_allclose(got_grad, want_grad, rtol=0, atol=bound * np.abs(want_grad).max())
    args = problem.layout, want, "tanh", "log_loss", problem.X
    np.testing.assert_allclose(predict_output(*args), predict_output_reference(*args), rtol=0, atol=bound)
    transposed = 784 * 128 if gemm_blocks else 0
    assert [w.weights_t.size for w in solver.works] == [transposed] * workers
    assert solver._full_work.weights_t.size == transposed


@pytest.mark.skipif(not X86, reason="flushing subnormals is x86's MXCSR")
def test_subnormals_flush_inside_an_epoch_only():
    """A subnormal weight whose gradient is exactly 0 (it leaves a dead ReLU unit) is read as
    zero inside the epoch and so written back as 0; outside, NumPy still keeps subnormals."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(2))
    theta = problem.theta.copy()
    layout = problem.layout
    W0, b0 = layout.weights(theta)[0], layout.biases(theta)[0]
    W0[0], b0[0] = -1.0, -100.0  # unit 0 of the first hidden layer: dead for inputs in [0, 1)
    W1 = layout.weights(theta)[1]
    W1[:, 0] = 1e-39  # subnormal in float32; its gradient is dZ · A[unit 0] = 0
    assert W1[0, 0] > 0
    solver = make_solver("fast", problem._replace(theta=theta, activation="relu", alpha=0.0), 16)
    solver.epoch(None, Optimizer("momentum", theta, 0.1))
    np.testing.assert_array_equal(W1[:, 0], 0)
    assert np.float32(1e-20) * np.float32(1e-20) > 0  # the flag does not outlive the kernel


@pytest.mark.parametrize("share_units", [False, True])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("capped", [False, True], ids=["4 pieces", "capped at 3 by bytes"])
def test_shared_epochs_repeat_bitwise_and_differ_from_serial_only_in_rounding(monkeypatch, rule, share_units,
                                                                               capped):
    """A repeated run is bitwise the same; two workers are within the whole-run bound of one.
    Sharing rows, batches of 16 are cut into four pieces (of 5 rows or more here), whose
    gradients are added in piece order, so three workers give the weights of two bitwise (the
    L2 term of the loss is summed in the workers' blocks of θ, so the loss only to rounding),
    and one worker, which takes each batch whole, rounds differently. Sharing units computes
    each gradient element once, with other GEMM shapes (these happen to round alike). Rows as
    stored too. Capped: the pieces' gradients may take the bytes of three (rows.PIECE_BYTES)."""
    monkeypatch.setattr(rows, "PIECE_ROWS", 5)
    problem = _problem("log_loss", np.float64, True, np.random.default_rng(3))
    pieces = 3 if capped else 4
    if capped:
        monkeypatch.setattr(rows, "PIECE_BYTES", 3 * problem.layout.size * 8)
    runs = []
    for workers in (2, 2, 3, 1):
        theta = problem.theta.copy()
        solver = make_solver("fast", problem._replace(theta=theta), 16, n_workers=workers,
                             share_units=share_units and workers > 1)
        assert solver.max_pieces == (pieces if workers > 1 and not share_units else 1)
        optimizer = Optimizer(rule, theta, 0.01)
        losses = [solver.epoch(order, optimizer) for order in (None, np.arange(50)[::-1])]
        runs.append((theta, losses))
    assert runs[0][0].tobytes() == runs[1][0].tobytes() and runs[0][1] == runs[1][1]
    if not share_units:
        assert runs[2][0].tobytes() == runs[0][0].tobytes()
        np.testing.assert_allclose(runs[2][1], runs[0][1], rtol=1e-14)
    np.testing.assert_allclose(runs[0][0], runs[3][0], rtol=0, atol=1e-12 * np.abs(runs[3][0]).max())
    assert share_units or not np.array_equal(runs[0][0], runs[3][0])


@pytest.mark.parametrize("stalled", [0, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_workers_sharing_units_read_each_batch_after_its_gather(stalled, weighted):
    """Sharing units, each worker gathers its share of batch k + 2's rows after its update of
    batch k; a worker that stalls (about 10 ms) before each of its gathers changes no bit of
    the result: no worker reads a batch before every share of it is in place, nor gathers
    into a slot another worker still reads. Batches of 16 over 50 rows: four batches, the last
    of 2 rows (one a worker)."""
    problem = _problem("log_loss", np.float64, weighted, np.random.default_rng(5))
    order = np.random.default_rng(6).permutation(50)
    runs = []
    for stall in (0, 3_000_000):
        theta = problem.theta.copy()
        solver = make_solver("fast", problem._replace(theta=theta), 16, n_workers=2, share_units=True)
        solver.stall_gather[stalled] = stall
        optimizer = Optimizer("adam", theta, 0.01)
        runs.append((theta, [solver.epoch(order, optimizer) for _ in range(2)]))
    assert runs[0][0].tobytes() == runs[1][0].tobytes() and runs[0][1] == runs[1][1]


def test_units_are_shared_only_when_every_worker_gets_one():
    """Small batches share units by default, but not without a hidden layer of a unit per
    worker; asked for explicitly there, it is an error."""
    problem = _problem("log_loss", np.float64, False, np.random.default_rng(4))  # 7 first-layer units
    assert make_solver("fast", problem, 16, n_workers=2).share_units
    assert not make_solver("fast", problem, 16, n_workers=8).share_units
    assert not make_solver("fast", problem, 16, n_workers=1).share_units
    no_hidden = problem._replace(layout=Layout([5, 3]), theta=np.zeros(Layout([5, 3]).size))
    assert not make_solver("fast", no_hidden, 16, n_workers=2).share_units
    for workers in (1, 8):
        with pytest.raises(ValueError, match="cannot share the 7 units"):
            make_solver("fast", problem, 16, n_workers=workers, share_units=True)


@pytest.mark.parametrize("share_units", [False, True])
def test_a_failing_worker_stops_the_others(share_units):
    """A worker whose buffers are wrong raises; the others leave their barrier instead of waiting
    for it forever, and the epoch raises."""
    problem = _problem("log_loss", np.float64, False, np.random.default_rng(4))
    solver = make_solver("fast", problem, 16, n_workers=2, share_units=share_units)
    if share_units:
        solver.units[1] = solver.units[1]._replace(acts=solver.units[1].acts[:1])
    else:
        solver.works[1] = solver.works[1]._replace(losses=solver.works[1].losses[:1])
    with pytest.raises(RuntimeError, match="worker failed") as failure:
        solver.epoch(None, Optimizer("adam", problem.theta, 0.01))
    assert isinstance(failure.value.__cause__, ValueError)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("rule", RULES)
def test_step_halves_match_the_reference(rule, workers):
    """The two halves of a data-parallel step (fastnn.distributed): a batch's sums of some rows,
    then the step from them, against the reference; a whole batch's rows fit the sums' own
    buffers whatever the worker count."""
    problem = _problem("log_loss", np.float64, True, np.random.default_rng(5))
    rows = np.random.default_rng(6).permutation(problem.X.shape[0])[:16]
    results = []
    for solver, optimizer, theta in _both_engines(problem, rule, workers):
        sums = solver.batch_sums(rows).copy()
        results.append((sums, solver.apply(sums.copy(), optimizer), theta))
    (sums_r, loss_r, theta_r), (sums_f, loss_f, theta_f) = results
    bound = BOUND[np.float64]
    np.testing.assert_allclose(sums_f, sums_r, rtol=0, atol=bound * np.abs(sums_r).max())
    assert loss_f == pytest.approx(loss_r, rel=bound)
    np.testing.assert_allclose(theta_f, theta_r, rtol=0, atol=bound * np.abs(theta_r).max())


FRESH_SOLVER = """
import numpy as np
from fastnn.layout import Layout
from fastnn.solvers import Problem, make_solver
layout = Layout([5, 7, 3])
X = np.zeros((8, 5), np.float32)
problem = Problem(X, np.zeros((8, 3), np.float32), None, "log_loss", 0.0, layout,
                  np.zeros(layout.size, np.float32), "relu")
solver = make_solver("fast", problem, 4, n_workers=2)
from fastnn.kernels import blas
print(any(c.filepath == blas.SOURCE for c in solver._blas.lib_controllers))
"""


def test_the_team_limits_the_kernels_blas_in_a_fresh_process():
    """Workers share the cores only with one-thread BLAS each: the solver's thread controller
    must see the kernels' library even when nothing had loaded it before (two workers, each
    with the BLAS's default threads, ran a batch-128 epoch about 6x slower)."""
    import os
    import subprocess
    import sys

    from fastnn.kernels import blas

    if not os.path.isabs(blas.SOURCE):
        pytest.skip("the kernels' BLAS is SciPy's here, which NumPy's import may have loaded first")
    out = subprocess.run([sys.executable, "-c", FRESH_SOLVER], capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_epoch_refuses_a_rule_or_state_it_cannot_index(workers):
    """The kernels read the state without bounds checks, so an optimizer without state (plain
    "sgd") or with state of another size is refused before any kernel runs (it crashed the
    process before), and θ is left as it was."""
    problem = _problem("log_loss", np.float32, False, np.random.default_rng(5))
    theta = problem.theta.copy()
    solver = make_solver("fast", problem._replace(theta=theta), 16, n_workers=workers)
    with pytest.raises(ValueError, match="'momentum', 'nesterov' or 'adam', not 'sgd'"):
        solver.epoch(None, Optimizer("sgd", theta, 0.1))
    with pytest.raises(ValueError, match="state does not have the parameters' size"):
        solver.epoch(None, Optimizer("adam", theta[:-1], 0.1))
    np.testing.assert_array_equal(theta, problem.theta)
    solver.epoch(None, Optimizer("adam", theta, 0.1))
    assert not np.array_equal(theta, problem.theta)


@pytest.mark.parametrize("workers, share_units", [(1, None), (2, False), (2, True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_batch_of_every_row_is_taken_as_stored(dtype, workers, share_units):
    """The fast solver takes a batch of every row as stored, whatever the order
    (fastnn.fast.full_batch_as_stored): bitwise its epochs in stored order, and within the
    whole-run bound of the reference's epochs in that order, whose sums follow the order."""
    problem = _problem("log_loss", dtype, True, np.random.default_rng(7))
    order = np.random.default_rng(8).permutation(problem.X.shape[0])
    results = []
    for engine, epoch_order in (("fast", order), ("fast", None), ("reference", order)):
        theta = problem.theta.copy()
        extra = {"n_workers": workers, "share_units": share_units} if engine == "fast" else {}
        solver = make_solver(engine, problem._replace(theta=theta), 64, **extra)
        optimizer = Optimizer("adam", theta, 0.01)
        results.append((theta, [solver.epoch(epoch_order, optimizer) for _ in range(3)]))
    (in_order, order_losses), (as_stored, stored_losses), (want, want_losses) = results
    np.testing.assert_array_equal(in_order, as_stored)
    assert order_losses == stored_losses
    bound = BOUND[dtype]
    np.testing.assert_allclose(in_order, want, rtol=0, atol=bound * np.abs(want).max())
    np.testing.assert_allclose(order_losses, want_losses, rtol=bound)
