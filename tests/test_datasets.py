"""Loaders on small IDX, CSV and npz files made here (never downloaded)."""

import gzip
import urllib.error
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from fastnn import datasets


def idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, n_train=12, n_test=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    parts = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.permutation(np.arange(n_test) % 10),
    }
    for key, array in parts.items():
        name = datasets.MNIST_FILES[key]
        payload = idx_bytes(array)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, gz):
    parts = write_mnist(tmp_path, gz=gz)
    X_train, y_train, X_test, y_test = datasets.load_mnist(tmp_path)
    assert X_train.shape == (12, 784) and X_test.shape == (5, 784)
    np.testing.assert_array_equal(X_train, parts["train_images"].reshape(12, 784) / 255)
    np.testing.assert_array_equal(y_test, parts["test_labels"])
    assert 0 <= X_train.min() and X_train.max() <= 1
    raw = datasets.load_mnist(tmp_path, scale=False)[0]
    np.testing.assert_array_equal(raw, parts["train_images"].reshape(12, 784))


def test_load_mnist_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        write_mnist(tmp_path)
        (tmp_path / "t10k-labels-idx1-ubyte").unlink()
        datasets.load_mnist(tmp_path)


def test_download_offline_gives_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="could not download MNIST.*is this machine online"):
        datasets.load_mnist(tmp_path / "mnist", download=True)


def test_download_skips_files_already_there(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    monkeypatch.setattr(datasets.urllib.request, "urlopen", pytest.fail)
    assert len(datasets.load_mnist(tmp_path, download=True)) == 4


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:-3], "truncated or padded"),
    (lambda b: b + b"\0", "truncated or padded"),
    (lambda b: b[:6], "truncated: its header"),
    (lambda b: b"\x00\x00\x0d\x03" + b[4:], "not an IDX file"),
    (lambda b: b"PK" + b[2:], "not an IDX file"),
    (lambda b: b"", "magic number missing"),
])
def test_damaged_idx_files(tmp_path, damage, match):
    path = tmp_path / "images"
    path.write_bytes(damage(idx_bytes(np.zeros((2, 3, 3)))))
    with pytest.raises(ValueError, match=match):
        datasets.read_idx(path)


def test_load_csv_with_and_without_header(tmp_path):
    rows = "3,0,255,51\n7,255,0,0\n"
    (tmp_path / "plain.csv").write_text(rows)
    (tmp_path / "header.csv").write_text("label,p0,p1,p2\n" + rows)
    for name in ("plain.csv", "header.csv"):
        X, y = datasets.load_csv(tmp_path / name, scale=True)
        np.testing.assert_array_equal(y, [3, 7])
        np.testing.assert_allclose(X, [[0, 1, 0.2], [1, 0, 0]])


@pytest.mark.parametrize("content, match", [
    ("3,0,255\n7,255\n", "line 2 has 2 cells where the first row has 3"),
    ("3,0,255\n\n7,0,1,1\n", "line 3 has 4 cells where the first row has 3"),
    ("3,0,255\n7,x,1\n", "line 2, column 2: 'x' is not a number"),
    ("label,a,b\n3,0,255\n7,1,\n", "line 3, column 3: '' is not a number"),
    ("", "has no rows of data"),
    ("label,a,b\n", "has no rows of data"),
    (bytes(range(256)), "is not a text file"),
    ("3.5,0,1\n", "class labels must be integers"),
    ("3\n4\n", "label column and at least one feature"),
], ids=["short row", "long row", "text cell", "empty cell", "empty", "header only", "binary",
        "float label", "no features"])
def test_bad_csv_files(tmp_path, content, match):
    """Each message names the file and the line, in its own words (NumPy's said 'use usecols')."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's "input contained no data" is not for the user either
        with pytest.raises(ValueError, match=match) as error:
            datasets.load_csv(path)
    assert str(error.value).startswith(str(path)) and "usecols" not in str(error.value)


def test_load_npz_layouts(tmp_path):
    X = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    np.savez(tmp_path / "xy.npz", X=X, y=[1, 2, 3])
    Xs, y = datasets.load_npz(tmp_path / "xy.npz", scale=True)
    np.testing.assert_allclose(Xs, X.reshape(3, 4) / 255)
    np.savez(tmp_path / "keras.npz", x_train=X, y_train=[1, 2, 3], x_test=X[:1], y_test=[4])
    assert [a.shape for a in datasets.load_npz(tmp_path / "keras.npz")] == [(3, 4), (3,), (1, 4), (1,)]


def write_iris(folder):
    """Iris (features 0.1 to 7.9, not pixels) as a CSV with a header and as an npz."""
    X, y = load_iris(return_X_y=True)
    with open(folder / "iris.csv", "w") as f:
        f.write("species,sepal length,sepal width,petal length,petal width\n")
        np.savetxt(f, np.column_stack([y, X]), delimiter=",", fmt=["%d"] + ["%.1f"] * 4)
    np.savez(folder / "iris.npz", X=X, y=y)
    return X, y


@pytest.mark.parametrize("loader, name", [(datasets.load_csv, "iris.csv"), (datasets.load_npz, "iris.npz")])
def test_csv_and_npz_keep_their_values_unless_asked_to_scale(tmp_path, loader, name):
    X, y = write_iris(tmp_path)
    got, labels = loader(tmp_path / name)
    np.testing.assert_array_equal(got, X)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(loader(tmp_path / name, scale=True)[0], X / 255)


@pytest.mark.parametrize("values", [[-1, 3], [0, 256]])
def test_scaling_refuses_values_that_are_not_8_bit_pixels(tmp_path, values):
    np.savez(tmp_path / "d.npz", X=np.array([values, values]), y=[0, 1])
    with pytest.raises(ValueError, match=r"d\.npz, X: scale=True divides 8-bit pixels by 255, but the "
                                         r"values run from -?\d+ to \d+"):
        datasets.load_npz(tmp_path / "d.npz", scale=True)


def test_bad_npz_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz file: it is not a zip archive"):
        datasets.load_npz(tmp_path / "junk.npz")  # np.load would have spoken of pickled data
    np.savez(tmp_path / "other.npz", data=[1])
    with pytest.raises(ValueError, match="must hold arrays 'X' and 'y'"):
        datasets.load_npz(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", X=np.array([{}], dtype=object), y=[1])
    with pytest.raises(ValueError, match=r"pickled\.npz is not a readable \.npz file: array 'X' holds "
                                         "Python objects, which load only by unpickling") as error:
        datasets.load_npz(tmp_path / "pickled.npz")
    assert "allow_pickle" not in str(error.value)


def test_load_digits_is_embedded():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and set(y) == set(range(10))
    assert X.min() == 0 and X.max() == 1
