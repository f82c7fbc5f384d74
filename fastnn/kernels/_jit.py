"""How the kernels are compiled.

Every kernel is written with ``prange`` over independent rows (or row chunks),
so it can run on Numba's thread pool. By default it is compiled serial: inside
a training epoch BLAS owns the cores, and even a one-thread parallel region per
kernel call cost more than the kernel (see ``bench/threads.py``, which measures
both builds). ``FASTNN_PARALLEL_KERNELS=1`` in the environment, set before
fastnn is imported, compiles them with ``parallel=True`` (and without the disk
cache, whose key does not record the flag) for such measurements. Kernels release the GIL, so the split epoch
(:mod:`.split`) runs them in Python threads side by side.
"""

import os

from numba import njit

PARALLEL = os.environ.get("FASTNN_PARALLEL_KERNELS") == "1"

kernel = njit(parallel=PARALLEL, cache=not PARALLEL, nogil=True)
