"""Scalar building blocks shared by the kernels: typed constants and activations.

Numba types a Python literal as float64, so ``0.01 * z`` on a float32 ``z``
would round differently from NumPy (which casts the literal to float32).
:func:`like` casts a constant to the dtype of ``x`` so that float32 kernels do
the same arithmetic as :mod:`fastnn.reference`.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, lower_builtin, type_callable

from ..reference import LEAKY_SLOPE

SIGMOID, TANH, RELU, LEAKY_RELU, IDENTITY = 0, 1, 2, 3, 4
# scikit-learn's "logistic" is the sigmoid.
ACTIVATION_CODES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU,
                    "identity": IDENTITY, "logistic": SIGMOID}


def like(x, value):
    """``value`` as a scalar of the dtype of ``x`` (an array or a scalar)."""
    return np.asarray(x).dtype.type(value)


# In compiled code ``like`` is a cast typed and lowered in place (Numba's low-level extension
# API): an ``@overload`` compiled a small function of its own for each pair of argument types,
# 10 of them, 0.3-0.8 s of a first fit's compiling (bench/compile_time.py's list of kernels).
@type_callable(like)
def _type_like(context):
    def typer(x, value):
        target = x.dtype if isinstance(x, types.Array) else x
        if isinstance(target, (types.Float, types.Integer)) and isinstance(value, types.Number):
            return target

    return typer


@lower_builtin(like, types.Any, types.Number)
def _lower_like(context, builder, signature, args):
    return context.cast(builder, args[1], signature.args[1], signature.return_type)


@njit(inline="always")
def activate(z, code):
    """``g(z)`` for the activation ``code``, as :data:`fastnn.reference.ACTIVATIONS` defines it."""
    if code == RELU:
        # Same as np.maximum(z, 0): NaN propagates, -0.0 becomes 0.
        return z if z > 0 or z != z else like(z, 0)
    if code == LEAKY_RELU:
        return z if z > 0 else like(z, LEAKY_SLOPE) * z
    if code == TANH:
        return np.tanh(z)
    if code == IDENTITY:
        return z
    e = np.exp(-abs(z))
    one = like(z, 1)
    return one / (one + e) if z >= 0 else e / (one + e)


@njit(inline="always")
def derivative_from_output(a, code):
    """``g'(z)`` computed from ``a = g(z)``: every supported ``g`` allows it.

    ReLU and Leaky ReLU: ``a > 0`` exactly when ``z > 0`` (ReLU'(0) = 0).
    Sigmoid: ``a (1 − a)``. Tanh: ``1 − a²``. Identity: 1.
    """
    one = like(a, 1)
    if code == IDENTITY:
        return one
    if code == RELU:
        return one if a > 0 else like(a, 0)
    if code == LEAKY_RELU:
        return one if a > 0 else like(a, LEAKY_SLOPE)
    if code == TANH:
        return one - a * a
    return a * (one - a)


@njit(inline="always")
def summed(grad, last, k):
    """Element ``k`` of ``grad + last``, or of ``grad`` where ``last`` is empty: the last
    addition of the pieces' gradients, made as an update reads them (the rounded sum a pass
    of its own would store), which saves that pass over the parameters (.rows._add_but_last)."""
    return grad[k] + last[k] if last.shape[0] > 0 else grad[k]


@intrinsic
def opaque(typingctx, value):
    """``value`` as a run-time value of its plain type, not a compile-time literal.

    Numba compiles a kernel once per literal value of a constant argument (``True``
    and ``False`` are two signatures); passing a constant flag through this makes
    every call site share one compiled signature, and halves what is compiled.
    """
    plain = types.unliteral(value)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], plain)

    return plain(value), codegen


@intrinsic
def const(typingctx, array):
    """``array`` typed read-only, as C's ``const``: the same array, no copy.

    A read-only array is a type of its own to Numba, so a kernel given the data (read-only,
    ``fastnn._aligned.read_only``) in one call and a buffer in another compiles twice; an
    operand passed through this is one type in every call (the GEMM's blocked kernel: 1
    signature compiled instead of 3, a cold first fit 21.5 s instead of 29.6 s,
    ``bench/compile_time.py``)."""
    if not isinstance(array, types.Array):
        return None
    typed = array.copy(readonly=True)

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, typed, args[0])

    return typed(array), codegen


@intrinsic
def magnitude_bits(typingctx, x):
    """The bits of ``|x|``, a float32 or float64, as a signed integer of its width: they order
    as the magnitudes do, with inf above every finite value and NaN above inf. So a largest
    magnitude can be kept as an integer maximum, which LLVM vectorizes, where a float maximum
    (strict order, NaN) kept an update loop from vectorizing."""
    width = x.bitwidth
    out = types.int32 if width == 32 else types.int64

    def codegen(context, builder, signature, args):
        magnitude = builder.call(builder.module.declare_intrinsic("llvm.fabs", [args[0].type]), [args[0]])
        return builder.bitcast(magnitude, ir.IntType(width))

    return out(x), codegen
