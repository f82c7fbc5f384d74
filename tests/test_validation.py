"""Every bad input gets a clear error (the README's table lists these rows)."""

import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastnn import MLPClassifier, MLPRegressor
from fastnn.testing import parameters

from .conftest import kernel_signatures

# One-epoch fits: scikit-learn's ConvergenceWarning is expected.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.default_rng(0)
X = rng.random((40, 4))
y = np.arange(40) % 3


def fitted(**params):
    return MLPClassifier(max_iter=1, random_state=0, **params).fit(X, y)


BAD_FIT_DATA = [
    ("X not 2-D", X[:, 0], y, ValueError, "Expected 2D array"),
    ("y length differs", X, y[:-1], ValueError, "inconsistent numbers of samples"),
    ("empty X", X[:0], y[:0], ValueError, "0 sample"),
    ("no features", X[:, :0], y, ValueError, "0 feature"),
    ("NaN in X", np.where(X > 0.99, np.nan, X), y, ValueError, "Input X contains NaN"),
    ("inf in X", np.where(X > 0.99, np.inf, X), y, ValueError, "Input X contains infinity"),
    ("continuous y", X, np.linspace(0, 1, 40), ValueError, "Unknown label type"),
    ("y missing", X, None, ValueError, "requires y to be passed"),
    ("text X", X.astype(str), y, ValueError, "X must hold numbers"),
    ("complex X", X + 1j, y, ValueError, "Complex data not supported"),
    ("object X", np.array([[{}]] * 40, dtype=object), y, TypeError, "must be a string or a real number"),
    ("ragged X", [[1.0, 2.0], [3.0]] * 20, y, ValueError, "inhomogeneous"),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 2, 3]], ids=["fewer", "more"])
def test_warm_start_needs_the_same_classes(classes):
    """As scikit-learn: a warm fit on y with other classes than the first fit's is refused."""
    y3 = np.arange(40) % 3
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True, random_state=0).fit(X, y3)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
        model.fit(X, np.arange(40) % len(classes))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_class_trains_as_scikit_learn():
    """scikit-learn fits y of one class (one logistic unit whose target is always 0) and predicts it."""
    from sklearn.neural_network import MLPClassifier as Theirs

    theirs = Theirs(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, np.full(40, 7))
    ours = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, np.full(40, 7))
    assert ours.classes_.tolist() == [7] and ours.predict(X[:5]).tolist() == [7] * 5
    np.testing.assert_allclose(ours.coefs_[-1], theirs.coefs_[-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("what, X_bad, y_bad, error, match", BAD_FIT_DATA,
                         ids=[row[0] for row in BAD_FIT_DATA])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_bad_training_data(what, X_bad, y_bad, error, match, engine):
    with pytest.raises(error, match=match):
        MLPClassifier(engine=engine).fit(X_bad, y_bad)


def invalid(name, expected, got):
    """scikit-learn's InvalidParameterError message for ``name``."""
    return rf"^The '{name}' parameter of MLPClassifier must be {expected}\. Got {got} instead\."


BAD_PARAMS = [
    ({"learning_rate_init": 0}, invalid("learning_rate_init", r"a float in the range \(0\.0, inf\)", "0")),
    ({"learning_rate_init": -0.1},
     invalid("learning_rate_init", r"a float in the range \(0\.0, inf\)", "-0.1")),
    ({"learning_rate_init": float("nan")}, invalid("learning_rate_init", ".*", "nan")),
    ({"learning_rate_init": "fast"}, invalid("learning_rate_init", ".*", "'fast'")),
    ({"learning_rate": 0.1}, invalid("learning_rate", "a str among .*'constant'.*", "0.1")),
    ({"solver": "rmsprop"}, invalid("solver", "a str among .*'adam'.*", "'rmsprop'")),
    ({"batch_size": 0}, invalid("batch_size", r".*an int in the range \[1, inf\)", "0")),
    ({"batch_size": -5}, invalid("batch_size", ".*", "-5")),
    ({"batch_size": "big"}, invalid("batch_size", ".*", "'big'")),
    ({"batch_size": None}, invalid("batch_size", ".*", "None")),  # the old full batch: pass n_samples
    ({"max_iter": 0}, invalid("max_iter", r"an int in the range \[1, inf\)", "0")),
    ({"max_iter": 2.5}, invalid("max_iter", ".*", "2.5")),
    ({"n_iter_no_change": 0}, invalid("n_iter_no_change", ".*", "0")),
    ({"alpha": -1.0}, invalid("alpha", r"a float in the range \[0\.0, inf\)", "-1.0")),
    ({"momentum": 1.5}, invalid("momentum", r"a float in the range \[0\.0, 1\.0\]", "1.5")),
    ({"validation_fraction": 1.0}, invalid("validation_fraction", ".*", "1.0")),
    ({"hidden_layer_sizes": (10, 0)}, r"^hidden_layer_sizes must be > 0, got \[10, 0\]"),
    ({"hidden_layer_sizes": -3}, invalid("hidden_layer_sizes", ".*", "-3")),
    ({"hidden_layer_sizes": "wide"}, invalid("hidden_layer_sizes", ".*", "'wide'")),
    ({"activation": "sigmoid"}, invalid("activation", "a str among .*'logistic'.*", "'sigmoid'")),
    ({"activation": "softplus"}, invalid("activation", "a str among .*'leaky_relu'.*", "'softplus'")),
    ({"init": "he"}, invalid("init", ".*'kaiming'.*", "'he'")),
    ({"engine": "gpu"}, invalid("engine", ".*'reference'.*", "'gpu'")),
    ({"dtype": "float16"}, "^dtype must be 'float32' or 'float64'"),
    ({"dtype": "double-ish"}, "^dtype must be 'float32' or 'float64'"),
    ({"n_threads": 0}, invalid("n_threads", ".*", "0")),
    ({"shuffle": "yes"}, invalid("shuffle", ".*bool.*", "'yes'")),
    ({"random_state": np.random.default_rng(0)}, invalid("random_state", ".*", ".*Generator.*")),
]


# Ids without object addresses, so that every process of a parallel run collects the same tests.
@pytest.mark.parametrize("params, match", BAD_PARAMS,
                         ids=[re.sub(r" at 0x[0-9A-Fa-f]+", "", str(p)) for p, _ in BAD_PARAMS])
def test_bad_hyper_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_batch_size_past_the_samples_is_clipped_with_a_warning():
    """As scikit-learn: batch_size > n_samples trains on one batch of every row, and warns."""
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        big = fitted(batch_size=41, shuffle=False)
    full = fitted(batch_size=40, shuffle=False)
    for got, want in zip(parameters(big), parameters(full)):
        np.testing.assert_array_equal(got, want)


def test_no_hidden_layer():
    """hidden_layer_sizes=() is scikit-learn's network without a hidden layer."""
    model = fitted(hidden_layer_sizes=())
    assert [W.shape for W in model.coefs_] == [(4, 3)] and model.n_layers_ == 2


# Every float hyper-parameter of MLPClassifier: a new one is one more line here (the next
# test fails until it is).
FLOAT_PARAMS = ["alpha", "learning_rate_init", "power_t", "tol", "momentum", "validation_fraction", "beta_1",
                "beta_2", "epsilon"]
NON_FINITE = [float("inf"), float("-inf"), float("nan"), np.float16("inf"), np.float32("inf"),
              np.float32("-inf"), np.float32("nan"), np.float64("inf"), np.longdouble("inf")]


def test_float_params_lists_every_float_hyper_parameter():
    defaults = MLPClassifier().get_params()
    assert sorted(FLOAT_PARAMS) == sorted(name for name, value in defaults.items()
                                          if isinstance(value, float))


@pytest.mark.parametrize("value", NON_FINITE, ids=[f"{type(v).__name__}({v})" for v in NON_FINITE])
@pytest.mark.parametrize("name", FLOAT_PARAMS)
def test_non_finite_float_hyper_parameters(name, value):
    """Refused with a ValueError naming the parameter: scikit-learn's range check, or fastnn's
    finiteness check for what that range lets through (+inf)."""
    with pytest.raises(ValueError, match=rf"^(The '{name}' parameter of MLPClassifier must be|"
                                         rf"{name} must be a finite number)"):
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
    """As scikit-learn: score counts a label the model does not know as a miss; partial_fit refuses
    labels outside classes."""
    model = fitted()
    unseen = np.where(y == 2, 7, y)
    assert model.score(X, unseen) == np.mean(model.predict(X) == unseen)
    assert model.score(X, unseen) <= np.mean(unseen != 7)
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        MLPClassifier().partial_fit(X, y, classes=[0, 1])


def test_warm_start_with_another_dtype():
    """A warm fit in another dtype trains on from the previous parameters, cast to it."""
    model = fitted(warm_start=True, dtype="float32")
    start = [p.astype(np.float64) for p in parameters(model)]
    cold = fitted(dtype="float64")
    for got, want in zip(parameters(cold), start):
        assert not np.array_equal(got, want)
    model.set_params(dtype="float64", max_iter=1).fit(X, y)
    assert all(p.dtype == np.float64 for p in parameters(model))
    again = MLPClassifier(max_iter=1, random_state=0, dtype="float64", warm_start=True).fit(X, y)
    for p, q in zip(parameters(again), start):  # the same start gives the same warm fit
        p[...] = q
    again.fit(X, y)
    for got, want in zip(parameters(model), parameters(again)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("convert", [
    lambda a: (a * 255).astype(np.uint8).astype(np.int64),
    lambda a: a > 0.5,
    lambda a: a.astype(np.float16),
], ids=["int", "bool", "float16"])
def test_safe_conversions_match_float_input(engine, convert):
    Xc = convert(X)
    a = MLPClassifier(engine=engine, max_iter=2, random_state=0).fit(Xc, y)
    b = MLPClassifier(engine=engine, max_iter=2, random_state=0).fit(np.asarray(Xc, np.float64), y)
    assert a.coefs_[0].dtype == np.float64  # dtype=None: anything but float32 is float64
    for got, want in zip(parameters(a), parameters(b)):
        np.testing.assert_array_equal(got, want)


def read_only_copy(tmp_path, name, array):
    """``array`` as a read-only memory map of a file (``np.load(path, mmap_mode="r")``)."""
    np.save(tmp_path / f"{name}.npy", np.ascontiguousarray(array))
    return np.load(tmp_path / f"{name}.npy", mmap_mode="r")


def layouts(tmp_path):
    C = np.ascontiguousarray(X, dtype=np.float32)
    read_only = C.copy()
    read_only.flags.writeable = False
    mapped = read_only_copy(tmp_path, "X", C)
    wide = np.zeros((40, 8), np.float32)
    wide[:, ::2] = C
    return {"fortran": np.asfortranarray(C), "strided": wide[:, ::2], "read-only": read_only,
            "memmap": mapped, "float64": X}


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "read-only", "memmap", "float64"])
def test_memory_layouts_give_the_same_model(tmp_path, engine, layout, shuffle):
    """Any layout of X (and read-only sample weights with read-only X), in batches of 16 rows
    or one batch of every row, shuffled or not."""
    C = np.ascontiguousarray(X, dtype=np.float32)
    Xl = layouts(tmp_path)[layout]
    weights = np.linspace(0.5, 1.5, len(y))
    given = weights.copy()
    given.flags.writeable = layout != "read-only"
    for batch_size in (16, len(y)):
        kwargs = dict(engine=engine, max_iter=2, random_state=0, dtype="float32", shuffle=shuffle,
                      batch_size=batch_size)
        a = MLPClassifier(**kwargs).fit(Xl, y, sample_weight=given)
        b = MLPClassifier(**kwargs).fit(C, y, sample_weight=weights)
        for got, want in zip(parameters(a), parameters(b)):
            np.testing.assert_array_equal(got, want)
    a = MLPClassifier(engine=engine, max_iter=2, random_state=0, dtype="float32").fit(Xl, y)
    b = MLPClassifier(engine=engine, max_iter=2, random_state=0, dtype="float32").fit(C, y)
    for got, want in zip(parameters(a), parameters(b)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a.predict_proba(Xl), b.predict_proba(C))


READ_ONLY_FITS = {
    "sgd, serial": (MLPClassifier, dict(solver="sgd", nesterovs_momentum=True, batch_size=8, n_threads=1)),
    "sgd, units shared": (MLPClassifier, dict(solver="sgd", batch_size=8, n_threads=2)),
    "adam, rows shared, early stopping": (MLPClassifier, dict(batch_size=100, n_threads=2,
                                                              early_stopping=True, validation_fraction=0.2)),
    "lbfgs": (MLPClassifier, dict(solver="lbfgs")),
    "regressor, two outputs": (MLPRegressor, dict(batch_size=8, n_threads=1)),
}


@pytest.mark.parametrize("name", READ_ONLY_FITS)
def test_read_only_data_compiles_no_kernel_again(tmp_path, name):
    """The kernels take the data read-only whatever its flag (a read-only array is a type of its
    own to Numba, and a second compile of the epoch took 21 s): after a fit and a prediction on
    writeable arrays, the same on read-only memory maps loads or compiles nothing, and gives the
    same model."""
    estimator, params = READ_ONLY_FITS[name]
    X = np.random.default_rng(1).random((150, 4))  # batches of 100 rows are shared by rows
    targets = np.c_[X[:, 0], X[:, 1] - X[:, 2]] if estimator is MLPRegressor else np.arange(150) % 3
    weights = np.linspace(0.5, 1.5, 150)
    models = []
    for read_only in (False, True):
        data = [X, targets, weights]
        if read_only:
            data = [read_only_copy(tmp_path, str(k), a) for k, a in enumerate(data)]
        model = estimator(engine="fast", hidden_layer_sizes=(6,), max_iter=2, random_state=0, **params)
        model.fit(data[0], data[1], sample_weight=data[2]).predict(data[0])
        models.append(model)
        if not read_only:
            before = kernel_signatures()
    assert kernel_signatures() == before
    for got, want in zip(parameters(models[1]), parameters(models[0])):
        np.testing.assert_array_equal(got, want)


def test_warm_start_with_another_architecture():
    """As scikit-learn: a warm fit trains on the network it has, whatever hidden_layer_sizes now says."""
    model = fitted(warm_start=True, hidden_layer_sizes=(8,))
    model.set_params(hidden_layer_sizes=(9,)).fit(X, y)
    assert [W.shape for W in model.coefs_] == [(4, 8), (8, 3)]


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.intercepts_.__setitem__(0, m.intercepts_[0][:3]), "intercepts_ do not match"),
    (lambda m: m.coefs_.__setitem__(1, m.coefs_[1][:5].copy()), "do not form a network"),
    (lambda m: m.coefs_.__setitem__(0, m.coefs_[0][:3].copy()), "coefs_\\[0\\] has 3 rows for 4 features"),
    (lambda m: m.coefs_.__setitem__(0, m.coefs_[0].ravel()), "do not form a network"),
    (lambda m: m.coefs_.pop(), "do not form a network|intercepts_ do not match"),
], ids=["short intercept", "narrow coef", "coef for fewer features", "flat coef", "missing layer"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_edited_parameters_are_refused_not_read_out_of_bounds(edit, match, engine):
    model = fitted(engine=engine, hidden_layer_sizes=(8,))
    edit(model)
    with pytest.raises(ValueError, match=match):
        model.predict(X)


@pytest.mark.parametrize("edit", [
    lambda m: m.coefs_.__setitem__(0, m.coefs_[0].astype(np.float32)),
    lambda m: m.coefs_.__setitem__(0, np.asfortranarray(m.coefs_[0])),
    lambda m: m.intercepts_.__setitem__(1, list(m.intercepts_[1])),
], ids=["other dtype", "fortran", "list"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_assigned_parameters_of_any_layout_predict_alike(edit, engine):
    """scikit-learn code assigns new arrays: any array-like of the right shape is packed as it is."""
    model = fitted(engine=engine, hidden_layer_sizes=(8,))
    want = model.predict_proba(X)
    edit(model)
    np.testing.assert_allclose(model.predict_proba(X), want, rtol=1e-6)
