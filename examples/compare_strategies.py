"""scikit-learn's stochastic learning strategies for an MLP classifier, with either implementation.

    python examples/compare_strategies.py [--implementation fastnn|sklearn]

The same script for both: only the import differs (the one line a user changes). For four
small data sets (iris, digits, circles, moons; features scaled to [0, 1]) it fits one
classifier per strategy (plain SGD with constant or inverse-scaling rates, with and without
momentum or Nesterov's momentum, and Adam) and prints each one's training score and loss.
With the same ``random_state`` both implementations print the same numbers
(``tests/test_examples.py`` runs both and compares).
"""

import argparse
import importlib
import warnings

from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import MinMaxScaler

STRATEGIES = {
    "constant learning-rate": dict(solver="sgd", learning_rate="constant", momentum=0,
                                   learning_rate_init=0.2),
    "constant with momentum": dict(solver="sgd", learning_rate="constant", momentum=0.9,
                                   nesterovs_momentum=False, learning_rate_init=0.2),
    "constant with Nesterov's momentum": dict(solver="sgd", learning_rate="constant", momentum=0.9,
                                              nesterovs_momentum=True, learning_rate_init=0.2),
    "inv-scaling learning-rate": dict(solver="sgd", learning_rate="invscaling", momentum=0,
                                      learning_rate_init=0.2),
    "inv-scaling with momentum": dict(solver="sgd", learning_rate="invscaling", momentum=0.9,
                                      nesterovs_momentum=False, learning_rate_init=0.2),
    "inv-scaling with Nesterov's momentum": dict(solver="sgd", learning_rate="invscaling", momentum=0.9,
                                                 nesterovs_momentum=True, learning_rate_init=0.2),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}


def data_sets():
    iris = datasets.load_iris()
    digits = datasets.load_digits()
    return {"iris": (iris.data, iris.target), "digits": (digits.data, digits.target),
            "circles": datasets.make_circles(noise=0.2, factor=0.5, random_state=1),
            "moons": datasets.make_moons(noise=0.3, random_state=0)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--implementation", choices=["fastnn", "sklearn"], default="fastnn")
    args = parser.parse_args()
    module = "fastnn" if args.implementation == "fastnn" else "sklearn.neural_network"
    MLPClassifier = importlib.import_module(module).MLPClassifier  # the one line that differs
    for name, (X, y) in data_sets().items():
        print(f"learning on {name}")
        X = MinMaxScaler().fit_transform(X)
        max_iter = 15 if name == "digits" else 400  # digits is larger: converges quickly
        for label, params in STRATEGIES.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = MLPClassifier(random_state=0, max_iter=max_iter, **params).fit(X, y)
            print(f"  {label}: training set score {model.score(X, y):.6f}, loss {model.loss_:.6f}")


if __name__ == "__main__":
    main()
