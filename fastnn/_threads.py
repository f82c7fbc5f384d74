"""Who owns the cores while fastnn trains or predicts.

Numba's ``prange`` workers and OpenBLAS's threads must not run at once: on a
2-core machine a compiled epoch with both at 2 threads ran 100-450x slower than
with either at 1 (``bench/threads.py`` measures it). So inside every fit and
predict Numba runs its kernels on one thread and BLAS owns the cores, except
for small batches, where one BLAS thread is faster than two (the GEMMs are too
small to split). Both settings are restored on exit.
"""

import os
from contextlib import contextmanager

import numba
from threadpoolctl import threadpool_limits

# Below this batch size a single BLAS thread beat two in bench/threads.py.
SMALL_BATCH = 64


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_threads(n_threads, batch_size):
    """BLAS threads for a fit with ``batch_size``, capped by ``n_threads`` (None: every core)."""
    cap = available_cores() if n_threads is None else n_threads
    return 1 if batch_size < SMALL_BATCH else cap


@contextmanager
def thread_limits(blas):
    """Run the block with ``blas`` BLAS threads and one Numba thread."""
    previous = numba.get_num_threads()
    with threadpool_limits(limits=blas, user_api="blas"):
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(previous)
