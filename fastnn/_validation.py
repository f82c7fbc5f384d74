"""Input and hyper-parameter validation, in one place for every public entry point.

Each check names the argument, what was expected and what came.
"""

import numbers

import numpy as np

ENGINES = ("fast", "reference")
DTYPES = ("float32", "float64")


def _fail(name, expected, value):
    raise ValueError(f"{name} must be {expected}; got {value!r}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def hidden_layer_sizes(value):
    sizes = (value,) if _is_int(value) else value
    try:
        sizes = tuple(sizes)
    except TypeError:
        _fail("hidden_layer_sizes", "an int or a non-empty sequence of ints >= 1", value)
    if not sizes or not all(_is_int(s) and s >= 1 for s in sizes):
        _fail("hidden_layer_sizes", "an int or a non-empty sequence of ints >= 1", value)
    return tuple(int(s) for s in sizes)


def dtype_name(value):
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name not in DTYPES:
        _fail("dtype", "'float32' or 'float64'", value)
    return name


def reject_text(X, name="X"):
    """Refuse strings, bytes, dates and records, which NumPy would otherwise parse or cast.

    Everything else goes on to scikit-learn's ``check_array``, which converts
    integers, booleans and float16, refuses complex numbers, NaN and inf, and
    copies only what is not already a C-ordered array of the target dtype (a
    read-only or memory-mapped array is used as it is).
    """
    if not hasattr(X, "dtype"):
        try:
            X = np.asarray(X)
        except ValueError:
            return  # ragged: check_array says so
    if X.dtype.kind in "USMmV" or (X.dtype.kind == "O" and any(
            isinstance(v, (str, bytes)) for v in np.asarray(X).flat)):
        raise ValueError(f"{name} must hold numbers; got an array of dtype {X.dtype} "
                         "holding text, dates or records")
