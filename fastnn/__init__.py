"""fastnn: a small, fast, exact multilayer perceptron.

``MLPClassifier(engine="fast")`` trains with compiled Numba kernels;
``engine="reference"`` with plain NumPy that reads like the math. They agree to
the bounds stated in the README and checked by :mod:`fastnn.testing`.
"""

from ._diagnostics import TrainingFailedWarning
from ._persist import load
from ._trainer import TrainingDivergedError
from .estimator import MLPClassifier

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "TrainingDivergedError", "TrainingFailedWarning", "load", "__version__"]
