"""Who owns the cores while fastnn trains or predicts.

Numba's ``prange`` workers and OpenBLAS's threads must not run at once: on a
2-core machine a ``parallel=True`` epoch with both at 2 threads ran about 40x (batch
1024) to 400x (batch 32) slower than with Numba at 1 (``bench/threads.py``
measures every setting).
The kernels are therefore compiled serial (see :mod:`fastnn.kernels._jit`);
the cores go either to BLAS or to the split epoch's worker threads, each of
which then calls one-thread BLAS (the engine, :mod:`fastnn.engine`, says which, in
its ``blas_threads``). Numba's pool is held at one thread in case the parallel
build is in use. Both settings are restored on exit.
"""

import os
from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_blas_threads(controller=None):
    """Every core, but never more BLAS threads than the process already allows.

    Inside a joblib worker (``GridSearchCV(n_jobs=2)``) or under
    ``OPENBLAS_NUM_THREADS`` the BLAS pools start lower; raising them would
    oversubscribe the cores that the other workers use. ``controller``: a
    ``threadpoolctl.ThreadpoolController`` already made (finding the libraries costs
    about 2.5 ms: one per fit is enough).
    """
    controller = controller or ThreadpoolController()
    allowed = [pool["num_threads"] for pool in controller.info() if pool["user_api"] == "blas"]
    return min([available_cores(), *allowed])


@contextmanager
def thread_limits(n_threads=None):
    """Run the block with ``n_threads`` BLAS threads (None: :func:`default_blas_threads`)
    and one Numba thread. Load the BLAS the block will call first: the limit reaches only
    the libraries loaded when the block starts."""
    previous = numba.get_num_threads()
    controller = ThreadpoolController()
    with controller.limit(limits=n_threads or default_blas_threads(controller), user_api="blas"):
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(previous)
