"""Small arrays on the stack, so that no kernel allocates from the heap.

The kernels are compiled without Numba's reference counting (:mod:`._jit`): every array
they see is owned by their Python caller for the call's duration, so the atomic
increments and decrements of its count that each view would otherwise cost are left
out. Nor can such code allocate an array with ``np.empty``. :func:`stack_empty` gives
a kernel the few scratch elements it needs (BLAS's arguments, a block of partial sums)
on its own stack frame instead: free, and gone when the kernel returns, so it must not
be returned or kept.
"""

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


@intrinsic(prefer_literal=True)
def stack_empty(typingctx, size, dtype):
    """An uninitialised 1-D array of ``size`` (a compile-time constant) elements of ``dtype``
    (a NumPy scalar type, or an array's ``dtype``) in the calling kernel's stack frame."""
    if not isinstance(size, types.IntegerLiteral) or size.literal_value < 1:
        raise TypingError("stack_empty needs a positive constant size")
    if isinstance(dtype, types.NumberClass):
        element = dtype.instance_type
    elif isinstance(dtype, types.DType):
        element = dtype.dtype
    else:
        raise TypingError("stack_empty needs a NumPy scalar type or a dtype")
    array_type = types.Array(element, 1, "C")

    def codegen(context, builder, signature, args):
        n = size.literal_value
        data_type = context.get_data_type(element)
        # In the entry block: one slot per call of the kernel, however often this line runs.
        data = cgutils.alloca_once(builder, data_type, size=n)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(data_type))
        array = context.make_array(array_type)(context, builder)
        populate_array(array, data=data, shape=[context.get_constant(types.intp, n)], strides=[itemsize],
                       itemsize=itemsize, meminfo=None)
        return array._getvalue()

    return array_type(size, dtype), codegen
