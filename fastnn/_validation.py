"""Input and hyper-parameter validation, in one place for every public entry point.

Each check names the argument, what was expected and what came.
"""

import numbers

import numpy as np

from .reference import ACTIVATIONS, INIT_GAINS

ENGINES = ("fast", "reference")
DTYPES = ("float32", "float64")
# Small batches learn most per epoch; 32 is the common default for SGD.
AUTO_BATCH = 32


def _fail(name, expected, value):
    raise ValueError(f"{name} must be {expected}; got {value!r}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name, value):
    if not (_is_int(value) and value >= 1):
        _fail(name, "an int >= 1", value)
    return int(value)


def one_of(name, value, options):
    if not (isinstance(value, str) and value in options):
        _fail(name, f"one of {', '.join(map(repr, options))}", value)
    return value


def hidden_layer_sizes(value):
    sizes = (value,) if _is_int(value) else value
    try:
        sizes = tuple(sizes)
    except TypeError:
        _fail("hidden_layer_sizes", "an int or a non-empty sequence of ints >= 1", value)
    if not sizes or not all(_is_int(s) and s >= 1 for s in sizes):
        _fail("hidden_layer_sizes", "an int or a non-empty sequence of ints >= 1", value)
    return tuple(int(s) for s in sizes)


def learning_rate(value):
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and np.isfinite(value) and value > 0):
        _fail("learning_rate", "a finite number > 0", value)
    return float(value)


def dtype_name(value):
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name not in DTYPES:
        _fail("dtype", "'float32' or 'float64'", value)
    return name


def init_name(init, activation):
    """``None`` picks Kaiming for the ReLU family, Xavier otherwise."""
    if init is None:
        return "kaiming" if activation in ("relu", "leaky_relu") else "xavier"
    return one_of("init", init, tuple(INIT_GAINS))


def batch_size(value, n_samples):
    """``None``: the full batch; ``"auto"``: ``min(32, n_samples)``."""
    if value is None:
        return n_samples
    if isinstance(value, str) and value == "auto":
        return min(AUTO_BATCH, n_samples)
    if not (_is_int(value) and 1 <= value <= n_samples):
        _fail("batch_size", f"None, 'auto' or an int from 1 to n_samples={n_samples}", value)
    return int(value)


def optional_positive_int(name, value):
    return None if value is None else positive_int(name, value)


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, "True or False", value)
    return bool(value)


def check_params(est):
    """Validate every hyper-parameter of an :class:`~fastnn.MLPClassifier` but ``batch_size``
    (which needs ``n_samples``); return the resolved values as a dict."""
    activation = one_of("activation", est.activation, tuple(ACTIVATIONS))
    return {
        "hidden_layer_sizes": hidden_layer_sizes(est.hidden_layer_sizes),
        "activation": activation,
        "init": init_name(est.init, activation),
        "learning_rate": learning_rate(est.learning_rate),
        "epochs": positive_int("epochs", est.epochs),
        "shuffle": flag("shuffle", est.shuffle),
        "engine": one_of("engine", est.engine, ENGINES),
        "dtype": dtype_name(est.dtype),
        "n_threads": optional_positive_int("n_threads", est.n_threads),
        "warm_start": flag("warm_start", est.warm_start),
        "track_gradients": flag("track_gradients", est.track_gradients),
    }


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
