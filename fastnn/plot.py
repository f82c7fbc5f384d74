"""Plots of a fitted model's history (needs matplotlib: ``pip install "fastnn[plot]"``)."""


def _figure(**kwargs):
    # A bare Figure needs no GUI backend and leaves pyplot's state alone.
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('fastnn.plot needs matplotlib: pip install "fastnn[plot]"') from error
    return Figure(layout="constrained", **kwargs)


def learning_curve(model, path=None):
    """Loss and training accuracy per epoch, side by side; saved as a PNG when ``path`` is given.

    Returns the matplotlib ``Figure``.
    """
    epochs = range(1, len(model.history_["loss"]) + 1)
    fig = _figure(figsize=(9, 3.5))
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, model.history_["loss"], marker="o")
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.plot(epochs, model.history_["accuracy"], marker="o", color="tab:green")
    acc_ax.set(title="training accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


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
