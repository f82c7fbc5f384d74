"""The kernels' BLAS: GEMM with its ``alpha`` and ``beta``, called from compiled code.

.. math:: C \\leftarrow \\alpha \\, op(A) \\, op(B) + \\beta \\, C

The SGD step is fused into the weight gradient: one ``?gemm`` call with
``beta = 1`` writes ``W + alpha·dZᵀ·A`` straight into ``W``, so ``dW`` is
never stored and ``W`` is read and written once (docs/design.md, "Where the speed comes from").

Which BLAS: OpenBLAS from the ``scipy-openblas32`` wheel, a dependency, so the
kernels run a known, recent OpenBLAS whatever SciPy bundles. At this project's
shapes OpenBLAS 0.3.34 ran the fused update GEMM 13-17% faster than SciPy 1.17's
0.3.30, and a whole split epoch 6-10% faster (``python bench/blas.py``, which
times both). Where that wheel cannot be imported, SciPy's
``cython_blas`` is used instead (same results to the stated tolerances,
tested). ``FASTNN_BLAS``, set before fastnn is imported, names another library instead: the
path of a BLAS with the Fortran interface and 32-bit integers, e.g. MKL's ``libmkl_rt.so.3``
from the ``mkl`` wheel (README, "Another BLAS": what it changed on one machine; it is checked
on a small product when loaded, and the kernels compiled for one library serve any other).
:data:`SOURCE` names the library in use. Its functions are registered
with LLVM under fixed names, so the compiled kernels call them by name and can
be cached on disk.
"""

import ctypes
import os

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.extending import get_cython_function_address, intrinsic


def _openblas_wheel():
    """``{name: address}`` of ``sgemm``, ``dgemm`` in scipy-openblas32, and the library's path."""
    import scipy_openblas32

    directory = scipy_openblas32.get_lib_dir()
    name = scipy_openblas32.get_library()
    path = next(os.path.join(directory, f) for f in sorted(os.listdir(directory))
                if f.startswith(f"lib{name}.") or f.startswith(f"{name}."))
    library = ctypes.CDLL(path)
    return {f: ctypes.cast(getattr(library, f"scipy_{f}_"), ctypes.c_void_p).value
            for f in ("sgemm", "dgemm")}, path


def _scipy_blas():
    return {f: get_cython_function_address("scipy.linalg.cython_blas", f)
            for f in ("sgemm", "dgemm")}, "scipy.linalg.cython_blas"


def _named_library(path):
    """``{name: address}`` of ``sgemm_``, ``dgemm_`` (or the scipy-openblas builds' ``scipy_``
    names) in the library at ``path``, checked on a small product."""
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise ImportError(f"FASTNN_BLAS={path}: cannot load it ({error})") from None
    addresses = {}
    for f in ("sgemm", "dgemm"):
        symbol = next((s for s in (f"{f}_", f"scipy_{f}_") if hasattr(library, s)), None)
        if symbol is None:
            raise ImportError(f"FASTNN_BLAS={path}: no {f}_ in it (a Fortran-interface BLAS is needed)")
        addresses[f] = ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
        _check_gemm(addresses[f], np.float32 if f == "sgemm" else np.float64, path)
    return addresses, path


def _check_gemm(address, dtype, path):
    """Raise unless ``?gemm`` at ``address`` computes a 2×3 by 3×2 product exactly, called as the
    kernels call it (32-bit integers: a 64-bit-integer build would misread them)."""
    gemm = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(address)
    a = np.arange(1, 7, dtype=dtype)  # column-major 2×3
    b = np.arange(1, 7, dtype=dtype)  # column-major 3×2
    c = np.zeros(4, dtype)
    ints = np.array([2, 2, 3, 2, 3, 2], np.int32)  # m, n, k, lda, ldb, ldc
    scalars = np.array([1, 0], dtype)
    flag = np.array([ord("N")], np.uint8)
    p = [x.ctypes.data for x in (flag, ints, scalars, a, b, c)]
    gemm(p[0], p[0], p[1], p[1] + 4, p[1] + 8, p[2], p[3], p[1] + 12, p[4], p[1] + 16,
         p[2] + scalars.itemsize, p[5], p[1] + 20)
    want = a.reshape(3, 2).T @ b.reshape(2, 3).T  # the column-major product, as NumPy sees it
    if not np.array_equal(c.reshape(2, 2).T, want):
        raise ImportError(f"FASTNN_BLAS={path}: its {dtype.__name__} GEMM gave wrong results "
                          "(fastnn calls the 32-bit-integer Fortran interface)")


def openblas_core(path):
    """The OpenBLAS kernel family (``"SkylakeX"``, ``"Haswell"``, ...) the library at ``path``
    runs on this CPU, or None if it is not an OpenBLAS that says so."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for symbol in ("scipy_openblas_get_corename", "openblas_get_corename"):
        if hasattr(library, symbol):
            corename = getattr(library, symbol)
            corename.restype = ctypes.c_char_p
            return corename().decode()
    return None


# OpenBLAS's AVX-512 cores multiply a product of at most SMALL_GEMM_MNK (M·N·K) without packing
# its operands (its "small-matrix kernels"), and with ``transa`` and not ``transb`` only if
# also M·N ≤ SMALL_GEMM_TN_MN: the rule in its kernel/x86_64/sgemm_small_kernel_permit_skylakex.c.
SMALL_KERNEL_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
SMALL_GEMM_MNK, SMALL_GEMM_TN_MN = 100 ** 3, 1200
SMALL_BLOCK_ROWS = 32  # the largest block tried: 32, 16 or 8 rows, as the rule permits
# But float64 products over the batch (weight gradients and updates, op(A) = Aᵀ) at least 16: in
# 8-row blocks they ran slower than whole (bench/test_bench_kernels.py, "8-row blocks").
MIN_FLOAT64_TN_BLOCK_ROWS = 16
MAX_SMALL_BLOCKS = 64  # beyond: one call (a full batch's first layer in 8-row blocks ran 3-5% slower)
# A float32 product summed over more of the batch's rows than this (a weight gradient or update,
# op(A) = Aᵀ) goes in chunks of this many rows, each in blocks for the small-matrix kernels
# (:func:`_inner_chunk`).
INNER_CHUNK_ROWS = 32
# ... if C takes at most this many bytes, or else in at most MAX_CHUNKS_OF_LARGE_OUTPUT chunks:
# every chunk reads and writes C again, which pays while C stays in a core's L2 cache (1 MiB on
# the Xeons measured); 256 units × 784 inputs (0.8 MB) ran faster in up to 4 chunks, slower in 8.
MAX_CHUNKED_OUTPUT_BYTES = 512 * 1024
MAX_CHUNKS_OF_LARGE_OUTPUT = 4
# A float32 product A·B whose 32-row blocks of C the small-matrix kernels would not take goes in
# at most this many chunks of its inner size (:func:`_input_chunk`): 128 units' forward takes 4 of
# 196 inputs; 256 units' would take 7, and ran no faster than the product packed whole.
MAX_INPUT_CHUNKS = 4

if os.environ.get("FASTNN_BLAS"):
    _addresses, SOURCE = _named_library(os.environ["FASTNN_BLAS"])
else:
    try:
        _addresses, SOURCE = _openblas_wheel()
    except (ImportError, OSError, AttributeError, StopIteration):
        _addresses, SOURCE = _scipy_blas()
CORE = openblas_core(SOURCE) if os.path.isabs(SOURCE) else None
for _name, _address in _addresses.items():
    binding.add_symbol(f"fastnn_{_name}", _address)
# Read by the compiled kernels at run time (:func:`_small_kernels`), so that kernels cached on
# one machine take the rule of the BLAS they run with on another; tests and benchmarks set it.
small_kernels = ctypes.c_int64(CORE in SMALL_KERNEL_CORES)
binding.add_symbol("fastnn_small_kernels", ctypes.addressof(small_kernels))
# With them, whether products over the batch go in chunks of its rows (:func:`_inner_chunk`).
inner_chunks = ctypes.c_int64(1)
binding.add_symbol("fastnn_inner_chunks", ctypes.addressof(inner_chunks))
# With them, whether products A·B go in chunks of their inner size (:func:`_input_chunk`).
input_chunks = ctypes.c_int64(1)
binding.add_symbol("fastnn_input_chunks", ctypes.addressof(input_chunks))

# ?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every argument by pointer.
_GEMM = types.void(*([types.voidptr] * 13))
TRANSPOSE, NO_TRANSPOSE = ord("T"), ord("N")  # BLAS's flags, as compile-time constants
_sgemm = types.ExternalFunction("fastnn_sgemm", _GEMM)
_dgemm = types.ExternalFunction("fastnn_dgemm", _GEMM)

from ._jit import helper, kernel  # noqa: E402  (the symbols above must exist before any kernel loads)
from ._scalar import const, opaque  # noqa: E402
from ._stack import stack_empty  # noqa: E402


@helper
def _row_stride(X):
    """Elements between ``X``'s rows; raise unless its elements are contiguous within a row."""
    rows = X.strides[0] // X.itemsize
    if (X.shape[1] > 1 and X.strides[1] != X.itemsize) or (X.shape[0] > 1 and rows < X.shape[1]):
        raise ValueError("GEMM operands need contiguous, non-overlapping rows")
    return max(1, rows, X.shape[1])


@helper
def _gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """``C = alpha · op(A) · op(B) + beta · C`` (:func:`_gemm_in_blocks`), the flags passed on as
    run-time values and the operands as read-only arrays, so that one compiled GEMM serves
    every combination of flags, data and buffers."""
    _gemm_in_blocks(opaque(trans_a), opaque(trans_b), alpha, const(A), const(B), beta, C)


@kernel
def _gemm_in_blocks(trans_a, trans_b, alpha, A, B, beta, C):
    """:func:`_gemm_call`, in blocks of ``C``'s rows where OpenBLAS's small-matrix kernels take
    a block but not the whole product (:func:`_small_block`), and a float32 product ``Aᵀ·B`` or
    ``A·B`` in chunks of its inner size (:func:`_inner_chunk`). A kernel of its own, not inlined
    into its callers, so that the rule is compiled once, not again at each of an epoch's GEMMs
    (which made a cold first fit on the digits compile several seconds longer)."""
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    chunk = _inner_chunk(trans_a, trans_b, m, n, k, C.itemsize)
    if chunk == k:
        _gemm_blocks(trans_a, trans_b, alpha, A, B, beta, C, _small_block(trans_a, trans_b, m, n, k,
                                                                          C.itemsize))
    elif trans_a:  # Aᵀ·B over rows start:start + chunk, added to C: each chunk passes over all of C
        block = _small_block(trans_a, trans_b, m, n, chunk, C.itemsize)
        for start in range(0, k, chunk):
            _gemm_blocks(trans_a, trans_b, alpha, A[start:start + chunk], B[start:start + chunk],
                         beta if start == 0 else 1.0, C, block)
    else:  # A·B: a block of C takes its chunks in turn, while it is in the cache
        for i in range(0, m, SMALL_BLOCK_ROWS):
            for start in range(0, k, chunk):
                _gemm_call(False, False, alpha, A[i:i + SMALL_BLOCK_ROWS, start:start + chunk],
                           B[start:start + chunk], beta if start == 0 else 1.0, C[i:i + SMALL_BLOCK_ROWS])


@helper
def _gemm_blocks(trans_a, trans_b, alpha, A, B, beta, C, block):
    """:func:`_gemm` as one BLAS call per ``block`` rows of ``C``."""
    for i in range(0, C.shape[0], block):
        block_a = A[:, i:i + block] if trans_a else A[i:i + block]
        _gemm_call(trans_a, trans_b, alpha, block_a, B, beta, C[i:i + block])


@kernel
def _gemm_call(trans_a, trans_b, alpha, A, B, beta, C):
    """``C = alpha · op(A) · op(B) + beta · C``, ``op(X)`` being ``Xᵀ`` when ``trans_X``, for
    2-D arrays whose rows are contiguous (C order, or row and column slices of it).
    With ``beta = 0``, ``C``'s old values are not read (BLAS rule). Pass ``alpha`` and
    ``beta`` as floats, so that one compiled signature per dtype serves every call.

    BLAS is column-major, where a C-ordered array is its own transpose, so the
    call computes ``Cᵀ = op(B)ᵀ · op(A)ᵀ``: the operands swap places.
    """
    m, n = C.shape
    a_rows, k = (A.shape[1], A.shape[0]) if trans_a else A.shape
    b_rows, b_cols = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if a_rows != m or b_rows != k or b_cols != n:
        raise ValueError("GEMM operand shapes do not match")
    ints = stack_empty(6, np.int32)
    ints[0], ints[1], ints[2] = n, m, k  # M, N, K
    ints[3], ints[4], ints[5] = _row_stride(B), _row_stride(A), _row_stride(C)  # lda, ldb, ldc
    trans = stack_empty(2, np.uint8)
    trans[0], trans[1] = TRANSPOSE if trans_b else NO_TRANSPOSE, TRANSPOSE if trans_a else NO_TRANSPOSE
    scalars = stack_empty(2, C.dtype)
    scalars[0], scalars[1] = alpha, beta
    args = (trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
            scalars[0:].ctypes, B.ctypes, ints[3:].ctypes, A.ctypes, ints[4:].ctypes,
            scalars[1:].ctypes, C.ctypes, ints[5:].ctypes)
    if C.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)


@helper
def _inplace_gemm_update(A, dZ, W, alpha):
    """``W += alpha · dZᵀ · A`` for ``A`` (m, n_in), ``dZ`` (m, n_out), ``W`` (n_out, n_in).

    ``alpha`` goes to BLAS as a float64 (exact for a float32 step, which BLAS casts
    back): every call of ``_gemm`` then has float64 scalars, one signature per dtype.
    """
    _gemm(True, False, np.float64(alpha), dZ, A, 1.0, W)


def _run_time_switch(symbol):
    """An intrinsic that loads the int64 bound to ``symbol`` at run time (an external global,
    bound by name as the GEMMs are), so that cached kernels follow the switch."""
    @intrinsic
    def switch(typingctx):
        def codegen(context, builder, signature, args):
            module = builder.module
            flag = module.globals.get(symbol)
            if flag is None:
                flag = ir.GlobalVariable(module, ir.IntType(64), symbol)
                flag.linkage = "external"
            return builder.load(flag)
        return types.int64(), codegen
    return switch


# Whether the BLAS has OpenBLAS's AVX-512 small-matrix kernels (:data:`small_kernels`), and
# whether products over the batch go in chunks of its rows (:data:`inner_chunks`).
_small_kernels = _run_time_switch("fastnn_small_kernels")
_inner_chunks = _run_time_switch("fastnn_inner_chunks")
_input_chunks = _run_time_switch("fastnn_input_chunks")


@helper
def _inner_chunk(trans_a, trans_b, rows, cols, k, itemsize):
    """Rows of ``A`` and ``B`` per GEMM call of ``C = Aᵀ·B`` (``C`` ``rows × cols``, summed over
    ``k`` rows): :data:`INNER_CHUNK_ROWS` where the product is float32, OpenBLAS's small-matrix
    kernels are there and take ``C`` in blocks of :data:`SMALL_BLOCK_ROWS` rows at that ``k``,
    and either ``C`` takes at most :data:`MAX_CHUNKED_OUTPUT_BYTES` or the chunks are at most
    :data:`MAX_CHUNKS_OF_LARGE_OUTPUT`; else all ``k``. Each chunk's product is added to ``C``
    (``beta = 1`` after the first), so the sum over the rows rounds chunk by chunk, the same for
    any block of ``C``. Without
    chunks, above about 40 rows only 16- or 8-row blocks of ``C`` fit under the kernels' size
    limit, and from 256 rows (784 inputs) none: the product is packed whole. A worker's
    first-layer weight gradient (784 inputs, one thread; ``bench/test_bench_kernels.py``, group
    "weight gradients in chunks of rows", Cascade Lake Xeon, 2026-11-28, medians) ran
    1.07-1.26x faster in 32-row chunks than without for 128 units over 64 to 3,750 rows, and
    1.21-2.16x for 64 units; chunks of 16 or 64 rows were slower than 32 in every case. For 256
    units (``C`` 0.8 MB) they ran 1.40x and 1.30x faster over 64 and 128 rows, 0.89x as fast
    over 256 and 3,750. In float64 chunks ran 0.80-1.68x as fast, faster at 64 rows and slower
    at 3,750: not used."""
    if _small_kernels() == 0 or itemsize != 4 or trans_b:
        return k
    if not trans_a:
        return _input_chunk(rows, cols, k)
    if (_inner_chunks() == 0 or k <= INNER_CHUNK_ROWS or rows > SMALL_BLOCK_ROWS * MAX_SMALL_BLOCKS
            or (rows * cols * itemsize > MAX_CHUNKED_OUTPUT_BYTES
                and k > MAX_CHUNKS_OF_LARGE_OUTPUT * INNER_CHUNK_ROWS)
            or not _small_permitted(trans_a, trans_b, min(rows, SMALL_BLOCK_ROWS), cols, INNER_CHUNK_ROWS)):
        return k
    return INNER_CHUNK_ROWS


def small_input_blocks(cols, k):
    """Whether a float32 product ``C = A·B`` of many rows, ``cols`` columns and inner size ``k``
    runs in OpenBLAS's small-matrix kernels (with them and the switches on): in blocks of
    :data:`SMALL_BLOCK_ROWS` rows, whole or in at most :data:`MAX_INPUT_CHUNKS` chunks of ``k``
    (:func:`_input_chunk`). Plain Python, for the engines' choices."""
    return bool(small_kernels.value and input_chunks.value) and any(
        _small_permitted.py_func(False, False, SMALL_BLOCK_ROWS, cols, -(-k // n_chunks))
        for n_chunks in range(1, MAX_INPUT_CHUNKS + 1))


@helper
def _input_chunk(rows, cols, k):
    """Columns of ``A`` (rows of ``B``) per GEMM call of ``C = A·B`` (``C`` ``rows × cols``,
    inner size ``k``): where OpenBLAS's small-matrix kernels would not take ``C`` in blocks of
    :data:`SMALL_BLOCK_ROWS` rows at ``k`` but would at ``k`` cut in at most
    :data:`MAX_INPUT_CHUNKS` near-equal chunks, the largest such chunk; else all ``k``. Each 32-row
    block of ``C`` takes the chunks in turn (``beta = 1`` after the first), so it rounds the same
    in any block. The first layer's forward product reading ``Wᵀ`` (``X·(Wᵀ)``, 784 inputs,
    one thread; ``bench/test_bench_kernels.py``, group "first-layer forward reading W or Wᵀ",
    Cascade Lake Xeon, 2026-11-28, min of two runs of each shape): over a full batch's piece of
    3,750 rows 1.27-1.89x faster in chunks (64 units: 3.4-3.8 ms against 4.8-5.0; 128: 6.6-6.7
    against 8.6-12.5) than packed whole, which it is without them (more than 64 blocks of 8
    rows); over 64 to 128 rows as fast as in 8-row blocks (within 3%, in one process,
    alternating)."""
    if (_input_chunks() == 0 or rows < SMALL_BLOCK_ROWS
            or _small_permitted(False, False, SMALL_BLOCK_ROWS, cols, k)):
        return k
    for n_chunks in range(2, MAX_INPUT_CHUNKS + 1):
        chunk = -(-k // n_chunks)
        if _small_permitted(False, False, SMALL_BLOCK_ROWS, cols, chunk):
            return chunk
    return k


@helper
def _small_block(trans_a, trans_b, rows, cols, k, itemsize):
    """Rows of ``C`` (``rows × cols``; inner size ``k``; elements of ``itemsize`` bytes) per
    GEMM call: all of them, or, where the BLAS has OpenBLAS's AVX-512 small-matrix kernels and
    those kernels would take a block of :data:`SMALL_BLOCK_ROWS`, or half or a quarter as many
    rows (float64 with ``trans_a``: not a quarter, :data:`MIN_FLOAT64_TN_BLOCK_ROWS`), but not
    the whole product, the largest such block (at most :data:`MAX_SMALL_BLOCKS` of them).
    Those kernels read the operands in place instead of copying them into packed buffers
    first: they ran one worker's first-layer GEMMs at batch 32 to 128 1.07-1.98x faster in
    blocks than OpenBLAS ran them whole on an Emerald Rapids Xeon and 1.13-2.31x on a Cascade
    Lake one (float32; float64 on the Cascade Lake 0.84-2.21x) with every row of both operands
    on a cache line, as the engines allocate their buffers (:mod:`fastnn._aligned`), but up to
    1.7x slower than whole with both operands 16 bytes past one (``bench/test_bench_kernels.py``,
    group "first-layer GEMMs in blocks"). Even so the blocks do not depend on where the
    operands start: blocks round differently from the whole product, and results must not
    change with the address of a user's array (predictions for a copy of ``X``, a fit on rows
    as stored). In float64, a worker's weight update and gradient at batch 128 ran 1.85x and
    1.64x slower in 8-row blocks than whole on the Cascade Lake (group "8-row blocks"; the
    update 1.12x slower on the Emerald Rapids), hence :data:`MIN_FLOAT64_TN_BLOCK_ROWS`."""
    if _small_kernels() == 0 or _small_permitted(trans_a, trans_b, rows, cols, k):
        return max(rows, 1)
    block = SMALL_BLOCK_ROWS
    smallest = MIN_FLOAT64_TN_BLOCK_ROWS if trans_a and itemsize == 8 else SMALL_BLOCK_ROWS // 4
    while block >= smallest:
        if _small_permitted(trans_a, trans_b, block, cols, k) and rows <= block * MAX_SMALL_BLOCKS:
            return block
        block //= 2
    return max(rows, 1)


@helper
def _small_permitted(trans_a, trans_b, rows, cols, k):
    """Whether OpenBLAS takes ``C = op(A) · op(B)`` (``C`` ``rows × cols``, row-major: its
    product of ``M = cols``, ``N = rows`` with the flags swapped) with its small-matrix kernels."""
    if trans_a and trans_b:
        return False  # OpenBLAS's TT product has none
    if rows * cols * k > SMALL_GEMM_MNK:
        return False
    return rows * cols <= SMALL_GEMM_TN_MN or trans_a or not trans_b
