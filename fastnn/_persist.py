"""Save and load fitted models as one ``.npz`` file, without pickle.

The file holds ``format_version``, ``model_class`` (``MLPClassifier`` or
``MLPRegressor``), the parameters (``get_params()``), the training history and
the solver's bookkeeping as JSON text; ``coef_<l>`` / ``intercept_<l>`` per
layer; ``n_features_in``, ``n_outputs``, ``n_layers``, ``n_iter``, ``t`` and
``out_activation``; for a classifier ``classes`` and ``y_type`` (what its label
binarizer decodes predictions with); the optimizer's state arrays
(``optimizer_<k>``), so that ``partial_fit`` or a warm start goes on from where
the saved model was; and ``feature_names_in`` when the model was fitted on named
columns. Loading never unpickles (:mod:`fastnn._npz` refuses object arrays): a
model file cannot run code. It checks every byte (each member's CRC-32) and what
the arrays and parameters say, so that a damaged file loads the very model that
was saved or is refused with a ``ValueError`` naming it.
"""

import json
import numbers

import numpy as np
from sklearn.base import is_classifier
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from . import _validation as check
from ._npz import read_npz

FORMAT_VERSION = 2

# The targets a classifier's label binarizer knows, and the output layer each one takes.
Y_TYPES = {"binary": "logistic", "multiclass": "softmax", "multilabel-indicator": "logistic"}
OUTPUT_OF_LOSS = {"squared_error": "identity", "poisson": "exp"}
# What the stochastic solvers keep between fits (partial_fit, warm_start), saved as JSON.
FIT_STATE = ("loss_", "best_loss_", "best_validation_score_", "validation_scores_", "_no_improvement_count")


def _json(value):
    # NumPy scalars and arrays in parameters (hidden_layer_sizes=np.array([...])) as plain JSON.
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, (np.generic, np.ndarray))
                      else str(v))


def save(model, path, command_line=None):
    """Write a fitted :class:`~fastnn.MLPClassifier` or :class:`~fastnn.MLPRegressor` to ``path``
    (a ``.npz``). ``command_line``: what ``fastnn train`` records of how it read the data (a
    JSON-able dict, :func:`read_command_line` gives it back); loading the model ignores it."""
    check_is_fitted(model, "coefs_")
    params = model.get_params()
    if not isinstance(params["random_state"], (numbers.Integral, type(None))):
        params["random_state"] = None  # a RandomState has no portable text form
    if params["dtype"] is not None:
        params["dtype"] = check.dtype_name(params["dtype"])  # np.float32 → "float32"
    arrays = {f"coef_{l}": np.asarray(W) for l, W in enumerate(model.coefs_)}
    arrays.update({f"intercept_{l}": np.asarray(B) for l, B in enumerate(model.intercepts_)})
    history = {key: np.asarray(values).tolist() for key, values in model.history_.items()}
    state = {name: getattr(model, name) for name in FIT_STATE if hasattr(model, name)}
    optimizer = getattr(model, "_optimizer", None)
    if optimizer is not None:
        state["optimizer"] = {"rule": optimizer.rule, "learning_rate": optimizer.learning_rate,
                              "t": optimizer.t}
        arrays.update({f"optimizer_{k}": s for k, s in enumerate(optimizer.state)})
    if hasattr(model, "classes_"):
        arrays["classes"] = _savable_classes(np.asarray(model.classes_))
        arrays["y_type"] = np.array(model._label_binarizer.y_type_)
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(model.feature_names_in_, dtype=str)
    if command_line is not None:
        arrays["command_line"] = np.array(_json(command_line))
    np.savez(path, format_version=np.array(FORMAT_VERSION), model_class=np.array(type(model).__name__),
             params=np.array(_json(params)), history=np.array(_json(history)),
             fit_state=np.array(_json(state)), n_features_in=np.array(model.n_features_in_),
             n_outputs=np.array(model.n_outputs_), n_layers=np.array(model.n_layers_),
             n_iter=np.array(model.n_iter_), t=np.array(model.t_),
             out_activation=np.array(model.out_activation_), **arrays)


def _savable_classes(classes):
    """``classes`` as an array that loads without pickle: numbers, bools or fixed-width text.

    pandas hands text labels over as an object array of ``str``; it becomes a
    unicode array, which loads back equal unless a label ends in NUL.
    """
    if classes.dtype.kind in "iufbU":
        return classes
    types = sorted({type(c).__name__ for c in classes})
    if classes.dtype.kind != "O" or not all(isinstance(c, str) for c in classes):  # np.str_ too
        raise ValueError(f"classes_ hold objects of type {', '.join(types)} (dtype {classes.dtype}), "
                         "which cannot be saved without pickle; fit with labels that are numbers or str")
    text = classes.astype(str)
    if not (text == classes).all():
        raise ValueError("classes_ hold str labels ending in NUL characters, which a saved text "
                         "array drops; fit with labels that do not end in NUL")
    return text


def load(path, model_classes):
    """Read a model written by :func:`save` into a new instance of the class it names, looked
    up in ``model_classes`` (what :func:`fastnn.load` passes: ``{"MLPClassifier": ...,
    "MLPRegressor": ...}``).

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
        name = _scalar(data, "model_class", "U")
        if name not in model_classes:
            raise ValueError(f"model_class is {name!r}, not one of {', '.join(model_classes)}")
        model = _model(data, model_classes[name])
        _check_arrays(model)
    except (KeyError, TypeError, ValueError) as error:
        reason = error.args[0] if isinstance(error, KeyError) else error  # KeyError's str adds quotes
        raise ValueError(f"{path} is a damaged fastnn model file: {reason}") from error
    return model


def read_command_line(path):
    """What ``fastnn train`` recorded in the model file at ``path`` (an empty dict for a model
    saved from Python); ``ValueError`` naming the file for a damaged record."""
    data = read_npz(path, "a fastnn model file")
    if "command_line" not in data:
        return {}
    try:
        return _json_object(data, "command_line")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} is a damaged fastnn model file: {error}") from error


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


def _count(data, name, least=0):
    value = _scalar(data, name, "i")
    if value < least:
        raise ValueError(f"{name} is {value}, less than {least}")
    return value


def _json_object(data, name):
    value = json.loads(_scalar(data, name, "U"))
    if not isinstance(value, dict):
        raise TypeError(f"{name} is a JSON {type(value).__name__}, not an object")
    return value


def _model(data, model_class):
    params = _json_object(data, "params")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])  # as given, unless a list
    model = model_class(**params)
    model._check_params()  # scikit-learn's checks, then finite floats and the hidden layer sizes
    n_layers = max(1, sum(key.startswith("coef_") for key in data))  # none: "no array 'coef_0'"
    model.coefs_ = [_array(data, f"coef_{l}") for l in range(n_layers)]
    model.intercepts_ = [_array(data, f"intercept_{l}") for l in range(n_layers)]
    model.n_features_in_ = _count(data, "n_features_in", 1)
    model.n_outputs_ = _count(data, "n_outputs", 1)
    model.n_layers_ = _count(data, "n_layers", 2)
    model.n_iter_ = _count(data, "n_iter")
    model.t_ = _count(data, "t")
    model.out_activation_ = _scalar(data, "out_activation", "U")
    if "feature_names_in" in data:
        names = data["feature_names_in"]
        if names.shape != (model.n_features_in_,) or names.dtype.kind != "U":
            raise ValueError(f"feature_names_in is a {names.dtype} array of shape {names.shape}, not "
                             f"{model.n_features_in_} names")
        model.feature_names_in_ = names.astype(object)
    if is_classifier(model):
        model.classes_ = _classes(_array(data, "classes"))
        model._label_binarizer = _label_binarizer(model.classes_, _scalar(data, "y_type", "U"))
    model.history_ = _history(json.loads(_scalar(data, "history", "U")))
    if model.solver != "lbfgs":
        model.loss_curve_ = model.history_["loss"]
    _fit_state(model, _json_object(data, "fit_state"), data)
    return model


def _classes(classes):
    # predict and score look labels up by binary search: they must be sorted and distinct.
    if classes.ndim != 1 or classes.dtype.kind not in "iufbU" or len(classes) < 2 or not np.array_equal(
            np.unique(classes), classes):
        raise ValueError(f"classes is not a sorted list of two or more distinct labels: {classes!r}")
    return classes


def _label_binarizer(classes, y_type):
    """The fitted ``LabelBinarizer`` that fit made from the targets (predict decodes with it)."""
    if y_type not in Y_TYPES:
        raise ValueError(f"y_type is {y_type!r}, not one of {', '.join(Y_TYPES)}")
    if y_type == "binary" and len(classes) != 2 or y_type == "multiclass" and len(classes) < 3:
        raise ValueError(f"y_type is {y_type} for {len(classes)} classes")
    binarizer = LabelBinarizer()
    binarizer.classes_, binarizer.y_type_, binarizer.sparse_input_ = classes, y_type, False
    return binarizer


def _history(history):
    lists = isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
    if not (lists and {"loss", "time"} <= set(history) and len({len(v) for v in history.values()}) == 1):
        raise ValueError("history does not hold equally long lists of loss and time per epoch")
    return history


def _fit_state(model, state, data):
    """The solver's bookkeeping between fits, and the optimizer with its state arrays."""
    optimizer = state.pop("optimizer", None)
    if not set(state) <= set(FIT_STATE):
        raise ValueError(f"fit_state holds {sorted(set(state) - set(FIT_STATE))}, which fastnn does not know")
    for name, value in state.items():
        if not (value is None or isinstance(value, numbers.Real) or isinstance(value, list) and all(
                isinstance(v, numbers.Real) for v in value)):
            raise TypeError(f"fit_state's {name} is {value!r}, not a number, a list of numbers or null")
        setattr(model, name, value)
    if "_no_improvement_count" in state and not isinstance(state["_no_improvement_count"], int):
        raise TypeError(f"fit_state's _no_improvement_count is {state['_no_improvement_count']!r}, "
                        "not an int")
    if optimizer is None:
        return
    if not (isinstance(optimizer, dict) and set(optimizer) == {"rule", "learning_rate", "t"}
            and isinstance(optimizer["t"], int) and isinstance(optimizer["learning_rate"], numbers.Real)):
        raise TypeError(f"fit_state's optimizer is {optimizer!r}, not a rule, a learning rate and a "
                        "step count")
    size = sum(np.size(a) for a in model.coefs_ + model.intercepts_)
    model._optimizer = model._new_optimizer(np.zeros(size, np.asarray(model.coefs_[0]).dtype))
    if optimizer["rule"] != model._optimizer.rule:
        raise ValueError(f"the optimizer is {optimizer['rule']}, its parameters say {model._optimizer.rule}")
    model._optimizer.state = tuple(_array(data, f"optimizer_{k}") for k in range(len(model._optimizer.state)))
    model._optimizer.learning_rate, model._optimizer.t = float(optimizer["learning_rate"]), optimizer["t"]


def _check_arrays(model):
    """The layers form the network the parameters and counts describe, in one float dtype, finite."""
    coefs, intercepts = model.coefs_, model.intercepts_
    for l, (W, B) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or B.ndim != 1 or B.shape[0] != W.shape[1]:
            raise ValueError(f"layer {l} has coef shape {W.shape} and intercept shape {B.shape}")
        rows = model.n_features_in_ if l == 0 else coefs[l - 1].shape[1]
        if W.shape[0] != rows:
            raise ValueError(f"layer {l} has coef shape {W.shape} after {rows} units")
    widths = [W.shape[1] for W in coefs[:-1]]
    hidden = list(check.hidden_layer_sizes(model.hidden_layer_sizes))
    if widths != hidden:
        raise ValueError(f"its layers have {widths} units, its hidden_layer_sizes parameter says {hidden}")
    if model.n_layers_ != len(coefs) + 1 or model.n_outputs_ != coefs[-1].shape[1]:
        raise ValueError(f"n_layers is {model.n_layers_} and n_outputs {model.n_outputs_} for layers of "
                         f"coef shapes {[W.shape for W in coefs]}")
    _check_outputs(model)
    dtype = np.dtype(check.dtype_name(model.dtype if model.dtype is not None else coefs[0].dtype))
    optimizer = getattr(model, "_optimizer", None)
    for l, (W, B) in enumerate(zip(coefs, intercepts)):
        for what, array in (("coef", W), ("intercept", B)):
            if array.dtype != dtype:
                said = (f"its dtype parameter says {model.dtype}" if model.dtype is not None
                        else f"layer 0 is {dtype}")
                raise ValueError(f"layer {l} {what} is {array.dtype}, {said}")
            if not np.isfinite(array).all():
                raise ValueError(f"layer {l} holds NaN or inf")
    for k, state in enumerate(optimizer.state if optimizer is not None else ()):
        size = sum(W.size + B.size for W, B in zip(coefs, intercepts))
        if state.shape != (size,) or state.dtype != dtype:
            raise ValueError(f"optimizer state {k} is a {state.dtype} array of shape {state.shape}, not "
                             f"{size} {dtype} numbers")
        if not np.isfinite(state).all():
            raise ValueError(f"optimizer state {k} holds NaN or inf")


def _check_outputs(model):
    if is_classifier(model):
        y_type, n_classes = model._label_binarizer.y_type_, len(model.classes_)
        outputs = 1 if y_type == "binary" else n_classes
        activation = Y_TYPES[y_type]
        if model.n_outputs_ != outputs:
            raise ValueError(f"it has {model.n_outputs_} outputs for {n_classes} classes ({y_type})")
    else:
        activation = OUTPUT_OF_LOSS[model.loss]
    if model.out_activation_ != activation:
        raise ValueError(f"out_activation is {model.out_activation_!r} where its targets take {activation!r}")
