"""Plots render to PNG files (skipped without matplotlib)."""

import io

import pytest

from fastnn import MLPClassifier

pytest.importorskip("matplotlib")
from fastnn import plot  # noqa: E402


def test_learning_curve_png(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh", learning_rate=0.05,
                          batch_size=64, epochs=4, dtype="float64", engine="reference", random_state=0)
    held_out = []
    model.fit(X_train, y_train, on_epoch=lambda record: held_out.append(model.score(X_test, y_test)))
    fig = plot.learning_curve(model, tmp_path / "curve.png", held_out=held_out)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert list(fig.axes[0].lines[0].get_ydata()) == model.history_["loss"]
    training, held = fig.axes[1].lines
    assert (training.get_label(), held.get_label()) == ("training (during the epoch)",
                                                        "held-out (after the epoch)")
    assert list(training.get_ydata()) == model.history_["accuracy"]
    assert list(held.get_ydata()) == held_out
    assert (tmp_path / "curve.png").stat().st_size > 10_000


@pytest.mark.parametrize("epochs", [3, 4, 7, 30])
def test_learning_curve_ticks_whole_epochs(digits, epochs):
    """Matplotlib's default ticks for 4 epochs were 1.0, 1.5, 2.0 ..."""
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=epochs, random_state=0).fit(X_train, y_train)
    fig = plot.learning_curve(model)
    fig.savefig(io.BytesIO())  # drawing labels the ticks
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        shown = [label for label in ax.get_xticklabels() if low <= label.get_position()[0] <= high]
        assert [label.get_text() for label in shown] == [str(int(t)) for t in ticks]


def test_learning_curve_title_holds_the_configuration(digits):
    X_train, _, y_train, _ = digits
    model = MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh", learning_rate=0.05, batch_size=None,
                          epochs=1, dtype="float64", engine="reference").fit(X_train, y_train)
    title = plot.learning_curve(model).get_suptitle()
    assert title == "hidden layers 32, 16 (tanh), learning rate 0.05, full batch, float64, reference engine"


def test_gradient_norms_png(digits, tmp_path):
    X_train, _, y_train, _ = digits
    models = {act: MLPClassifier(hidden_layer_sizes=(16,) * 4, activation=act, epochs=3,
                                 track_gradients=True).fit(X_train, y_train)
              for act in ("sigmoid", "relu")}
    fig = plot.gradient_norms(models, tmp_path / "grads.png")
    assert len(fig.axes[0].lines) == 5  # one line per layer
    with pytest.raises(ValueError, match="track_gradients=True"):
        plot.gradient_norms({"plain": MLPClassifier(epochs=1).fit(X_train, y_train)})
