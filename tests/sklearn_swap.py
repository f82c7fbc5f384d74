"""A pytest plugin: scikit-learn's neural-network estimators replaced by fastnn's.

``python -m pytest -p tests.sklearn_swap <sklearn>/neural_network/tests/test_mlp.py`` runs
scikit-learn's own tests of its MLPs against fastnn (``tests/test_sklearn_suite.py``). The
swap happens when pytest starts, before the test module imports the classes.
"""

import sklearn.neural_network

import fastnn


def pytest_configure(config):
    sklearn.neural_network.MLPClassifier = fastnn.MLPClassifier
    sklearn.neural_network.MLPRegressor = fastnn.MLPRegressor
