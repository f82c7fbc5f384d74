"""Denormal (subnormal) numbers flushed to zero while a kernel runs, on x86-64.

Arithmetic on subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) takes a
slow microcode path on x86 processors: an Adam step over gradients near 1e-19, whose
squares are subnormal in float32, ran 30 times slower than over ordinary values (10.5 ms
against 0.32 ms for 101,770 parameters; ``bench/test_bench_kernels.py``, group "subnormal
gradients"). Confident softmax outputs make such gradients common late in training.
:func:`flush_subnormals` sets the FTZ and DAZ bits of the calling thread's MXCSR
register (results and inputs below the normal range count as zero), as XLA does on CPU,
and returns the previous value for :func:`restore_fpu`. Only values below the normal
range change: a difference of at most 1.2e-38 (float32) or 2.2e-308 (float64) on any
number. On other processors both are no-ops.
"""

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in ("x86_64", "amd64")
# MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
FTZ_DAZ = (1 << 15) | (1 << 6)


def _mxcsr_call(builder, name, pointer):
    signature = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, signature, name)
    builder.call(fn, [builder.bitcast(pointer, ir.IntType(8).as_pointer())])


@intrinsic
def _read_mxcsr(typingctx):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.int64), codegen


if X86:
    @njit(inline="always")
    def flush_subnormals():
        """Set FTZ and DAZ for this thread; return the previous MXCSR value."""
        old = _read_mxcsr()
        _write_mxcsr(old | FTZ_DAZ)
        return old

    @njit(inline="always")
    def restore_fpu(old):
        """Put back the MXCSR value :func:`flush_subnormals` returned."""
        _write_mxcsr(old)
else:
    @njit(inline="always")
    def flush_subnormals():
        return 0

    @njit(inline="always")
    def restore_fpu(old):
        pass
