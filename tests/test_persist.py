"""Save / load: round trip, and clear errors for files that are not models."""

import copy
import io
import json
import struct
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastnn
from fastnn._persist import FORMAT_VERSION

# max_iter epochs exactly, no early stop: scikit-learn then warns that it did not converge.
EPOCHS = dict(n_iter_no_change=float("inf"))
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def model(digits):
    X_train, _, y_train, _ = digits
    names = np.array([f"digit {k}" for k in range(10)])
    return fastnn.MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=2, random_state=1, dtype="float32",
                                track_gradients=True, **EPOCHS).fit(X_train, names[y_train])


def saved_and_loaded(model, path):
    model.save(path)
    return fastnn.load(path)


def test_round_trip(model, digits, tmp_path):
    _, X_test, _, _ = digits
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    assert type(loaded) is fastnn.MLPClassifier
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    for got, want in zip(loaded.coefs_ + loaded.intercepts_, model.coefs_ + model.intercepts_, strict=True):
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == model.n_iter_ == 2
    assert loaded.loss_curve_ is loaded.history_["loss"]
    assert loaded.history_["time"] == model.history_["time"]
    np.testing.assert_allclose(loaded.history_["grad_norms"], model.history_["grad_norms"])
    for name in ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_", "t_", "loss_", "best_loss_",
                 "_no_improvement_count"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert (loaded.n_outputs_, loaded.n_layers_, loaded.out_activation_) == (10, 4, "softmax")


def multilabel(y):
    return np.column_stack([y % 2, y % 3 == 0, y > 5]).astype(int)


@pytest.mark.parametrize("estimator, targets, n_outputs, out_activation", [
    (fastnn.MLPClassifier, lambda y: y % 2, 1, "logistic"),
    (fastnn.MLPClassifier, lambda y: y, 10, "softmax"),
    (fastnn.MLPClassifier, multilabel, 3, "logistic"),
    (fastnn.MLPClassifier, lambda y: np.array(["no", "yes"])[y % 2], 1, "logistic"),
    (fastnn.MLPClassifier, lambda y: np.array([f"digit {k}" for k in range(10)], dtype=object)[y], 10,
     "softmax"),
    (fastnn.MLPClassifier, lambda y: y % 3 - 1.0, 3, "softmax"),  # float labels -1, 0, 1
    (fastnn.MLPRegressor, lambda y: y / 9, 1, "identity"),
    (fastnn.MLPRegressor, lambda y: np.column_stack([y / 9, (y % 3) / 2]), 2, "identity"),
    (fastnn.MLPRegressor, lambda y: y.astype(float), 1, "exp"),
], ids=["binary", "multiclass", "multilabel", "binary strings", "object strings", "float labels",
        "regressor", "regressor 2 targets", "poisson"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_loaded_models_predict_the_same(digits, tmp_path, estimator, targets, n_outputs, out_activation,
                                        solver):
    X_train, X_test, y_train, _ = digits
    params = dict(hidden_layer_sizes=(12,), max_iter=3, random_state=0, solver=solver)
    if out_activation == "exp":
        params["loss"] = "poisson"
    model = estimator(**params).fit(X_train, targets(y_train))
    assert (model.n_outputs_, model.out_activation_) == (n_outputs, out_activation)
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    assert type(loaded) is estimator and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    assert loaded.predict(X_test).dtype == model.predict(X_test).dtype
    if estimator is fastnn.MLPClassifier:
        np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
        assert loaded._label_binarizer.y_type_ == model._label_binarizer.y_type_
        assert loaded.score(X_test, model.predict(X_test)) == 1.0
    assert (loaded.n_iter_, loaded.n_outputs_, loaded.out_activation_) == (model.n_iter_, n_outputs,
                                                                             out_activation)
    assert hasattr(loaded, "loss_curve_") == hasattr(model, "loss_curve_") == (solver != "lbfgs")


def test_a_random_state_object_is_saved_as_none(digits, tmp_path):
    X_train, _, y_train, _ = digits
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=np.random.RandomState(3),
                                 dtype=np.float32).fit(X_train, y_train)
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    assert loaded.random_state is None and loaded.dtype == "float32"


def test_feature_names_round_trip(digits, tmp_path):
    """A model fitted on a DataFrame has feature_names_in_ (set by hand here: no pandas needed)."""
    X_train, _, y_train, _ = digits
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X_train, y_train)
    model.feature_names_in_ = np.array([f"pixel {k}" for k in range(64)], dtype=object)
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    del model.feature_names_in_
    assert not hasattr(saved_and_loaded(model, tmp_path / "m.npz"), "feature_names_in_")


def rewrite(path, **changes):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, match", [
    ({"format_version": np.array(FORMAT_VERSION + 1)}, "format version 3; this fastnn reads version 2"),
    ({"format_version": np.array(FORMAT_VERSION - 1)}, "format version 1; this fastnn reads version 2"),
    ({"format_version": None}, "not a fastnn model file: it has no format_version"),
    ({"intercept_1": None}, "damaged fastnn model file"),
    ({"params": np.array("{not json")}, "damaged fastnn model file"),
    ({"coef_0": np.zeros((64, 3), np.float32)}, r"layer 0 has coef shape \(64, 3\) and intercept shape"),
    ({"coef_0": np.zeros((63, 20), np.float32)}, r"layer 0 has coef shape \(63, 20\) after 64 units"),
    ({"coef_0": np.zeros((64, 20))}, "layer 0 coef is float64, its dtype parameter says float32"),
    ({"coef_1": np.full((20, 10), np.nan, np.float32)}, "holds NaN or inf"),
    ({"classes": np.arange(3)}, r"10 outputs for 3 classes \(multiclass\)"),
    ({"format_version": np.array([FORMAT_VERSION])}, r"format version \[2\]; this fastnn reads version 2"),
    ({"coef_1": None, "intercept_1": None}, "damaged fastnn model file: it has no array 'coef_1'"),
    ({"coef_0": None, "coef_1": None, "coef_2": None}, "it has no array 'coef_0'"),
    ({"coef_1": np.array(1.0, np.float32)}, r"layer 1 has coef shape \(\)"),
    ({"params": np.array("[1, 2]")}, "params is a JSON list, not an object"),
    ({"params": np.array('{"depth": 3}')}, "unexpected keyword argument 'depth'"),
    ({"params": np.array('{"hidden_layer_sizes": [20, 10], "activation": "softplus"}')},
     "The 'activation' parameter of MLPClassifier must be"),
    ({"params": np.array('{"hidden_layer_sizes": [20, 10], "alpha": Infinity}')},
     "The 'alpha' parameter of MLPClassifier must be a float in the range"),
    ({"params": np.array('{"hidden_layer_sizes": [20]}')}, r"hidden_layer_sizes parameter says \[20\]"),
    ({"classes": np.array([f"digit {k}" for k in range(10)][::-1])}, "classes is not a sorted list"),
    ({"n_features_in": np.array([64, 64])}, r"n_features_in is a int64 array of shape \(2,\), not one"),
    ({"history": np.array('{"loss": [1.0, 0.5]}')}, "history does not hold equally long lists"),
    ({"coef_0": np.array([{}] * 3, dtype=object)},
     "array 'coef_0' holds Python objects, which load only by unpickling, and fastnn never unpickles"),
    ({"model_class": np.array("MLPSomething")}, "model_class is 'MLPSomething', not one of MLPClassifier, "
                                                "MLPRegressor"),
    ({"model_class": None}, "it has no array 'model_class'"),
    ({"model_class": np.array("MLPRegressor")},
     "out_activation is 'softmax' where its targets take 'identity'"),
    ({"y_type": None}, "it has no array 'y_type'"),
    ({"y_type": np.array("binary")}, "y_type is binary for 10 classes"),
    ({"y_type": np.array("continuous")}, "y_type is 'continuous', not one of binary, multiclass"),
    ({"y_type": np.array("multilabel-indicator")},
     "out_activation is 'softmax' where its targets take 'logistic'"),
    ({"out_activation": np.array("logistic")},
     "out_activation is 'logistic' where its targets take 'softmax'"),
    ({"n_layers": np.array(3)}, "n_layers is 3 and n_outputs 10 for layers of coef shapes"),
    ({"n_outputs": np.array(0)}, "n_outputs is 0, less than 1"),
    ({"n_iter": np.array(2.0)}, r"n_iter is a float64 array of shape \(\), not one integer"),
    ({"optimizer_0": np.zeros(5, np.float32)}, r"optimizer state 0 is a float32 array of shape \(5,\)"),
    ({"optimizer_1": None}, "it has no array 'optimizer_1'"),
    ({"fit_state": np.array('{"velocity": 1}')}, r"fit_state holds \['velocity'\]"),
    ({"fit_state": np.array('{"best_loss_": "low"}')}, "fit_state's best_loss_ is 'low'"),
    ({"fit_state": np.array('{"optimizer": {"rule": "nesterov", "learning_rate": 0.1, "t": 0}}')},
     "the optimizer is nesterov, its parameters say adam"),
    ({"feature_names_in": np.array(["a", "b"])}, r"feature_names_in is a <U1 array of shape \(2,\)"),
])
def test_damaged_model_files(model, tmp_path, change, match):
    path = tmp_path / "m.npz"
    model.save(path)
    rewrite(path, **change)
    with pytest.raises(ValueError, match=match):
        fastnn.load(path)


def test_arrays_of_another_dtype_than_the_model_says(model, tmp_path):
    """Every array float64 in a file that says float32: consistent among themselves, so only
    the check against the dtype parameter can refuse them."""
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as data:
        arrays = {key: data[key].astype(np.float64) for key in data.files
                  if key.startswith(("coef_", "intercept_", "optimizer_"))}
    rewrite(path, **arrays)
    with pytest.raises(ValueError, match="layer 0 coef is float64, its dtype parameter says float32"):
        fastnn.load(path)


@pytest.mark.parametrize("name, match", [
    ("intercept_1", "layer 1 intercept is float64, layer 0 is float32"),
    ("optimizer_1", r"optimizer state 1 is a float64 array of shape \(\d+,\), not \d+ float32 numbers"),
])
def test_arrays_of_another_dtype_than_the_first_layer(digits, tmp_path, name, match):
    """dtype=None: the model's dtype is its first layer's (X's when it was fitted); one array of
    another dtype is refused."""
    X_train, _, y_train, _ = digits
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(
        X_train.astype(np.float32), y_train)
    assert model.dtype is None and model.coefs_[0].dtype == np.float32
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as data:
        array = data[name].astype(np.float64)
    rewrite(path, **{name: array})
    with pytest.raises(ValueError, match=match):
        fastnn.load(path)


def test_not_a_model_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.npz is not a fastnn model file: it is not a zip archive"):
        fastnn.load(tmp_path / "junk.npz")  # np.load would have spoken of pickled data


def test_saved_params_are_json(model, tmp_path):
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        params = json.loads(str(data["params"]))
    assert params["learning_rate_init"] == 0.001 and params["random_state"] == 1
    assert params["hidden_layer_sizes"] == [20, 10] and params["n_iter_no_change"] == float("inf")


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_loaded_model_trains_on_as_the_saved_one_would(digits, tmp_path, solver):
    """The optimizer's state (Adam's moments, SGD's velocity and rate) is saved: partial_fit and a
    warm start go on from the loaded model exactly as from the one that was saved."""
    X_train, _, y_train, _ = digits
    model = fastnn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0, solver=solver,
                                 learning_rate="invscaling", learning_rate_init=0.1, **EPOCHS)
    model.fit(X_train, y_train)
    loaded, kept = saved_and_loaded(model, tmp_path / "m.npz"), copy.deepcopy(model)
    for _ in range(2):
        loaded.partial_fit(X_train, y_train)
        kept.partial_fit(X_train, y_train)
    assert len(loaded.loss_curve_) == 4 and loaded.loss_curve_ == kept.loss_curve_
    assert loaded.loss_curve_[-1] < loaded.loss_curve_[0] and loaded.t_ == kept.t_
    for got, want in zip(loaded.coefs_ + loaded.intercepts_, kept.coefs_ + kept.intercepts_, strict=True):
        np.testing.assert_array_equal(got, want)
    for estimator in (loaded, kept):
        estimator.set_params(warm_start=True, max_iter=1).fit(X_train, y_train)
    np.testing.assert_array_equal(loaded.coefs_[0], kept.coefs_[0])


def test_string_labels_of_dtype_object_round_trip(digits, tmp_path):
    """pandas gives text columns as object arrays of str; fit's label binarizer (scikit-learn's
    unique_labels) makes classes_ a unicode array, which saves as it is."""
    X_train, X_test, y_train, _ = digits
    names = np.array([f"digit {k}" for k in range(10)], dtype=object)
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(
        X_train, names[y_train])
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    assert loaded.classes_.dtype == model.classes_.dtype and model.classes_.dtype.kind == "U"
    assert loaded.classes_.tolist() == sorted(names)
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def test_string_labels_held_as_numpy_str_round_trip(digits, tmp_path):
    """Labels that are np.str_ objects in an object array (pandas' string columns give these)
    save as text too."""
    X_train, X_test, y_train, _ = digits
    names = np.array([np.str_(f"digit {k}") for k in range(10)], dtype=object)
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(
        X_train, names[y_train])
    model.classes_ = names  # as an object array of np.str_, whatever fit made of it
    loaded = saved_and_loaded(model, tmp_path / "m.npz")
    assert loaded.classes_.tolist() == names.tolist()


def refused_save(model, path):
    with pytest.raises(ValueError) as error:
        model.save(path)
    assert not path.exists()
    return str(error.value)


def fitted_with_classes(classes):
    """A fitted model whose classes_ were then set by hand: fit and partial_fit make classes_ numbers
    or unicode text (they refuse labels of int objects, "Unknown label type"), so only a user's
    assignment makes them objects."""
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    model = fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, y)
    model.classes_ = model._label_binarizer.classes_ = np.array(classes, dtype=object)
    return model


def test_classes_of_non_string_objects_are_refused(tmp_path):
    message = refused_save(fitted_with_classes([0, 1, 2]), tmp_path / "m.npz")
    assert message.startswith("classes_ hold objects of type int (dtype object), which cannot be "
                              "saved without pickle")


def test_string_labels_that_fixed_width_text_would_change_are_refused(tmp_path):
    model = fitted_with_classes(["a", "b", "c\x00"])  # NumPy's fixed-width text drops trailing NULs
    assert "classes_ hold str labels ending in NUL" in refused_save(model, tmp_path / "m.npz")


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    """A real model file small enough to damage at every byte (about 9 KB)."""
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    path = tmp_path_factory.mktemp("model") / "small.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fastnn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y).save(path)
    return path


def assert_same_model(got, want):
    assert type(got) is type(want) and got.get_params() == want.get_params()
    arrays = [[m.classes_, *m.coefs_, *m.intercepts_, *m._optimizer.state] for m in (got, want)]
    for a, b in zip(*arrays, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for name in ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_", "n_iter_", "t_", "history_",
                 "loss_curve_", "loss_", "best_loss_", "_no_improvement_count"):
        assert getattr(got, name) == getattr(want, name)
    assert got._label_binarizer.y_type_ == want._label_binarizer.y_type_
    assert (got._optimizer.rule, got._optimizer.learning_rate, got._optimizer.t) == (
        want._optimizer.rule, want._optimizer.learning_rate, want._optimizer.t)


def load_or_refuse(path, original):
    """Damage must either leave the model as it was or be a ValueError naming the file."""
    try:
        model = fastnn.load(path)
    except ValueError as error:
        assert str(path) in str(error)
        return "refused"
    assert_same_model(model, original)
    return "same"


def test_truncated_model_files_are_refused_at_every_length(small_model_file, tmp_path):
    data, original = small_model_file.read_bytes(), fastnn.load(small_model_file)
    path = tmp_path / "cut.npz"
    for length in range(len(data)):
        path.write_bytes(data[:length])
        assert load_or_refuse(path, original) == "refused", length


def test_model_files_with_a_flipped_bit_load_the_same_model_or_are_refused(small_model_file, tmp_path):
    """One flipped bit at every byte of the file (bit k mod 8 of byte k)."""
    data, original = small_model_file.read_bytes(), fastnn.load(small_model_file)
    path = tmp_path / "flipped.npz"
    outcomes = []
    for k in range(len(data)):
        damaged = bytearray(data)
        damaged[k] ^= 1 << (k % 8)
        path.write_bytes(damaged)
        outcomes.append(load_or_refuse(path, original))
    # Some zip bookkeeping is never read (time stamps, the creator's version), but every byte of
    # every stored array, .npy header included, is covered by its CRC-32.
    assert all(outcomes[k] == "refused" for k in member_bytes(data))


def member_bytes(data):
    """Positions of the stored members' contents in a zip archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:
                                                                  info.header_offset + 30])
            start = info.header_offset + 30 + name_length + extra_length
            yield from range(start, start + info.compress_size)


@pytest.mark.parametrize("content", [b"PK\x03\x04garbage", b"PK\x05\x06" + b"\x00" * 18, b""],
                         ids=["zip local header", "empty zip directory", "empty file"])
def test_files_that_are_not_zip_archives(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path} is not a fastnn model file"):
        fastnn.load(path)
