"""Save / load: round trip, and clear errors for files that are not models."""

import io
import json
import struct
import zipfile

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
    ({"format_version": np.array([FORMAT_VERSION])}, r"format version \[1\]; this fastnn reads version 1"),
    ({"weight_1": None, "bias_1": None}, "damaged fastnn model file: it has no array 'weight_1'"),
    ({"weight_0": None, "weight_1": None, "weight_2": None}, "it has no array 'weight_0'"),
    ({"weight_1": np.array(1.0, np.float32)}, "layer 1 has weight shape"),
    ({"params": np.array("[1, 2]")}, "params is a JSON list, not an object"),
    ({"params": np.array('{"depth": 3}')}, "unexpected keyword argument 'depth'"),
    ({"params": np.array('{"hidden_layer_sizes": [20, 10], "activation": "softplus"}')},
     "activation must be one of"),
    ({"params": np.array('{"hidden_layer_sizes": [20]}')}, r"hidden_layer_sizes parameter says \[20\]"),
    ({"classes": np.array([f"digit {k}" for k in range(10)][::-1])}, "classes is not a sorted list"),
    ({"n_features_in": np.array([64, 64])}, r"n_features_in is a int64 array of shape \(2,\), not one"),
    ({"history": np.array('{"loss": [1.0, 0.5]}')}, "history does not hold equally long lists"),
    ({"weight_0": np.array([{}] * 3, dtype=object)},
     "array 'weight_0' holds Python objects, which load only by unpickling, and fastnn never unpickles"),
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
        layers = {key: data[key].astype(np.float64) for key in data.files
                  if key.startswith(("weight_", "bias_"))}
    rewrite(path, **layers)
    with pytest.raises(ValueError, match="layer 0 is float64, its dtype parameter says float32"):
        fastnn.load(path)


def test_not_a_model_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.npz is not a fastnn model file: it is not a zip archive"):
        fastnn.load(tmp_path / "junk.npz")  # np.load would have spoken of pickled data


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


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    """A real model file small enough to damage at every byte (about 4 KB)."""
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    path = tmp_path_factory.mktemp("model") / "small.npz"
    fastnn.MLPClassifier(hidden_layer_sizes=(3,), epochs=2, random_state=0).fit(X, y).save(path)
    return path


def assert_same_model(got, want):
    assert got.get_params() == want.get_params()
    for a, b in zip([got.classes_, *got.weights_, *got.biases_],
                    [want.classes_, *want.weights_, *want.biases_], strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for name in ("n_features_in_", "history_", "n_iter_"):
        assert getattr(got, name) == getattr(want, name)


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
