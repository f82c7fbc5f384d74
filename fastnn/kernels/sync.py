"""A spin barrier for workers that train one epoch side by side (:mod:`.split`).

Numba has no atomics on the CPU, so two LLVM instructions are emitted directly:
an atomic add and an atomic load, both sequentially consistent, which also
order the plain loads and stores around them (what a worker wrote before it
arrives is seen by every worker that leaves). The counter only grows: the
``k``-th barrier of ``n`` workers waits for ``k·n`` arrivals, so nothing is reset.

A waiting worker spins (a batch at batch size 32 takes tens of microseconds,
far less than a sleep and wake-up), then yields its core after
:data:`SPINS_BEFORE_YIELD` checks, so that a worker without a core of its own
still gets to run.
"""

import ctypes
import ctypes.util

from llvmlite import binding
from numba import types
from numba.extending import intrinsic

COUNT, ABORT, CLAIM = 0, 1, 2  # the slots of the int64 array ``sync`` (CLAIM: pieces taken, :mod:`.rows`)
SPINS_BEFORE_YIELD = 1000


def _yield_address():
    """Address of the C function that gives up the core: ``sched_yield`` or ``SwitchToThread``."""
    for library, name in ((ctypes.util.find_library("c"), "sched_yield"), ("kernel32", "SwitchToThread")):
        try:
            return ctypes.cast(getattr(ctypes.CDLL(library), name), ctypes.c_void_p).value
        except (OSError, AttributeError, TypeError):
            continue
    return None


_address = _yield_address()
AVAILABLE = _address is not None  # without it, no split epoch (fastnn.fast falls back to one worker)
if AVAILABLE:
    binding.add_symbol("fastnn_yield", _address)
_yield_core = types.ExternalFunction("fastnn_yield", types.int32())

from ._jit import helper  # noqa: E402  (the symbol above must exist before a kernel loads)


@intrinsic
def _atomic_add(typingctx, sync, slot, value):
    """``sync[slot] += value`` atomically; return the old value."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = builder.gep(array.data, [args[1]])
        return builder.atomic_rmw("add", pointer, args[2], "seq_cst")
    return types.int64(sync, types.intp, types.int64), codegen


@intrinsic
def _atomic_load(typingctx, sync, slot):
    """``sync[slot]``, read atomically."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = builder.gep(array.data, [args[1]])
        return builder.load_atomic(pointer, "seq_cst", 8)
    return types.int64(sync, types.intp), codegen


@helper
def _arrive_and_wait(sync, target):
    """Count this worker in, then wait until ``sync[COUNT]`` reaches ``target``.

    Return False (at once) if another worker has set ``sync[ABORT]``: it failed
    and will never arrive.
    """
    _atomic_add(sync, COUNT, 1)
    spins = 0
    while _atomic_load(sync, COUNT) < target:
        if _atomic_load(sync, ABORT) != 0:
            return False
        spins += 1
        if spins > SPINS_BEFORE_YIELD:
            _yield_core()
    return True


@helper
def _claim(sync, taken, n_pieces):
    """Take the next piece of a batch of ``n_pieces``, the batches before it having used ``taken``
    tickets of ``sync[CLAIM]``: the piece's number, or -1 when none is left."""
    p = _atomic_add(sync, CLAIM, 1) - taken
    return p if p < n_pieces else -1


@helper
def _stall(sync, spins):
    """Spin ``spins`` times (atomic loads, which the compiler cannot drop): a worker made slow
    on purpose, so that a test can show a barrier holds the others back whatever the timing."""
    seen = 0
    for _ in range(spins):
        seen += _atomic_load(sync, COUNT)
    return seen
