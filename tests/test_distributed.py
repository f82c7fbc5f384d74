"""fastnn.distributed: data-parallel training over MPI, run as ``mpirun -n 2`` / ``-n 3`` subprocesses
(one BLAS thread per rank) of tests/_mpi_worker.py. Skipped without mpi4py or mpirun
(``pip install "fastnn[mpi]"``)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
if MPIRUN is None:
    pytest.skip("mpirun not found", allow_module_level=True)

WORKER = Path(__file__).with_name("_mpi_worker.py")


def run(n_ranks, mode, timeout=120, out=None):
    """``mpirun -n n_ranks python _mpi_worker.py mode``; a hang fails the test at ``timeout``. With
    ``out`` (a folder), each rank also writes what it raised to a file of its own there."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if out is not None:
        env["FASTNN_MPI_OUT"] = str(out)
    return subprocess.run([MPIRUN, "-n", str(n_ranks), sys.executable, str(WORKER), mode], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks-one-empty"])
def exact_results(request):
    done = run(request.param, "exact")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    results = [json.loads(line[len("RESULT "):]) for line in lines if line.startswith("RESULT ")]
    assert len(results) == 13, done.stdout + done.stderr
    return request.param, results


def test_every_epoch_leaves_identical_parameters_on_every_rank(exact_results):
    for r in exact_results[1]:
        assert r["epochs_hashes_equal"] and r["final_equal"], r["name"]
        assert r["predictions_equal"], r["name"]


def test_every_row_used_once_per_epoch(exact_results):
    n_ranks, results = exact_results
    for r in results:
        n_train = {"early-stopping-classifier": 239, "early-stopping-binary": 269,
                   "regressor-weighted-early-stopping": 269}.get(r["name"], 299)
        assert r["rows_per_epoch"] == [n_train] * r["n_iter"][0], r["name"]
        if n_ranks == 3:
            assert r["rows_by_rank"][1] == 0  # the rank without rows takes part


def test_equals_single_process_fit(exact_results):
    results = exact_results[1]
    names = {r["name"] for r in results}
    assert {f"{e}-{d}-{s}" for e in ("reference", "fast") for d in ("float64", "float32")
            for s in ("sgd", "adam")} <= names
    for r in results:
        bound = 1e-12 if r["dtype"] == "float64" else 1e-5
        assert r["rel_error"] <= bound, r
        assert r["n_iter"][0] == r["n_iter"][1] and r["t"][0] == r["t"][1], r
        assert r["loss_error"] <= 1e3 * bound, r
        distributed, single = r["validation_scores"]
        if single is not None:
            assert len(distributed) == len(single)
            assert max(abs(a - b) for a, b in zip(distributed, single)) <= 1e-12, r
    assert next(r for r in results if r["name"] == "sgd-adaptive-stops")["n_iter"][0] < 30  # stopped on tol


def test_bad_input_or_failing_step_on_one_rank_raises_everywhere(tmp_path):
    done = run(2, "errors", timeout=60, out=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    raised = [line for rank in sorted(tmp_path.glob("rank*.txt")) for line in rank.read_text().splitlines()]
    # NaN in X on rank 1: rank 1 raises its own ValueError, rank 0 one naming rank 1
    assert sum("Input X contains NaN" in line for line in raised) == 2
    assert sum("failed on rank 1" in line for line in raised) == 1
    assert sum("solver='lbfgs' is not supported" in line for line in raised) == 2
    assert sum("warm_start" in line for line in raised) == 2
    # step 7 fails on rank 1: rank 1 raises it, rank 0 stops too
    assert sum("injected failure" in line for line in raised) == 1
    assert sum("another rank failed in step 7" in line for line in raised) == 1


@pytest.mark.parametrize("mode", ["asymmetric", "killed"])
def test_a_rank_lost_outside_a_step_ends_the_job(mode):
    """A rank that raises where the others wait in a collective (a callback's error), or that
    is killed: the job ends with an error code instead of hanging (the timeout proves it)."""
    done = run(2, mode, timeout=60)
    assert done.returncode != 0
    if mode == "asymmetric":
        assert "MPI_Abort" in done.stdout + done.stderr


def test_example_every_rank_prints_the_same_accuracy():
    example = Path(__file__).resolve().parent.parent / "examples" / "mpi_digits.py"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([MPIRUN, "-n", "2", sys.executable, str(example)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ranks = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert len(ranks) == 2
    assert ranks[0].split(":", 1)[1].split(",")[1:] == ranks[1].split(":", 1)[1].split(",")[1:]
    assert "largest weight difference" in done.stdout and "loaded model's accuracy" in done.stdout
