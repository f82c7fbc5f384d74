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


def run_workers(n_workers, work, sync):
    """``work(worker)`` for each of ``n_workers`` workers that meet at the spin barriers of
    :mod:`fastnn.kernels.sync`: worker 0 in this thread, the others in threads of their own
    (the kernels release the GIL). A worker that raises sets ``sync[ABORT]``, so that the
    others leave their barriers instead of waiting for it forever; then this raises
    ``RuntimeError`` from the first worker's error (worker 0's own error propagates as it is).
    Return the workers' results."""
    import threading

    from .kernels.sync import ABORT

    results, errors = [None] * n_workers, []

    def run(worker):
        try:
            results[worker] = work(worker)
        except BaseException as error:
            sync[ABORT] = 1
            if worker == 0:
                raise
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(1, n_workers)]
    for thread in threads:
        thread.start()
    try:
        run(0)
    finally:
        for thread in threads:
            thread.join()
    if errors or sync[ABORT] or any(result is None for result in results):
        raise RuntimeError("a training worker failed; the weights are partly updated") from (
            errors[0] if errors else None)
    return results
