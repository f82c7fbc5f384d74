"""The arrays the engines hand the kernels: buffers whose data start on a cache line, and the
data as read-only views.

OpenBLAS's AVX-512 small-matrix kernels, which multiply without copying their operands into
aligned buffers first, ran the forward GEMM at batch 32 in blocks (float32) 1.1-1.8x faster
with every row of both operands on a 64-byte boundary than 16 bytes past one, where NumPy's
large arrays start (``bench/test_bench_kernels.py``, group "first-layer GEMMs in blocks"). So
the engines allocate their buffers so; the blocks themselves do not depend on alignment
(:func:`fastnn.kernels.blas._small_block`), so results never depend on where an array starts.
A row of 784 float32 values is 49 cache lines, so every row of such an array is aligned too.

Numba compiles a kernel once for each set of argument types, and a read-only array is a type
of its own: a fit on a read-only X (a memory map opened for reading, an array whose write flag
its owner turned off) compiled the whole solver epoch a second time, 20.5 s
(``bench/compile_time.py``, on the code before). The engines
therefore hand the kernels the data they only read (X, Y, sample weights) always read-only
(:func:`read_only`): one compiled epoch serves both, and a kernel that would write into the
user's data does not compile.
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


def aligned_copy(array, dtype=None):
    """A copy of ``array`` (as ``dtype``, if given) whose data start on a cache line."""
    out = aligned_empty(np.shape(array), np.asarray(array).dtype if dtype is None else dtype)
    out[...] = array
    return out


def aligned_rows(n_rows, row_size, dtype):
    """An ``n_rows`` × ``row_size`` array (or wider) whose every row starts on an
    :data:`ALIGNMENT`-byte boundary: each row is padded to whole cache lines, the padding unused.
    For one gradient of θ per piece of a batch: θ's size is rarely a whole number of cache lines,
    and the first layer's weight gradient written into a row 16 or 40 bytes past one ran 8%
    slower (OpenBLAS's AVX-512 small-matrix kernels, a 128 × 784 gradient over 64 to 512 rows)."""
    per_line = ALIGNMENT // np.dtype(dtype).itemsize
    return aligned_empty((n_rows, -(-row_size // per_line) * per_line), dtype)


def read_only(array):
    """A view of ``array``'s data (a plain ndarray, no copy) that cannot be written."""
    view = array.view(np.ndarray)
    view.flags.writeable = False
    return view
