"""Plots of a fitted model's history (needs matplotlib: ``pip install "fastnn[plot]"``)."""

import textwrap

import numpy as np

# Characters of title per inch of figure width that fit at the title's font size.
TITLE_CHARS_PER_INCH = 11


def _figure(**kwargs):
    # A bare Figure needs no GUI backend and leaves pyplot's state alone.
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('fastnn.plot needs matplotlib: pip install "fastnn[plot]"') from error
    return Figure(layout="constrained", **kwargs)


def learning_curve(model, path=None, held_out=None):
    """The training loss per epoch (``history_["loss"]``), and beside it the held-out accuracy per
    epoch, under the model's configuration; saved as a PNG when ``path`` is given.

    ``held_out``: accuracy on held-out data after each epoch (e.g. recorded with ``fit``'s
    ``on_epoch``, as ``fastnn train --plot`` does). Without it, a model fitted with
    ``early_stopping`` shows its validation score per epoch (``history_["validation_score"]``);
    otherwise the loss is drawn alone. Returns the matplotlib ``Figure``.
    """
    from matplotlib.ticker import MaxNLocator

    losses = model.history_["loss"]
    if not losses:
        raise ValueError(f"the model has no loss per epoch to draw (solver={model.solver!r} records none)")
    epochs = range(1, len(losses) + 1)
    scores = None
    if held_out is not None:
        if len(held_out) != len(losses):
            raise ValueError(f"held_out has {len(held_out)} accuracies for {len(losses)} epochs")
        scores = (held_out, "accuracy", "held-out accuracy", "held-out (after the epoch)")
    elif "validation_score" in model.history_:
        scores = (model.history_["validation_score"], "validation score", "validation score",
                  f"validation ({model.validation_fraction:g} of the training data)")
    width = 9 if scores else 5
    fig = _figure(figsize=(width, 3.8))
    axes = fig.subplots(1, 2 if scores else 1, squeeze=False)[0]
    axes[0].plot(epochs, losses, marker="o")
    l2 = " (with the L2 term)" if model.alpha else ""
    axes[0].set(title="loss", xlabel="epoch", ylabel=f"training loss{l2}")
    if scores:
        values, title, ylabel, label = scores
        axes[1].plot(epochs, values, marker="s", color="tab:orange", label=label)
        axes[1].set(title=title, xlabel="epoch", ylabel=ylabel)
        axes[1].legend()
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
    # The configuration on as many lines as the figure's width needs, broken between words.
    fig.suptitle(textwrap.fill(configuration(model), TITLE_CHARS_PER_INCH * width), fontsize="medium")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def configuration(model):
    """The parameters that shape a learning curve, with the estimator's names, as one line of text."""
    sizes = ", ".join(str(size) for size in np.atleast_1d(model.hidden_layer_sizes))
    parts = [f"hidden layers {sizes} ({model.activation})", f"solver {model.solver}"]
    if model.solver != "lbfgs":
        parts.append(f"learning_rate_init {model.learning_rate_init:g}")
    if model.solver == "sgd":
        nesterov = " (Nesterov)" if model.nesterovs_momentum and model.momentum > 0 else ""
        parts.append(f"{model.learning_rate} rate, momentum {model.momentum:g}{nesterov}")
    parts.append(f"alpha {model.alpha:g}")
    if model.solver != "lbfgs":
        parts.append(f"batch_size {model.batch_size}")
    if model.dtype is not None:
        dtype = np.dtype(model.dtype).name
    else:  # X's, as the fit kept it
        dtype = np.dtype(model.coefs_[0].dtype).name if hasattr(model, "coefs_") else "dtype of X"
    return ", ".join(parts + [dtype, f"{model.engine} engine"])


def gradient_norms(models, path=None):
    """Per-layer weight-gradient norms per epoch (log scale), one panel per model.

    ``models`` maps a title to a model fitted with ``track_gradients=True``.
    Returns the matplotlib ``Figure``.
    """
    fig = _figure(figsize=(4.5 * len(models), 3.5))
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)
    for ax, (title, model) in zip(axes[0], models.items()):
        if "grad_norms" not in model.history_:
            raise ValueError(f"model {title!r} was not fitted with track_gradients=True")
        norms = [list(epoch) for epoch in model.history_["grad_norms"]]
        for layer in range(len(norms[0])):
            ax.plot(range(1, len(norms) + 1), [n[layer] for n in norms], label=f"layer {layer + 1}")
        ax.set(title=title, xlabel="epoch", ylabel="mean ‖dW‖", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
