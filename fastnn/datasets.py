"""Data loaders: the embedded digits, and MNIST from IDX, CSV or ``.npz`` files.

Every loader returns ``X`` of shape ``(n_samples, n_features)`` (float64) and
integer labels ``y``. Only data known to be pixels is scaled by default: the
digits (divided by 16) and MNIST's IDX files (divided by 255; ``scale=False``
keeps 0..255). CSV and npz files
may hold any features (iris's lengths in cm, say), so their values are kept as
they are unless ``scale=True`` says that they are 8-bit pixels (as in Kaggle's
MNIST CSV). Nothing here downloads unless asked (``load_mnist(path, download=True)``).
"""

import gzip
import os
import urllib.error
import urllib.request
import warnings

import numpy as np

from ._npz import read_npz

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# IDX type codes (the third byte of the magic number) that MNIST files use.
IDX_TYPES = {0x08: np.uint8}
PIXEL_MAX = 255.0


def load_digits():
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images), pixels scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64)
    y : ndarray of shape (1797,)
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow to import: only when used

    X, y = sklearn_digits(return_X_y=True)
    return X / 16.0, y


def _open(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path):
    """Read one IDX file (gzipped or not) into an array of its stated shape.

    Raises ``ValueError`` naming the file when the magic number is wrong or the
    data is shorter or longer than the header says.
    """
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes: magic number "
                         f"{data[:4].hex() or 'missing'}, expected 0000080N")
    n_dims = data[3]
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes, the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(n_dims))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path} is truncated or padded: shape {shape} needs {expected} bytes, "
                         f"the file has {len(data)}")
    return np.frombuffer(data, dtype=IDX_TYPES[data[2]], offset=header).reshape(shape)


def _find(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    return None


def _download(folder):
    os.makedirs(folder, exist_ok=True)
    for name in MNIST_FILES.values():
        if _find(folder, name):
            continue
        url = MNIST_URL + name + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as error:
            raise ConnectionError(f"could not download MNIST from {url} ({error}); is this machine "
                                  f"online? Otherwise put the four IDX files in {folder}") from error
        with open(os.path.join(folder, name + ".gz"), "wb") as f:
            f.write(payload)


def _features(array, scale, source):
    """One row of float64 features per sample; divided by 255 when ``scale`` says they are 8-bit pixels."""
    X = array.reshape(len(array), int(np.prod(array.shape[1:]))).astype(np.float64)
    if not scale:
        return X
    if X.size and (X.min() < 0 or X.max() > PIXEL_MAX):
        raise ValueError(f"{source}: scale=True divides 8-bit pixels by 255, but the values run "
                         f"from {X.min():g} to {X.max():g}")
    return X / PIXEL_MAX


def _labels(y, source):
    y = np.asarray(y)
    if y.dtype.kind not in "iuf" or not np.array_equal(y, np.round(y)):
        raise ValueError(f"{source}: class labels must be integers; got dtype {y.dtype}")
    return y.astype(np.int64)


def check_mnist_folder(path, fetch_hint="pass download=True to fetch them"):
    """Raise ``FileNotFoundError`` naming the MNIST files that the folder ``path`` lacks."""
    missing = [name for name in MNIST_FILES.values() if _find(path, name) is None]
    if missing:
        raise FileNotFoundError(f"{path} lacks the MNIST files {', '.join(missing)} (with or "
                                f"without .gz); {fetch_hint}")


def load_mnist(path, *, scale=True, download=False):
    """MNIST from the four original IDX files (gzipped or not) in the folder ``path``.

    Pixels are divided by 255 unless ``scale=False``. With ``download=True``,
    missing files are fetched first (needs a network).

    Returns
    -------
    X_train : ndarray of shape (60000, 784)
    y_train : ndarray of shape (60000,)
    X_test : ndarray of shape (10000, 784)
    y_test : ndarray of shape (10000,)
    """
    if download:
        _download(path)
    check_mnist_folder(path)
    found = {key: _find(path, name) for key, name in MNIST_FILES.items()}
    parts = {key: read_idx(p) for key, p in found.items()}
    for split in ("train", "test"):
        n_images, n_labels = len(parts[f"{split}_images"]), len(parts[f"{split}_labels"])
        if n_images != n_labels:
            raise ValueError(f"MNIST {split} set in {path}: {n_images} images but {n_labels} labels")
    return (_features(parts["train_images"], scale, found["train_images"]),
            parts["train_labels"].astype(np.int64),
            _features(parts["test_images"], scale, found["test_images"]),
            parts["test_labels"].astype(np.int64))


def load_csv(path, *, scale=False):
    """A CSV with the label in the first column and one feature per other column.

    A first line that is not numeric is taken as a header and skipped. Features
    are kept as they are; ``scale=True`` divides them by 255, for 8-bit pixels
    such as Kaggle's MNIST CSV (values outside 0..255 are then an error).
    Raises ``ValueError`` naming the file and the line of a ragged row or a
    cell that is not a number.
    """
    skip = _header_lines(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "loadtxt: input contained no data")  # said below
        try:
            table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, comments=None)
        except ValueError as error:  # NumPy's message counts rows from 0 or 1 and suggests usecols
            raise ValueError(f"{path}: {_csv_problem(path, skip)}") from error
    if table.shape[0] == 0:
        raise ValueError(f"{path} has no rows of data")
    if table.shape[1] < 2:
        raise ValueError(f"{path} needs a label column and at least one feature column")
    return _features(table[:, 1:], scale, path), _labels(table[:, 0], f"{path}, first column")


def _header_lines(path):
    """1 if the first line is a header (not all numbers), else 0."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a text file (UTF-8), as a CSV must be") from error
    try:
        [float(cell) for cell in first.split(",")]
        return 0
    except ValueError:
        return 1


def _csv_problem(path, skip):
    """The first line that ``np.loadtxt`` cannot read as a row of numbers, and why, in the file's terms."""
    width = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            cells = line.rstrip("\r\n").split(",")
            if number <= skip or cells == [""]:  # loadtxt skips empty lines
                continue
            width = width or len(cells)
            if len(cells) != width:
                return f"line {number} has {len(cells)} cells where the first row has {width}"
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    return f"line {number}, column {column}: {cell.strip()!r} is not a number"
    return "not a table of numbers with the same number of cells on every line"


def load_npz(path, *, scale=False):
    """An ``.npz`` with ``X`` and ``y`` (or Keras's ``x_train``/``y_train``/``x_test``/``y_test``).

    Returns ``(X, y)``, or ``(X_train, y_train, X_test, y_test)`` for the Keras layout.
    Features are kept as they are; ``scale=True`` divides 8-bit pixels by 255.
    Never unpickles: an array of Python objects is an error.
    """
    arrays = read_npz(path, "a readable .npz file")
    for names in (("X", "y"), ("x_train", "y_train", "x_test", "y_test")):
        if all(name in arrays for name in names):
            return tuple(_labels(arrays[name], f"{path}, {name}") if name.startswith("y")
                         else _features(arrays[name], scale, f"{path}, {name}") for name in names)
    raise ValueError(f"{path} must hold arrays 'X' and 'y' (or x_train, y_train, x_test, y_test); "
                     f"it holds {sorted(arrays)}")
