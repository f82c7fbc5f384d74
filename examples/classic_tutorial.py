"""The classic MNIST tutorial's configuration, on MNIST files.

784-32-10, ReLU and softmax, Kaiming initialisation from ``default_rng(1)``,
full-batch gradient descent at learning rate 0.1 for 1000 epochs on the
training set scaled by 1/255. The tutorial reported 93.2% training accuracy and
loss 0.242 (92.9% with Xavier). Unlike its code this uses a stable softmax and
also reports accuracy on the held-out test set.

    python examples/classic_tutorial.py FOLDER [--epochs 1000] [--init xavier]

FOLDER holds the four MNIST IDX files; a CSV in the tutorial's format works
too (``--csv mnist_train.csv``).
"""

import argparse

import fastnn
from fastnn.datasets import load_csv, load_mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--csv", help="a training CSV (label first) instead of the IDX folder")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--init", choices=["kaiming", "xavier"], default="kaiming")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = parser.parse_args()
    if args.csv:
        X_train, y_train = load_csv(args.csv, scale=True)  # 8-bit pixels, as the IDX files
        X_test = y_test = None
    else:
        X_train, y_train, X_test, y_test = load_mnist(args.folder)

    model = fastnn.MLPClassifier(hidden_layer_sizes=(32,), activation="relu", init=args.init,
                                 learning_rate=0.1, batch_size=None, epochs=args.epochs,
                                 dtype=args.dtype, random_state=1)
    every = max(1, args.epochs // 10)
    model.fit(X_train, y_train, on_epoch=lambda r: model.n_iter_ % every or print(
        f"epoch {model.n_iter_:>5}: loss {r['loss']:.4f}, training accuracy {r['accuracy']:.4f}"))
    print(f"final training accuracy {model.score(X_train, y_train):.4f} "
          f"(tutorial: 0.932 with Kaiming, 0.929 with Xavier), loss {model.loss_curve_[-1]:.3f}")
    if X_test is not None:
        print(f"test accuracy {model.score(X_test, y_test):.4f}")


if __name__ == "__main__":
    main()
