"""Arrays whose data start on a cache line.

OpenBLAS's AVX-512 small-matrix kernels, which multiply without copying their operands into
aligned buffers first, ran the forward GEMM at batch 32 in blocks (float32) 1.1-1.8x faster
with every row of both operands on a 64-byte boundary than 16 bytes past one, where NumPy's
large arrays start (``bench/test_bench_kernels.py``, group "first-layer GEMMs in blocks"). So
the engines allocate their buffers so; the blocks themselves do not depend on alignment
(:func:`fastnn.kernels.blas._small_block`), so results never depend on where an array starts.
A row of 784 float32 values is 49 cache lines, so every row of such an array is aligned too.
"""

import numpy as np

ALIGNMENT = 64  # bytes: a cache line, and one AVX-512 register


def aligned_empty(shape, dtype):
    """Like ``np.empty(shape, dtype)``, its data starting on an :data:`ALIGNMENT`-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)
