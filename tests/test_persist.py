"""Save / load: round trip, and clear errors for files that are not models."""

import json

import numpy as np
import pytest

import fastnn
from fastnn._persist import FORMAT_VERSION


@pytest.fixture(scope="module")
def model(digits):
    X_train, _, y_train, _ = digits
    names = np.array([f"digit {k}" for k in range(10)])
    return fastnn.MLPClassifier(hidden_layer_sizes=(20, 10), epochs=2, random_state=1,
                                track_gradients=True).fit(X_train, names[y_train])


def test_round_trip(model, digits, tmp_path):
    _, X_test, _, _ = digits
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.get_params() == {**model.get_params(), "hidden_layer_sizes": [20, 10]}
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    for got, want in zip(loaded.weights_ + loaded.biases_, model.weights_ + model.biases_):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == 2
    np.testing.assert_allclose(loaded.history_["grad_norms"], model.history_["grad_norms"])


def rewrite(path, **changes):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, match", [
    ({"format_version": np.array(FORMAT_VERSION + 1)}, "format version 2; this fastnn reads version 1"),
    ({"format_version": None}, "not a fastnn model file: it has no format_version"),
    ({"bias_1": None}, "damaged fastnn model file"),
    ({"params": np.array("{not json")}, "damaged fastnn model file"),
    ({"weight_0": np.zeros((20, 3), np.float32)}, "layer 0 has weight shape"),
    ({"weight_0": np.zeros((20, 64))}, "layer 0 is float64/float32"),
    ({"weight_1": np.full((10, 20), np.nan, np.float32)}, "holds NaN or inf"),
    ({"classes": np.arange(3)}, "10 outputs for 3 classes"),
    ({"weight_0": np.array([{}] * 3, dtype=object)}, "allow_pickle=False"),
])
def test_damaged_model_files(model, tmp_path, change, match):
    path = tmp_path / "m.npz"
    model.save(path)
    rewrite(path, **change)
    with pytest.raises(ValueError, match=match):
        fastnn.load(path)


def test_not_a_model_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load(tmp_path / "junk.npz")


def test_saved_params_are_plain_json(model, tmp_path):
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert json.loads(str(data["params"]))["learning_rate"] == 0.1


def test_a_loaded_model_trains_on(model, digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    names = np.array([f"digit {k}" for k in range(10)])
    loaded.partial_fit(X_train, names[y_train])
    assert loaded.n_iter_ == 3 and len(loaded.loss_curve_) == 3
    assert loaded.loss_curve_[-1] < loaded.loss_curve_[0]


def test_string_labels_of_dtype_object_round_trip(digits, tmp_path):
    """pandas gives text columns as object arrays of str; they save as fixed-width text."""
    X_train, X_test, y_train, _ = digits
    names = np.array([f"digit {k}" for k in range(10)], dtype=object)
    model = fastnn.MLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0).fit(
        X_train, names[y_train])
    assert model.classes_.dtype == object
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.classes_.dtype.kind == "U" and loaded.classes_.tolist() == sorted(names)
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def refused_save(model, path):
    with pytest.raises(ValueError) as error:
        model.save(path)
    assert not path.exists()
    return str(error.value)


def test_classes_of_non_string_objects_are_refused(tmp_path):
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    model = fastnn.MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    # fit refuses labels of int objects ("Unknown label type"); partial_fit takes such classes.
    model.partial_fit(X, y, classes=np.array([0, 1, 2], dtype=object))
    message = refused_save(model, tmp_path / "m.npz")
    assert message.startswith("classes_ hold objects of type int (dtype object), which cannot be "
                              "saved without pickle")


def test_string_labels_that_fixed_width_text_would_change_are_refused(tmp_path):
    X, y = np.random.default_rng(0).random((30, 4)), np.empty(30, dtype=object)
    y[:] = ["a", "b", "c\x00"] * 10  # NumPy's fixed-width text drops trailing NULs
    model = fastnn.MLPClassifier(hidden_layer_sizes=(4,), epochs=1, random_state=0).fit(X, y)
    assert "classes_ hold str labels ending in NUL" in refused_save(model, tmp_path / "m.npz")
