"""Train on MNIST from a folder, save, load, predict; then check the reference engine agrees.

    python examples/mnist_folder.py FOLDER [--epochs 5] [--download]

FOLDER holds the four original IDX files (train-images-idx3-ubyte[.gz], ...).
"""

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastnn
from fastnn.datasets import load_mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--download", action="store_true", help="fetch missing files (needs a network)")
    args = parser.parse_args()

    X_train, y_train, X_test, y_test = load_mnist(args.folder, download=args.download)
    # Plain SGD at 0.1 in batches of 128 for exactly --epochs epochs (a ConvergenceWarning says that
    # it stopped there, as asked: silenced).
    warnings.simplefilter("ignore", ConvergenceWarning)
    params = dict(hidden_layer_sizes=(128,), solver="sgd", momentum=0, alpha=0, learning_rate_init=0.1,
                  batch_size=128, max_iter=args.epochs, n_iter_no_change=float("inf"), random_state=0,
                  verbose=True)
    model = fastnn.MLPClassifier(**params).fit(X_train, y_train)
    print(f"fast engine: test accuracy {model.score(X_test, y_test):.4f}")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mnist.npz"
        model.save(path)
        loaded = fastnn.load(path)
    labels = loaded.predict(X_test)
    assert np.array_equal(labels, model.predict(X_test))
    print(f"saved, loaded, predicted: first ten test labels {labels[:10].tolist()}")

    reference = fastnn.MLPClassifier(**{**params, "engine": "reference", "verbose": False})
    reference.fit(X_train, y_train)
    same = np.mean(reference.predict(X_test) == labels)
    drift = max(np.abs(a - b).max() for a, b in zip(reference.coefs_, model.coefs_))
    print(f"reference engine: test accuracy {reference.score(X_test, y_test):.4f}; "
          f"same label on {same:.2%} of the test set; largest weight difference {drift:.2e}")


if __name__ == "__main__":
    main()
