"""Check the fast engine against the reference on your own data and settings."""

import numpy as np

from .estimator import MLPClassifier

# Whole-run bounds on max|p_fast − p_ref| over every weight and bias p, relative to the
# largest reference parameter, per dtype. (Relative to the model, not to each array: a
# bias that ends near 0 by cancellation keeps the absolute rounding of its terms.)
# Each step's GEMMs and sums round differently in the two engines (BLAS vs
# NumPy order). On the plain-SGD digits runs of tests/test_training.py the drift measured
# at most 3.5e-7 (float32) and 9.3e-16 (float64) (bench/drift.py). The bounds hold for
# stable training; a chaotic run (e.g. batch_size=1, ReLU, plain SGD at
# learning_rate_init=0.1, where a 1e-15 nudge to some weights changes the result by O(1),
# also shown by bench/drift.py) amplifies any rounding.
TRAINING_RTOL = {"float64": 1e-12, "float32": 1e-5}


def parameters(model):
    """Every parameter array of a fitted model: ``coefs_`` then ``intercepts_``."""
    return list(model.coefs_) + list(model.intercepts_)


def assert_engines_equal(X, y, *, X_test=None, rtol=None, estimator=MLPClassifier, **params):
    """Fit ``engine="fast"`` and ``engine="reference"`` alike and compare them.

    Both fits use the same ``params`` of ``estimator`` (:class:`~fastnn.MLPClassifier` or
    :class:`~fastnn.MLPRegressor`; ``random_state`` defaults to 0, so the initial weights
    and every shuffle are the same). Asserts that every coefficient and intercept agrees
    within ``rtol · max|reference parameter|`` (default :data:`TRAINING_RTOL` for the
    dtype), that both ran as many iterations, that the loss curves (stochastic solvers)
    or final losses agree to the same bound, and that the predicted labels on ``X_test``
    (default ``X``) are identical (a regressor's predictions: within the bound relative to
    the largest reference prediction, or 1 if larger).

    Returns
    -------
    (fast_model, reference_model)
    """
    params.setdefault("random_state", 0)
    fast = estimator(engine="fast", **params).fit(X, y)
    ref = estimator(engine="reference", **params).fit(X, y)
    rtol = TRAINING_RTOL[np.dtype(fast.coefs_[0].dtype).name] if rtol is None else rtol
    pairs = list(zip(parameters(fast), parameters(ref)))
    scale = max(float(np.max(np.abs(want))) for _, want in pairs)
    for layer, (got, want) in enumerate(pairs):
        assert got.shape == want.shape and got.dtype == want.dtype, f"parameter array {layer} differs in kind"
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale,
                                   err_msg=f"parameter array {layer} differs between engines")
    assert fast.n_iter_ == ref.n_iter_, f"the engines ran {fast.n_iter_} and {ref.n_iter_} iterations"
    if hasattr(ref, "loss_curve_"):
        np.testing.assert_allclose(fast.loss_curve_, ref.loss_curve_, rtol=rtol,
                                   err_msg="loss curves differ between engines")
    np.testing.assert_allclose(fast.loss_, ref.loss_, rtol=rtol, err_msg="losses differ between engines")
    X_test = X if X_test is None else X_test
    got, want = fast.predict(X_test), ref.predict(X_test)
    if hasattr(ref, "classes_"):
        np.testing.assert_array_equal(got, want, err_msg="predicted labels differ between engines")
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * max(1.0, float(np.max(np.abs(want)))),
                                   err_msg="predictions differ between engines")
    return fast, ref
