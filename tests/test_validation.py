"""Every bad input gets a clear error (the README's table lists these rows)."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastnn import MLPClassifier

rng = np.random.default_rng(0)
X = rng.random((40, 4))
y = np.arange(40) % 3


def fitted(**params):
    return MLPClassifier(epochs=1, random_state=0, **params).fit(X, y)


BAD_FIT_DATA = [
    ("X not 2-D", X[:, 0], y, ValueError, "Expected 2D array"),
    ("y length differs", X, y[:-1], ValueError, "inconsistent numbers of samples"),
    ("empty X", X[:0], y[:0], ValueError, "0 sample"),
    ("no features", X[:, :0], y, ValueError, "0 feature"),
    ("NaN in X", np.where(X > 0.99, np.nan, X), y, ValueError, "Input X contains NaN"),
    ("inf in X", np.where(X > 0.99, np.inf, X), y, ValueError, "Input X contains infinity"),
    ("one class", X, np.zeros(40), ValueError, "at least 2 classes; got 1 class"),
    ("continuous y", X, np.linspace(0, 1, 40), ValueError, "Unknown label type"),
    ("y missing", X, None, ValueError, "requires y to be passed"),
    ("text X", X.astype(str), y, ValueError, "X must hold numbers"),
    ("complex X", X + 1j, y, ValueError, "Complex data not supported"),
    ("object X", np.array([[{}]] * 40, dtype=object), y, TypeError, "must be a string or a real number"),
    ("ragged X", [[1.0, 2.0], [3.0]] * 20, y, ValueError, "inhomogeneous"),
]


@pytest.mark.parametrize("what, X_bad, y_bad, error, match", BAD_FIT_DATA,
                         ids=[row[0] for row in BAD_FIT_DATA])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_bad_training_data(what, X_bad, y_bad, error, match, engine):
    with pytest.raises(error, match=match):
        MLPClassifier(engine=engine).fit(X_bad, y_bad)


BAD_PARAMS = [
    ({"learning_rate": 0}, "learning_rate must be a finite number > 0; got 0"),
    ({"learning_rate": -0.1}, "learning_rate must be a finite number > 0"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0"),
    ({"learning_rate": "fast"}, "learning_rate must be a finite number > 0"),
    ({"batch_size": 0}, r"batch_size must be None, 'auto' or an int from 1 to n_samples=40; got 0"),
    ({"batch_size": -5}, "batch_size must be"),
    ({"batch_size": 41}, "batch_size must be.*got 41"),
    ({"batch_size": "big"}, "batch_size must be"),
    ({"epochs": 0}, "epochs must be an int >= 1; got 0"),
    ({"epochs": 2.5}, "epochs must be an int >= 1"),
    ({"hidden_layer_sizes": ()}, "hidden_layer_sizes must be an int or a non-empty sequence"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be"),
    ({"hidden_layer_sizes": -3}, "hidden_layer_sizes must be"),
    ({"hidden_layer_sizes": "wide"}, "hidden_layer_sizes must be"),
    ({"activation": "softplus"}, "activation must be one of 'sigmoid', 'tanh', 'relu', 'leaky_relu'"),
    ({"init": "he"}, "init must be one of 'xavier', 'kaiming'"),
    ({"engine": "gpu"}, "engine must be one of 'fast', 'reference'"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
    ({"dtype": "double-ish"}, "dtype must be 'float32' or 'float64'"),
    ({"n_threads": 0}, "n_threads must be an int >= 1"),
    ({"shuffle": "yes"}, "shuffle must be True or False"),
]


@pytest.mark.parametrize("params, match", BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_bad_hyper_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


# Every float hyper-parameter of MLPClassifier: a new one is one more line here (the next
# test fails until it is).
FLOAT_PARAMS = ["learning_rate"]
NON_FINITE = [float("inf"), float("-inf"), float("nan"), np.float16("inf"), np.float32("inf"),
              np.float32("-inf"), np.float32("nan"), np.float64("inf"), np.longdouble("inf")]


def test_float_params_lists_every_float_hyper_parameter():
    defaults = MLPClassifier().get_params()
    assert sorted(FLOAT_PARAMS) == sorted(name for name, value in defaults.items()
                                          if isinstance(value, float))


@pytest.mark.parametrize("value", NON_FINITE, ids=[f"{type(v).__name__}({v})" for v in NON_FINITE])
@pytest.mark.parametrize("name", FLOAT_PARAMS)
def test_non_finite_float_hyper_parameters(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        MLPClassifier(**{name: value}).fit(X, y)


def test_predict_before_fit():
    for method in ("predict", "predict_proba", "score"):
        with pytest.raises(NotFittedError):
            args = (X, y) if method == "score" else (X,)
            getattr(MLPClassifier(), method)(*args)


def test_wrong_number_of_features_at_predict():
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        fitted().predict(X[:, :3])


def test_unseen_labels_at_score_and_partial_fit():
    model = fitted()
    with pytest.raises(ValueError, match=r"labels the model does not know: \[7\]"):
        model.score(X, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match="labels the model does not know"):
        MLPClassifier().partial_fit(X, y, classes=[0, 1])


def test_warm_start_with_another_dtype():
    model = fitted(warm_start=True)
    with pytest.raises(ValueError, match="dtype is float64 but the model was trained in float32"):
        model.set_params(dtype="float64").fit(X, y)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("convert", [
    lambda a: (a * 255).astype(np.uint8).astype(np.int64),
    lambda a: a > 0.5,
    lambda a: a.astype(np.float16),
], ids=["int", "bool", "float16"])
def test_safe_conversions_match_float_input(engine, convert):
    Xc = convert(X)
    a = MLPClassifier(engine=engine, epochs=2, random_state=0).fit(Xc, y)
    b = MLPClassifier(engine=engine, epochs=2, random_state=0).fit(np.asarray(Xc, np.float32), y)
    for got, want in zip(a.weights_, b.weights_):
        np.testing.assert_array_equal(got, want)


def layouts(tmp_path):
    C = np.ascontiguousarray(X, dtype=np.float32)
    read_only = C.copy()
    read_only.flags.writeable = False
    mapped = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=C.shape)
    mapped[:] = C
    mapped.flush()
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    wide = np.zeros((40, 8), np.float32)
    wide[:, ::2] = C
    return {"fortran": np.asfortranarray(C), "strided": wide[:, ::2], "read-only": read_only,
            "memmap": mapped, "float64": X}


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "read-only", "memmap", "float64"])
def test_memory_layouts_give_the_same_model(tmp_path, engine, layout):
    C = np.ascontiguousarray(X, dtype=np.float32)
    Xl = layouts(tmp_path)[layout]
    a = MLPClassifier(engine=engine, epochs=2, random_state=0).fit(Xl, y)
    b = MLPClassifier(engine=engine, epochs=2, random_state=0).fit(C, y)
    for got, want in zip(a.weights_ + a.biases_, b.weights_ + b.biases_):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a.predict_proba(Xl), b.predict_proba(C))


def test_warm_start_with_another_architecture():
    model = fitted(warm_start=True, hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match=r"hidden_layer_sizes=\(9,\) does not match the trained weights"):
        model.set_params(hidden_layer_sizes=(9,)).fit(X, y)


@pytest.mark.parametrize("edit", [
    lambda m: m.biases_.__setitem__(0, m.biases_[0][:3]),
    lambda m: m.weights_.__setitem__(1, m.weights_[1][:, :5].copy()),
    lambda m: m.weights_.__setitem__(0, m.weights_[0].astype(np.float64)),
    lambda m: m.weights_.__setitem__(0, np.asfortranarray(m.weights_[0])),
    lambda m: m.weights_.pop(),
], ids=["short bias", "narrow weight", "other dtype", "fortran", "missing layer"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_edited_parameters_are_refused_not_read_out_of_bounds(edit, engine):
    model = fitted(engine=engine, hidden_layer_sizes=(8,))
    edit(model)
    with pytest.raises(ValueError, match="do not form a layer|outputs for"):
        model.predict(X)
