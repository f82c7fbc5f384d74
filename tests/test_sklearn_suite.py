"""scikit-learn's own test module for its MLPs, run against fastnn's estimators.

The module ships inside the installed scikit-learn (``sklearn/neural_network/tests/test_mlp.py``);
it is run as it is, in a subprocess, with ``sklearn.neural_network.MLPClassifier`` and
``MLPRegressor`` replaced by fastnn's before it is imported (``tests/sklearn_swap.py``).
Every test must pass; a skip is accepted only for the reasons listed in ``ALLOWED_SKIPS``
(an optional package that is not installed here).
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sklearn

ROOT = Path(__file__).resolve().parents[1]
SUITE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
# Substrings of the skip messages that are accepted: packages the suite can use but does not need.
ALLOWED_SKIPS = ("pandas", "polars", "pyarrow")


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    if not SUITE.exists():
        pytest.skip(f"scikit-learn {sklearn.__version__} does not ship {SUITE}")
    report = tmp_path_factory.mktemp("sklearn") / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.sklearn_swap", "-p", "no:cacheprovider", "-q",
         f"--junitxml={report}", "--rootdir", str(report.parent), str(SUITE)],
        capture_output=True, text=True, env=env, cwd=report.parent, timeout=1200)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    cases = ET.parse(report).getroot().iter("testcase")
    return run, {f"{case.get('name')}": [child for child in case] for case in cases}


def test_the_swap_reaches_the_suite():
    """The plugin puts fastnn's classes where the suite imports them from."""
    run = subprocess.run(
        [sys.executable, "-c", "import tests.sklearn_swap as s; s.pytest_configure(None);"
         "from sklearn.neural_network import MLPClassifier, MLPRegressor;"
         "print(MLPClassifier.__module__, MLPRegressor.__module__)"],
        capture_output=True, text=True, cwd=ROOT)
    assert run.stdout.split() == ["fastnn.estimator", "fastnn.estimator"], run.stderr


def test_every_sklearn_mlp_test_passes(suite_results):
    run, cases = suite_results
    assert len(cases) >= 59, f"only {len(cases)} tests ran:\n{run.stdout[-3000:]}"
    failed = {name: outcome[0].get("message", "")[:300] for name, outcome in cases.items()
              if outcome and outcome[0].tag in ("failure", "error")}
    assert not failed, failed
    skipped = {name: outcome[0].get("message", "") for name, outcome in cases.items()
               if outcome and outcome[0].tag == "skipped"}
    unexplained = {name: why for name, why in skipped.items() if not any(s in why for s in ALLOWED_SKIPS)}
    assert not unexplained, unexplained
