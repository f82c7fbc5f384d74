"""Save and load fitted models as one ``.npz`` file, without pickle.

The file holds ``format_version``, the hyper-parameters and training history as
JSON text, ``classes``, ``n_features_in``, and ``weight_<l>`` / ``bias_<l>``
per layer. Loading never unpickles (:mod:`fastnn._npz` refuses object
arrays): a model file cannot run code. It checks every byte (each member's
CRC-32) and what the arrays and parameters say, so that a damaged file loads
the very model that was saved or is refused with a ``ValueError`` naming it.
"""

import json
import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import _validation as check
from ._npz import read_npz

FORMAT_VERSION = 1


def save(model, path):
    """Write a fitted :class:`~fastnn.MLPClassifier` to ``path`` (a ``.npz``)."""
    check_is_fitted(model, "weights_")
    params = model.get_params()
    if not isinstance(params["random_state"], (numbers.Integral, type(None))):
        params["random_state"] = None  # a Generator has no portable text form
    classes = _savable_classes(np.asarray(model.classes_))
    arrays = {f"weight_{l}": W for l, W in enumerate(model.weights_)}
    arrays.update({f"bias_{l}": B for l, B in enumerate(model.biases_)})
    history = {key: np.asarray(values).tolist() for key, values in model.history_.items()}
    np.savez(path, format_version=np.array(FORMAT_VERSION), classes=classes,
             n_features_in=np.array(model.n_features_in_),
             params=np.array(json.dumps(params)), history=np.array(json.dumps(history)),
             **arrays)


def _savable_classes(classes):
    """``classes`` as an array that loads without pickle: numbers, bools or fixed-width text.

    pandas hands text labels over as an object array of ``str``; it becomes a
    unicode array, which loads back equal unless a label ends in NUL.
    """
    if classes.dtype.kind in "iufbU":
        return classes
    types = sorted({type(c).__name__ for c in classes})
    if classes.dtype.kind != "O" or types != ["str"]:
        raise ValueError(f"classes_ hold objects of type {', '.join(types)} (dtype {classes.dtype}), "
                         "which cannot be saved without pickle; fit with labels that are numbers or str")
    text = classes.astype(str)
    if not (text == classes).all():
        raise ValueError("classes_ hold str labels ending in NUL characters, which a saved text "
                         "array drops; fit with labels that do not end in NUL")
    return text


def load(path, model_class):
    """Read a model written by :func:`save` into a new ``model_class`` (what
    :func:`fastnn.load` passes: :class:`~fastnn.MLPClassifier`).

    Raises ``ValueError`` naming the file and the problem for a file that is
    not a model, is truncated or damaged, is of another format version, or
    holds missing or inconsistent arrays or parameters.
    """
    data = read_npz(path, "a fastnn model file")
    if "format_version" not in data:
        raise ValueError(f"{path} is not a fastnn model file: it has no format_version")
    version = data["format_version"]
    if not (version.shape == () and version.dtype.kind == "i" and version == FORMAT_VERSION):
        raise ValueError(f"{path} has model format version {version.tolist()}; this fastnn reads "
                         f"version {FORMAT_VERSION}")
    try:
        model = _model(data, model_class)
        _check_arrays(model)
    except (KeyError, TypeError, ValueError) as error:
        reason = error.args[0] if isinstance(error, KeyError) else error  # KeyError's str adds quotes
        raise ValueError(f"{path} is a damaged fastnn model file: {reason}") from error
    return model


def _array(data, name):
    if name not in data:
        raise KeyError(f"it has no array {name!r}")
    return data[name]


def _scalar(data, name, kind):
    """A 0-d array of an integer (``kind`` "i") or of text ("U"), as a Python value."""
    value = _array(data, name)
    if value.shape != () or value.dtype.kind != kind:
        raise TypeError(f"{name} is a {value.dtype} array of shape {value.shape}, not one "
                        f"{'integer' if kind == 'i' else 'text'}")
    return value.item()


def _model(data, model_class):
    params = json.loads(_scalar(data, "params", "U"))
    if not isinstance(params, dict):
        raise TypeError(f"params is a JSON {type(params).__name__}, not an object")
    model = model_class(**params)
    check.check_params(model)
    n_layers = max(1, sum(key.startswith("weight_") for key in data))  # none: "no array 'weight_0'"
    model.weights_ = [_array(data, f"weight_{l}") for l in range(n_layers)]
    model.biases_ = [_array(data, f"bias_{l}") for l in range(n_layers)]
    model.classes_ = _classes(_array(data, "classes"))
    model.n_features_in_ = _scalar(data, "n_features_in", "i")
    model.history_ = _history(json.loads(_scalar(data, "history", "U")))
    model.loss_curve_ = model.history_["loss"]
    model.n_iter_ = len(model.loss_curve_)
    return model


def _classes(classes):
    # predict and score look labels up by binary search: they must be sorted and distinct.
    if classes.ndim != 1 or classes.dtype.kind not in "iufbU" or len(classes) < 2 or not np.array_equal(
            np.unique(classes), classes):
        raise ValueError(f"classes is not a sorted list of two or more distinct labels: {classes!r}")
    return classes


def _history(history):
    lists = isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
    if not (lists and {"loss", "accuracy", "time"} <= set(history)
            and len({len(v) for v in history.values()}) == 1):
        raise ValueError("history does not hold equally long lists of loss, accuracy and time per epoch")
    return history


def _check_arrays(model):
    model._check_parameter_arrays()
    widths = [W.shape[0] for W in model.weights_[:-1]]
    hidden = list(check.hidden_layer_sizes(model.hidden_layer_sizes))
    if widths != hidden:
        raise ValueError(f"its layers have {widths} units, its hidden_layer_sizes parameter says {hidden}")
    for l, (W, B) in enumerate(zip(model.weights_, model.biases_)):
        if W.dtype != np.dtype(model.dtype):
            raise ValueError(f"layer {l} is {W.dtype}, its dtype parameter says {model.dtype}")
        if not (np.isfinite(W).all() and np.isfinite(B).all()):
            raise ValueError(f"layer {l} holds NaN or inf")
