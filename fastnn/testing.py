"""Check the fast engine against the reference on your own data and settings."""

import numpy as np

from .estimator import MLPClassifier

# Whole-run bounds on max|p_fast − p_ref| over every weight and bias p, relative to the
# largest reference parameter, per dtype. (Relative to the model, not to each array: a
# bias that ends near 0 by cancellation keeps the absolute rounding of its terms.)
# Each step's GEMMs and sums round differently in the two engines (BLAS vs
# NumPy order). On the digits runs of tests/test_training.py the drift measured
# at most 4.3e-7 (float32) and 9.7e-16 (float64) (bench/drift.py). The bounds hold
# for stable training; a chaotic run (e.g. batch_size=1, ReLU, learning_rate=0.1,
# where a 1e-15 nudge to some weights changes the result by O(1), also shown by
# bench/drift.py) amplifies any rounding.
TRAINING_RTOL = {"float64": 1e-12, "float32": 1e-5}


def assert_engines_equal(X, y, *, X_test=None, rtol=None, **params):
    """Fit ``engine="fast"`` and ``engine="reference"`` alike and compare them.

    Both fits use the same ``params`` (``random_state`` defaults to 0, so the
    initial weights and every shuffle are the same). Asserts that every weight
    and bias agrees within ``rtol · max|reference parameter|`` (default
    :data:`TRAINING_RTOL` for the dtype), that the loss curves agree to the
    same bound, and that the predicted labels on ``X_test`` (default ``X``) are
    identical.

    Returns
    -------
    (fast_model, reference_model)
    """
    params.setdefault("random_state", 0)
    fast = MLPClassifier(engine="fast", **params).fit(X, y)
    ref = MLPClassifier(engine="reference", **params).fit(X, y)
    rtol = TRAINING_RTOL[np.dtype(fast.weights_[0].dtype).name] if rtol is None else rtol
    pairs = list(zip(fast.weights_ + fast.biases_, ref.weights_ + ref.biases_))
    scale = max(float(np.max(np.abs(want))) for _, want in pairs)
    for layer, (got, want) in enumerate(pairs):
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale,
                                   err_msg=f"parameter array {layer} differs between engines")
    np.testing.assert_allclose(fast.loss_curve_, ref.loss_curve_, rtol=rtol,
                               err_msg="loss curves differ between engines")
    X_test = X if X_test is None else X_test
    np.testing.assert_array_equal(fast.predict(X_test), ref.predict(X_test),
                                  err_msg="predicted labels differ between engines")
    return fast, ref
