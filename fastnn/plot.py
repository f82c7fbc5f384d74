"""Plots of a fitted model's history (needs matplotlib: ``pip install "fastnn[plot]"``)."""

import numpy as np


def _figure(**kwargs):
    # A bare Figure needs no GUI backend and leaves pyplot's state alone.
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('fastnn.plot needs matplotlib: pip install "fastnn[plot]"') from error
    return Figure(layout="constrained", **kwargs)


def learning_curve(model, path=None, held_out=None):
    """Loss and accuracy per epoch, side by side, under the model's configuration;
    saved as a PNG when ``path`` is given.

    ``held_out``: accuracy on held-out data after each epoch (e.g. recorded with
    ``fit``'s ``on_epoch``), drawn beside the training accuracy. Returns the
    matplotlib ``Figure``.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = range(1, len(model.history_["loss"]) + 1)
    fig = _figure(figsize=(9, 3.8))
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, model.history_["loss"], marker="o")
    loss_ax.set(title="loss", xlabel="epoch", ylabel="training cross-entropy")
    # The training accuracy is measured like the loss, in each batch's forward pass before its update.
    acc_ax.plot(epochs, model.history_["accuracy"], marker="o", color="tab:green",
                label="training (during the epoch)")
    if held_out is not None:
        acc_ax.plot(epochs, held_out, marker="s", color="tab:orange", label="held-out (after the epoch)")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
    fig.suptitle(configuration(model))
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def configuration(model):
    """The hyper-parameters that shape a learning curve, as one line of text."""
    sizes = ", ".join(str(size) for size in np.atleast_1d(model.hidden_layer_sizes))
    batch = "full batch" if model.batch_size is None else f"batch size {model.batch_size}"
    return (f"hidden layers {sizes} ({model.activation}), learning rate {model.learning_rate:g}, {batch}, "
            f"{np.dtype(model.dtype).name}, {model.engine} engine")


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
