"""Starting up is cheap: scikit-learn, SciPy and Numba load only when a model is built or trained.

Counted by module, not by seconds: `import fastnn` and `fastnn --help` took 2 s and 3.9 s
mostly importing these.
"""

import subprocess
import sys

import pytest

HEAVY = ("sklearn", "scipy", "numba")


def heavy_modules_after(code):
    """The heavy packages in sys.modules after running ``code`` in a new interpreter."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[-1]


@pytest.mark.parametrize("code", [
    "import fastnn",
    "import fastnn; fastnn.TrainingDivergedError, fastnn.TrainingFailedWarning",
    "from fastnn.cli import build_parser; build_parser()",
    "from fastnn.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from fastnn.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass",
    "import fastnn.datasets",
], ids=["import", "exceptions", "parser", "--help", "train --help", "datasets"])
def test_no_heavy_imports(code):
    assert heavy_modules_after(code) == "[]"


def test_the_model_still_loads_on_first_use():
    assert heavy_modules_after("from fastnn import MLPClassifier, load; MLPClassifier().fit") == str(
        sorted(HEAVY))
    assert heavy_modules_after("import fastnn; fastnn.MLPClassifier") == str(sorted(HEAVY))
