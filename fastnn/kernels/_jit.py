"""How the kernels are compiled.

Every kernel is written with ``prange`` over independent rows (or row chunks),
so it can run on Numba's thread pool. By default it is compiled serial: inside
a training epoch BLAS owns the cores, and even a one-thread parallel region per
kernel call cost more than the kernel (see ``bench/threads.py``, which measures
both builds). ``FASTNN_PARALLEL_KERNELS=1`` in the environment, set before
fastnn is imported, compiles them with ``parallel=True`` (and without the disk
cache, whose key does not record the flag) for such measurements. Kernels release the GIL, so the split epoch
(:mod:`.split`) runs them in Python threads side by side.

Kernels are compiled without Numba's reference counting (its "NRT"): every array a kernel
sees is its Python caller's, alive for the whole call, and a kernel allocates nothing
(scratch space is on its stack: :mod:`._stack`). With it, each view a kernel took (a
layer's weights, a batch's rows, an inlined helper's arguments, once per row in some
loops) cost an atomic increment and decrement of its array's count: about 190 a step in
the digits' solver epoch (64-100-10, batch 32), 12% of its time in ``perf``. Without
them that epoch took 5-7% less time (``python bench/ab.py OLD --batches digits``,
docs/design.md). The flag is inherited by the kernels a kernel calls. The parallel build
keeps the counting: Numba's lowering of a ``prange`` reduction allocates.
"""

import os

from numba import njit

PARALLEL = os.environ.get("FASTNN_PARALLEL_KERNELS") == "1"

kernel = njit(parallel=PARALLEL, cache=not PARALLEL, nogil=True, _nrt=PARALLEL)
# Two levels: kernels (the epoch drivers, and the loops and GEMM they call) are compiled
# and cached on their own; the helpers that glue them together (views, offsets, one
# layer's forward or backward, a whole batch step) are inlined into the driver that calls
# them (Numba IR inlining). Every separately compiled function costs a fixed ~0.1-0.2 s,
# and Numba optimizes and generates the code of each again inside every caller above it,
# so a deep tree of kernels compiled the same code many times (bench/compile_time.py).
# Helpers are compiled only inside the kernels that use them (and, uncached, when a test
# calls one directly).
helper = njit(inline="always", parallel=PARALLEL, nogil=True)
# Division as NumPy does it (x/0 gives ±inf or NaN) rather than Python's ZeroDivisionError,
# for kernels whose divisor can reach 0 with valid input: a Poisson output e^z underflows
# to 0 below z ≈ −745 (float64) or −104 (float32), and the reference then gives inf or NaN.
ieee_kernel = njit(parallel=PARALLEL, cache=not PARALLEL, nogil=True, error_model="numpy", _nrt=PARALLEL)
# Sums whose order only rounding depends on: LLVM may regroup the additions into vector
# lanes (fastmath "reassoc" only: no contraction, no finite-math assumptions). The order
# then follows the CPU's vector width, so such a sum is the same on every run of one machine
# type, not bitwise across machine types. The L2 sum ran 4x faster so (bench/solver_parts.py).
sum_kernel = njit(parallel=PARALLEL, cache=not PARALLEL, nogil=True, fastmath={"reassoc"}, _nrt=PARALLEL)
