"""Plots render to PNG files (skipped without matplotlib)."""

import io

import numpy as np
import pytest

from fastnn import MLPClassifier

pytest.importorskip("matplotlib")
from fastnn import plot  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
EPOCHS = dict(n_iter_no_change=float("inf"))


def test_learning_curve_png(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh", solver="sgd", momentum=0, alpha=0,
                          learning_rate_init=0.05, batch_size=64, max_iter=4, dtype="float64",
                          engine="reference", random_state=0, **EPOCHS)
    held_out = []
    model.fit(X_train, y_train, on_epoch=lambda record: held_out.append(model.score(X_test, y_test)))
    fig = plot.learning_curve(model, tmp_path / "curve.png", held_out=held_out)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert list(fig.axes[0].lines[0].get_ydata()) == model.history_["loss"] == model.loss_curve_
    assert fig.axes[0].get_ylabel() == "training loss"
    [held] = fig.axes[1].lines
    assert held.get_label() == "held-out (after the epoch)" and list(held.get_ydata()) == held_out
    assert list(held.get_xdata()) == [1, 2, 3, 4]
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="held_out has 3 accuracies for 4 epochs"):
        plot.learning_curve(model, held_out=held_out[:3])


def test_learning_curve_of_the_loss_alone_and_of_the_validation_score(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0, **EPOCHS).fit(X_train, y_train)
    fig = plot.learning_curve(model)
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    assert fig.axes[0].get_ylabel() == "training loss (with the L2 term)"  # alpha=1e-4
    model.set_params(early_stopping=True).fit(X_train, y_train)
    fig = plot.learning_curve(model)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation score"]
    assert list(fig.axes[1].lines[0].get_ydata()) == model.validation_scores_
    assert fig.axes[1].lines[0].get_label() == "validation (0.1 of the training data)"
    with pytest.raises(ValueError, match="solver='lbfgs' records none"):
        plot.learning_curve(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=3).fit(
            X_train, y_train))


@pytest.mark.parametrize("epochs", [3, 4, 7, 30])
def test_learning_curve_ticks_whole_epochs(digits, epochs):
    """Matplotlib's default ticks for 4 epochs were 1.0, 1.5, 2.0 ..."""
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=epochs, random_state=0, **EPOCHS)
    held_out = []
    model.fit(X_train, y_train, on_epoch=lambda record: held_out.append(model.score(X_test, y_test)))
    fig = plot.learning_curve(model, held_out=held_out)
    fig.savefig(io.BytesIO())  # drawing labels the ticks
    assert len(fig.axes) == 2
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        shown = [label for label in ax.get_xticklabels() if low <= label.get_position()[0] <= high]
        assert [label.get_text() for label in shown] == [str(int(t)) for t in ticks]


def test_learning_curve_title_holds_the_configuration(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh", solver="sgd", momentum=0, alpha=0,
                          learning_rate_init=0.05, batch_size=len(X_train), max_iter=1, dtype="float64",
                          engine="reference").fit(X_train, y_train)
    title = plot.learning_curve(model).get_suptitle()
    assert "\n" in title  # wrapped to the figure's width
    assert title.replace("\n", " ") == plot.configuration(model) == (
        "hidden layers 32, 16 (tanh), solver sgd, learning_rate_init 0.05, constant rate, "
        "momentum 0, alpha 0, batch_size 1437, float64, reference engine")
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=1).fit(X_train.astype(np.float32), y_train)
    assert plot.configuration(model) == ("hidden layers 8 (relu), solver adam, learning_rate_init 0.001, "
                                         "alpha 0.0001, batch_size auto, float32, fast engine")
    model.set_params(solver="sgd", learning_rate="invscaling")
    assert "invscaling rate, momentum 0.9 (Nesterov)" in plot.configuration(model)


def test_gradient_norms_png(digits, tmp_path):
    X_train, _, y_train, _ = digits
    models = {act: MLPClassifier(hidden_layer_sizes=(16,) * 4, activation=act, max_iter=3,
                                 track_gradients=True, **EPOCHS).fit(X_train, y_train)
              for act in ("logistic", "relu")}
    fig = plot.gradient_norms(models, tmp_path / "grads.png")
    assert len(fig.axes[0].lines) == 5  # one line per layer
    with pytest.raises(ValueError, match="track_gradients=True"):
        plot.gradient_norms({"plain": MLPClassifier(max_iter=1).fit(X_train, y_train)})
