"""fastnn: a small, fast, exact multilayer perceptron.

``MLPClassifier(engine="fast")`` trains with compiled Numba kernels;
``engine="reference"`` with plain NumPy that reads like the math. They agree to
the bounds stated in the README and checked by :mod:`fastnn.testing`.
"""

import importlib

from ._diagnostics import TrainingFailedWarning
from ._trainer import TrainingDivergedError

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "MLPRegressor", "TrainingDivergedError", "TrainingFailedWarning", "load",
           "__version__"]

# These bring in scikit-learn, SciPy and Numba, which take seconds to import: only on first use,
# so that `import fastnn` and `fastnn --help` stay quick.
_LAZY = {"MLPClassifier": ".estimator", "MLPRegressor": ".estimator", "load": ".estimator"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted([*globals(), *_LAZY])
