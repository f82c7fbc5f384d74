"""The kernels are written with ``prange`` but compiled serial; ``FASTNN_PARALLEL_KERNELS=1``
compiles them with ``parallel=True`` (fastnn/kernels/_jit.py). The kernel tests run against
that build too, in a fresh process (the flag is read at import), with the same bounds, so
that a race or a wrong reduction in a ``prange`` loop fails here. The tests that bind another
BLAS in a child process are left out: they exercise no ``prange`` loop the suite does not
already run here, and their children compile the whole engine again (about 100 s of CI). So
are the GEMM's own tests: ``kernels/blas.py`` has neither a ``prange`` loop nor an array
expression Numba could parallelize, so the parallel build compiles its kernels as the serial
one does, and their compiles took 48 s of this child's 123 s."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kernel_tests_pass_in_the_parallel_build():
    env = dict(os.environ, FASTNN_PARALLEL_KERNELS="1", NUMBA_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_kernels.py", "tests/test_numerics.py", "tests/test_optimizers.py",
                          "tests/test_losses.py",
                          "-k", "not gemm and not fastnn_blas and not scipy_blas_is_the_fallback"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary
