"""Save and load fitted models as one ``.npz`` file, without pickle.

The file holds ``format_version``, the hyper-parameters and training history as
JSON text, ``classes``, ``n_features_in``, and ``weight_<l>`` / ``bias_<l>``
per layer. Loading uses ``allow_pickle=False``: a model file cannot run code.
"""

import json
import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .estimator import MLPClassifier

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


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a fastnn model file: {error}") from error


def load(path):
    """Read a model written by :meth:`MLPClassifier.save`.

    Raises ``ValueError`` naming the problem for a file of another format
    version, a file that is not a model, or one with missing or inconsistent arrays.
    """
    data = _read(path)
    if "format_version" not in data:
        raise ValueError(f"{path} is not a fastnn model file: it has no format_version")
    version = int(data["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has model format version {version}; this fastnn reads version "
                         f"{FORMAT_VERSION}")
    try:
        model = MLPClassifier(**json.loads(str(data["params"])))
        n_layers = sum(key.startswith("weight_") for key in data)
        model.weights_ = [data[f"weight_{l}"] for l in range(n_layers)]
        model.biases_ = [data[f"bias_{l}"] for l in range(n_layers)]
        model.classes_ = data["classes"]
        model.n_features_in_ = int(data["n_features_in"])
        model.history_ = json.loads(str(data["history"]))
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is a damaged fastnn model file: {error!r}") from error
    _check_shapes(model, path)
    model.loss_curve_ = model.history_["loss"]
    model.n_iter_ = len(model.loss_curve_)
    return model


def _check_shapes(model, path):
    try:
        model._check_parameter_arrays()
    except ValueError as error:
        raise ValueError(f"{path} is a damaged fastnn model file: {error}") from error
    for l, (W, B) in enumerate(zip(model.weights_, model.biases_)):
        if W.dtype != np.dtype(model.dtype):
            raise ValueError(f"{path} is a damaged fastnn model file: layer {l} is {W.dtype}, "
                             f"its dtype parameter says {model.dtype}")
        if not (np.isfinite(W).all() and np.isfinite(B).all()):
            raise ValueError(f"{path} is a damaged fastnn model file: layer {l} holds NaN or inf")
