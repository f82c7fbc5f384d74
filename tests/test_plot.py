"""Plots render to PNG files (skipped without matplotlib)."""

import pytest

from fastnn import MLPClassifier

pytest.importorskip("matplotlib")
from fastnn import plot  # noqa: E402


def test_learning_curve_png(digits, tmp_path):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(epochs=4, random_state=0).fit(X_train, y_train)
    fig = plot.learning_curve(model, tmp_path / "curve.png")
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "training accuracy"]
    assert list(fig.axes[0].lines[0].get_ydata()) == model.history_["loss"]
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_gradient_norms_png(digits, tmp_path):
    X_train, _, y_train, _ = digits
    models = {act: MLPClassifier(hidden_layer_sizes=(16,) * 4, activation=act, epochs=3,
                                 track_gradients=True).fit(X_train, y_train)
              for act in ("sigmoid", "relu")}
    fig = plot.gradient_norms(models, tmp_path / "grads.png")
    assert len(fig.axes[0].lines) == 5  # one line per layer
    with pytest.raises(ValueError, match="track_gradients=True"):
        plot.gradient_norms({"plain": MLPClassifier(epochs=1).fit(X_train, y_train)})
