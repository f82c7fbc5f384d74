"""The fastnn command line, run in-process and (once) as the installed console script."""

import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastnn
import fastnn.estimator
import fastnn.fast
from fastnn import datasets
from fastnn.cli import StopAfterEpoch, main

from .test_datasets import write_iris, write_mnist

# What the command prints before the first fit of a process that meets a cold kernel cache.
COMPILE_NOTICE = "fastnn: compiling the fast engine for"

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def held_out_accuracy(out):
    return float(out.split("held-out accuracy: ")[1].split()[0])


def test_train_on_embedded_digits(capsys):
    assert main(["train", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert held_out_accuracy(out) >= 0.93
    assert "(360 samples)" in out and "total time:" in out


def test_train_builds_the_tutorials_model():
    """The defaults: plain SGD (no momentum, no L2 term) at 0.1, batches of 32, exactly 10 epochs."""
    from fastnn.cli import build_parser, make_model

    args = build_parser().parse_args(["train"])
    params = make_model(args, 1437).get_params()
    assert {key: params[key] for key in ("hidden_layer_sizes", "activation", "init", "solver",
                                         "learning_rate_init", "momentum", "alpha", "batch_size", "max_iter",
                                         "n_iter_no_change", "dtype", "random_state", "engine")} == {
        "hidden_layer_sizes": (128,), "activation": "relu", "init": "kaiming", "solver": "sgd",
        "learning_rate_init": 0.1, "momentum": 0.0, "alpha": 0.0, "batch_size": 32, "max_iter": 10,
        "n_iter_no_change": float("inf"), "dtype": "float32", "random_state": 0, "engine": "fast"}
    args = build_parser().parse_args(["train", "--batch-size", "full", "--activation", "tanh", "--init",
                                      "glorot", "--solver", "adam", "--momentum", "0.5", "--alpha", "1e-3"])
    params = make_model(args, 1437).get_params()
    assert (params["batch_size"], params["init"], params["solver"], params["momentum"], params["alpha"]) == (
        1437, None, "adam", 0.5, 1e-3)
    small = make_model(build_parser().parse_args(["train", "--activation", "logistic"]), 10)
    assert (small.init, small.batch_size) == ("xavier", 10)


def test_train_prints_each_epoch(capsys):
    assert main(["train", "--epochs", "3", "--hidden", "16,8", "--batch-size", "full"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert [l.split()[1] for l in lines] == ["1/3", "2/3", "3/3"]
    assert all(l.split()[2] == "loss" and l.endswith(" s") and "accuracy" not in l for l in lines)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_train_runs_exactly_the_epochs_asked_for(solver, capsys):
    """No early stop, and no ConvergenceWarning for stopping where asked."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["train", "--epochs", "12", "--hidden", "8", "--lr", "0.001", "--solver", solver]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 12 and lines[-1].split()[1] == "12/12"


def test_train_with_lbfgs(capsys):
    assert main(["train", "--quiet", "--solver", "lbfgs", "--epochs", "50", "--hidden", "16"]) == 0
    assert held_out_accuracy(capsys.readouterr().out) >= 0.9


def test_saved_model_predicts_the_same_in_python(tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert main(["train", "--quiet", "--epochs", "2", "--save", str(path), "--seed", "4"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(path)]) == 0
    captured = capsys.readouterr()
    printed = np.array(captured.out.split(), dtype=int)
    X, y = datasets.load_digits()
    np.testing.assert_array_equal(printed, fastnn.load(path).predict(X))
    assert captured.err.startswith("accuracy: ")


@pytest.mark.parametrize("test_size", ["0.2", "0.3"])
def test_predict_scores_the_rows_that_train_held_out(tmp_path, capsys, test_size):
    """Same split as train: the accuracy is train's held-out accuracy, not one over training rows."""
    path = tmp_path / "model.npz"
    assert main(["train", "--quiet", "--seed", "4", "--test-size", test_size, "--save", str(path)]) == 0
    trained = capsys.readouterr().out
    assert main(["predict", "--model", str(path), "--test-size", test_size]) == 0
    err = capsys.readouterr().err
    n_test = int(trained.split("held-out accuracy: ")[1].split()[1].strip("("))
    assert err.startswith(f"accuracy: {held_out_accuracy(trained):.4f} on the {n_test} rows held out "
                          f"from training (--test-size {test_size}, --seed 4); ")


def test_predict_scores_every_row_when_asked_or_when_the_split_is_unknown(tmp_path, capsys):
    X, y = datasets.load_digits()
    model = fastnn.MLPClassifier(max_iter=1).fit(X[:500], y[:500])  # no random_state
    model.save(tmp_path / "m.npz")
    for extra in ([], ["--test-size", "0"]):
        assert main(["predict", "--model", str(tmp_path / "m.npz"), *extra]) == 0
        err = capsys.readouterr().err
        assert err.startswith(f"accuracy: {model.score(X, y):.4f} on all 1797 rows")
    assert "the model file records no seed" in err or "--test-size 0" in err


def test_train_and_predict_on_mnist_files(tmp_path, capsys):
    write_mnist(tmp_path, n_train=60, n_test=20)
    assert main(["train", "--quiet", "--data", f"mnist:{tmp_path}", "--epochs", "1",
                 "--save", str(tmp_path / "m.npz")]) == 0
    assert "(20 samples)" in capsys.readouterr().out
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--data", f"mnist:{tmp_path}"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 20
    assert " on the 20 rows of the data's own test set" in captured.err


def test_missing_mnist_files_speak_of_the_command_line(tmp_path, capsys):
    assert main(["train", "--quiet", "--data", f"mnist:{tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "lacks the MNIST files" in err and "add --download to fetch them" in err
    assert "download=True" not in err


def test_download_flag_fetches_missing_files(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise datasets.urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    assert main(["train", "--quiet", "--data", f"mnist:{tmp_path}", "--download"]) == 1
    assert "could not download MNIST" in capsys.readouterr().err


def test_train_on_csv_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (50, 6)), np.arange(50) % 2
    np.savetxt(tmp_path / "d.csv", np.column_stack([y, X]), delimiter=",", fmt="%d")
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for spec in (f"csv:{tmp_path / 'd.csv'}", f"npz:{tmp_path / 'd.npz'}"):
        assert main(["train", "--quiet", "--data", spec, "--epochs", "1", "--test-size", "0.2",
                     "--scale-pixels"]) == 0
        out = capsys.readouterr().out
        assert "(10 samples)" in out and "scaling: divided by 255 (--scale-pixels)" in out


@pytest.mark.parametrize("name", ["iris.csv", "iris.npz"])
def test_train_keeps_csv_and_npz_features_as_they_are(tmp_path, capsys, name):
    """Iris's lengths (0.1 to 7.9 cm) divided by 255 left the default model at 33-67%. 100 epochs: 10
    epochs of 120 samples are 40 steps, after which the held-out accuracy varied from 0.8 to 1.0 with
    the seed; after 100 it was at least 0.93 for seeds 0 to 9."""
    write_iris(tmp_path)
    assert main(["train", "--quiet", "--data", f"{name[-3:]}:{tmp_path / name}", "--epochs", "100"]) == 0
    out = capsys.readouterr().out
    assert "scaling: none (--scale-pixels divides 8-bit pixels by 255)" in out
    assert held_out_accuracy(out) >= 0.9


def test_plot_writes_a_png_with_the_held_out_curve(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastnn import plot

    figures = []
    learning_curve = plot.learning_curve
    monkeypatch.setattr(plot, "learning_curve", lambda *a, **k: figures.append(learning_curve(*a, **k)))
    path = tmp_path / "curve.png"
    assert main(["train", "--epochs", "3", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [held_out] = figures[0].axes[1].lines
    assert len(held_out.get_ydata()) == 3
    out = capsys.readouterr().out
    assert round(held_out.get_ydata()[-1], 4) == held_out_accuracy(out)
    lines = [l for l in out.splitlines() if l.startswith("epoch")]
    assert [float(l.split("held-out accuracy ")[1].split()[0]) for l in lines] == [
        round(a, 4) for a in held_out.get_ydata()]


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "--lr: The 'learning_rate_init' parameter of MLPClassifier must be a float in "
                              "the range (0.0, inf). Got -1.0 instead."),
    (["train", "--batch-size", "5000"],
     "--batch-size 5000: there are 1437 training samples; give at most 1437, or 'full'"),
    (["train", "--epochs", "0"], "--epochs: The 'max_iter' parameter of MLPClassifier must be an int"),
    (["train", "--hidden", "0"], "--hidden: hidden_layer_sizes must be > 0, got [0]."),
    (["train", "--momentum", "2"], "--momentum: The 'momentum' parameter"),
    (["train", "--alpha", "-1"], "--alpha: The 'alpha' parameter"),
    (["train", "--data", "mnist:/nonexistent"], "lacks the MNIST files"),
    (["train", "--data", "imagenet"], "--data must be"),
    (["train", "--lr", "1e38", "--activation", "tanh"], "Training diverged in epoch 1"),
    # Saturated, its loss finite: the failure check names the rate.
    (["train", "--lr", "1e3"], "training failed: the network saturated"),
    (["train", "--lr", "1e3", "--epochs", "2"], "training failed: the network saturated"),
    # The issue's --lr 1e6: the weights' squares overflow float32, the L2 term is NaN (as scikit-learn's).
    (["train", "--lr", "1e6"], "Try a learning_rate_init below 1000000.0"),
    (["predict", "--model", "/nonexistent.npz"], "No such file"),
])
def test_bad_input_is_one_line_and_exit_1(argv, message, capsys):
    assert main(argv + (["--quiet"] if argv[0] == "train" else [])) == 1
    err = capsys.readouterr().err
    # The first fit of a process with a cold Numba cache says that it compiles, before the error.
    error = [line for line in err.splitlines() if not line.startswith(COMPILE_NOTICE)]
    assert len(error) == 1 and error[0].startswith("fastnn: error: ") and message in error[0]
    assert "Traceback" not in err


def write_bad_files(folder):
    (folder / "ragged.csv").write_text("3,0,255\n7,255\n")
    (folder / "text.csv").write_text("3,0,255\n7,x,1\n")
    np.savez(folder / "pickled.npz", X=np.array([{}, {}], dtype=object), y=[1, 2])
    (folder / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    model = fastnn.MLPClassifier(max_iter=1, hidden_layer_sizes=(4,)).fit(np.eye(4), [0, 1, 0, 1])
    model.save(folder / "model.npz")
    fastnn.MLPRegressor(max_iter=1, hidden_layer_sizes=(4,)).fit(np.eye(4), [0, 1, 0, 1]).save(
        folder / "regressor.npz")
    (folder / "cut.npz").write_bytes((folder / "model.npz").read_bytes()[:-100])


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "csv:{}/ragged.csv"], "ragged.csv: line 2 has 2 cells where the first row has 3"),
    (["train", "--data", "csv:{}/text.csv"], "text.csv: line 2, column 2: 'x' is not a number"),
    (["train", "--data", "npz:{}/pickled.npz"], "pickled.npz is not a readable .npz file: array 'X' holds "
                                                "Python objects"),
    (["predict", "--model", "{}/junk.npz"], "junk.npz is not a fastnn model file: it is not a zip archive"),
    (["predict", "--model", "{}/cut.npz"], "cut.npz is not a fastnn model file: it is not a zip archive, "
                                           "or a truncated or damaged one"),
    (["predict", "--model", "{}/ragged.csv"], "ragged.csv is not a fastnn model file"),
    (["predict", "--model", "{}/regressor.npz"], "regressor.npz holds an MLPRegressor; fastnn predict prints "
                                                 "the labels of a classifier"),
])
def test_bad_files_are_named_in_the_users_terms(tmp_path, capsys, argv, message):
    write_bad_files(tmp_path)
    assert main([part.format(tmp_path) for part in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastnn: error: {tmp_path}/") and message in err and err.count("\n") == 1
    for leak in ("usecols", "allow_pickle", "BadZipFile", "Traceback"):
        assert leak not in err


@pytest.mark.parametrize("argv", [["train", "--hidden", "a,b"], ["train", "--batch-size", "x"],
                                  ["train", "--test-size", "1.5"], ["train", "--engine", "gpu"],
                                  ["train", "--solver", "rprop"], ["train", "--activation", "sigmoid"], []])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: fastnn" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--data", "--hidden", "--activation", "--init", "--lr", "--batch-size", "--epochs",
                   "--engine", "--dtype", "--seed", "--test-size", "--save", "--plot", "--threads",
                   "--quiet", "--solver", "--momentum", "--alpha"):
        assert option in out


def test_console_script_and_module_run():
    script = shutil.which("fastnn")
    commands = [[sys.executable, "-m", "fastnn", "train", "--quiet", "--epochs", "1"]]
    if script:
        commands.append([script, "train", "--quiet", "--epochs", "1"])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "held-out accuracy:" in result.stdout


@pytest.fixture
def no_training(monkeypatch):
    """Any fit fails the test: the outputs must be refused before training starts."""
    def fit(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(fastnn.estimator.MLPClassifier, "fit", fit)


@pytest.mark.parametrize("option, path, message", [
    ("--save", "/no/such/dir/m.npz", "--save /no/such/dir/m.npz: the folder /no/such/dir does not exist"),
    ("--plot", "/no/such/dir/c.png", "--plot /no/such/dir/c.png: the folder /no/such/dir does not exist"),
    ("--save", ".", "--save .: that is a folder; give a file name"),
    ("--save", "model", "--save model: the file name must end in .npz"),
])
def test_outputs_are_checked_before_training(no_training, option, path, message, capsys):
    assert main(["train", "--quiet", "--epochs", "1000", option, path]) == 1
    assert capsys.readouterr().err == f"fastnn: error: {message}\n"


@pytest.fixture
def unwritable_folder(tmp_path):
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        yield tmp_path
        tmp_path.chmod(0o700)
    elif os.path.isdir("/sys"):
        yield Path("/sys")  # sysfs takes no new files, not even from root
    else:
        pytest.skip("root may write to any folder")


def test_an_unwritable_folder_is_refused_before_training(no_training, unwritable_folder, capsys):
    assert main(["train", "--quiet", "--save", str(unwritable_folder / "m.npz")]) == 1
    assert f"cannot write to the folder {unwritable_folder} (Permission denied)" in capsys.readouterr().err


def test_plot_without_matplotlib_is_refused_before_training(no_training, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert main(["train", "--quiet", "--plot", "c.png"]) == 1
    assert capsys.readouterr().err == 'fastnn: error: --plot needs matplotlib: pip install "fastnn[plot]"\n'


def test_ctrl_c_stops_after_the_epoch_and_saves_the_model(tmp_path):
    """A real SIGINT, sent once the first epoch is reported."""
    path = tmp_path / "m.npz"
    command = [sys.executable, "-u", "-m", "fastnn", "train", "--epochs", "100000", "--save", str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        lines = iter(process.stdout.readline, "")
        next(line for line in lines if line.startswith("epoch"))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "stopping after this epoch" in err
    epochs = fastnn.load(path).n_iter_
    assert 1 <= epochs < 100000
    assert f"interrupted after epoch {epochs} of 100000" in out
    assert f"model trained so far ({epochs} epochs) saved to {path}" in out
    assert "held-out accuracy:" in out


def test_second_ctrl_c_stops_at_once_and_saves_nothing(monkeypatch, tmp_path, capsys):
    stop = StopAfterEpoch()
    stop(signal.SIGINT, None)
    assert stop.requested
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT, None)
    assert "stopping after this epoch" in capsys.readouterr().err

    def interrupted(*args, **kwargs):  # what the second Ctrl-C raises inside fit
        raise KeyboardInterrupt

    monkeypatch.setattr(fastnn.estimator.MLPClassifier, "fit", interrupted)
    assert main(["train", "--quiet", "--save", str(tmp_path / "m.npz")]) == 130
    assert capsys.readouterr().err == "fastnn: interrupted; nothing saved\n"
    assert not (tmp_path / "m.npz").exists()


def test_a_cold_kernel_cache_is_announced(monkeypatch, capsys):
    """The first training run on a new machine compiles the fast engine for seconds: the command
    says so once, on stderr; a run that loads the compiled code does not. Whether the cache is
    cold is the engine's to tell (tests/test_engine.py, with a real cold cache); here the engine
    is told so, which saves CI a second cold compile."""
    argv = ["train", "--epochs", "1", "--hidden", "8", "--dtype", "float64", "--quiet"]
    assert main(argv) == 0  # compiles or loads the kernels, whichever this process needs
    capsys.readouterr()
    assert main(argv) == 0
    assert "compiling" not in capsys.readouterr().err
    monkeypatch.setattr(fastnn.fast, "will_compile", lambda kernel, *args: True)
    assert main(argv) == 0
    assert capsys.readouterr().err.count(f"{COMPILE_NOTICE} float64") == 1


def test_predict_scales_csv_features_as_train_did(tmp_path, capsys):
    """A model trained with --scale-pixels records it; fastnn predict without the flag scales the
    features as training did (and says so), so it scores what train held out the same way."""
    from fastnn.datasets import load_digits

    X, y = load_digits()
    pixels = np.rint(X * 255).astype(int)
    path = tmp_path / "pixels.csv"
    np.savetxt(path, np.column_stack([y, pixels]), fmt="%d", delimiter=",")
    model = tmp_path / "m.npz"
    assert main(["train", "--data", f"csv:{path}", "--scale-pixels", "--save", str(model), "--quiet"]) == 0
    trained = capsys.readouterr().out
    held_out = float(trained.split("held-out accuracy: ")[1].split()[0])
    assert main(["predict", "--model", str(model), "--data", f"csv:{path}"]) == 0
    err = capsys.readouterr().err
    assert "as fastnn train read the data of this model" in err
    assert float(err.split("accuracy: ")[1].split()[0]) == held_out
