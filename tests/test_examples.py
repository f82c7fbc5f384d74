"""The examples run as a user would run them, on small MNIST-format files made here."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .test_datasets import write_mnist

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                            capture_output=True, text=True, check=True)
    return result.stdout


def test_mnist_folder(tmp_path):
    write_mnist(tmp_path, n_train=200, n_test=50)
    out = run("mnist_folder.py", tmp_path, "--epochs", "2")
    assert "saved, loaded, predicted" in out
    same = float(re.search(r"same label on ([\d.]+)%", out).group(1))
    assert same == 100.0


def test_classic_tutorial_on_idx_and_csv(tmp_path):
    parts = write_mnist(tmp_path, n_train=100, n_test=30)
    out = run("classic_tutorial.py", tmp_path, "--epochs", "20")
    assert out.count("epoch") == 10 and "test accuracy" in out
    rows = np.column_stack([parts["train_labels"], parts["train_images"].reshape(100, -1)])
    np.savetxt(tmp_path / "train.csv", rows, fmt="%d", delimiter=",",
               header="label," + ",".join(f"pixel{k}" for k in range(784)), comments="")
    assert "final training accuracy" in run("classic_tutorial.py", "--csv", tmp_path / "train.csv",
                                            "--epochs", "3")


def test_vanishing_gradients(tmp_path):
    pytest.importorskip("matplotlib")
    out = run("vanishing_gradients.py", "--out", tmp_path / "g.png", "--epochs", "2")
    ratios = dict(re.findall(r"(\w+): first epoch .*\(ratio (\d+)\)", out))
    assert int(ratios["logistic"]) > 100 and int(ratios["relu"]) < 10
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_strategies_prints_scikit_learns_numbers():
    """scikit-learn's strategy comparison, the import swapped: every score and loss printed the same."""
    ours = run("compare_strategies.py")
    theirs = run("compare_strategies.py", "--implementation", "sklearn")
    assert ours.count("training set score") == 28
    assert ours == theirs
