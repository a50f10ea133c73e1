"""The comparison figure: learning curves of two runs on shared axes, and their decision boundaries.

Drawn with matplotlib's Agg backend (no display needed). The boundaries are computed
by one NumPy forward pass for both weight sets, so the two panels differ only where
the weights do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlp_lightning.analysis.logged_run import Run, max_differences
from mlp_lightning.core.boundary_image import GRID_MARGIN, grid_axes
from mlp_lightning.core.columns import Columns, plain_columns, shown_name
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.runs.files import atomic_write_bytes

# weights, X (N, D) -> logits (N, C)
Forward = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]

_RUN_COLORS = ("tab:blue", "tab:orange")
# run A wide and pale under run B: where the twins agree, B's line runs inside A's
_RUN_LINEWIDTHS = (5.0, 1.5)
_RUN_ALPHAS = (0.4, 1.0)
GRID_POINTS = 200  # per axis of the decision-boundary grid
MAX_LEGEND_CLASSES = 10  # classes named in a boundary panel's legend


def decision_grid(
    weights: dict[str, np.ndarray], forward: Forward, X: np.ndarray, margin: float = GRID_MARGIN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xx, yy (G, G) spanning ``X`` plus ``margin``, and the predicted class at each point (G, G)."""
    xx, yy = np.meshgrid(*grid_axes(X, GRID_POINTS, margin))  # the span the logged images use
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(weights["W1"].dtype)  # (G*G, 2)
    return xx, yy, forward(weights, points).argmax(axis=1).reshape(xx.shape)


def comparison_figure(
    runs: tuple[Run, Run],
    out: Path,
    weights: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
    val_data: tuple[np.ndarray, np.ndarray] | None = None,
    forward: Forward | None = None,
    columns: Columns | None = None,
) -> Path:
    """Write the PNG: loss and accuracy curves; with 2-D ``val_data`` and ``weights``, the boundaries
    (``columns`` names their axes and classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boundaries = weights is not None and val_data is not None and forward is not None
    rows = 2 if boundaries else 1
    fig, axes = plt.subplots(rows, 2, figsize=(10, 4.2 * rows), squeeze=False)
    for (label, train_tag, val_tag), ax in zip(
        (("loss", TRAIN_LOSS, VAL_LOSS), ("accuracy", TRAIN_ACC, VAL_ACC)), axes[0], strict=True
    ):
        for run, color, lw, alpha in zip(runs, _RUN_COLORS, _RUN_LINEWIDTHS, _RUN_ALPHAS, strict=True):
            epochs = np.arange(1, len(run.steps) + 1)
            style = {"color": color, "linewidth": lw, "alpha": alpha}
            ax.plot(epochs, run.scalars[train_tag], **style, label=f"{run.name} train")
            ax.plot(epochs, run.scalars[val_tag], **style, linestyle="--", label=f"{run.name} val")
        ax.set(xlabel="epoch", ylabel=label, title=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_yscale("log")
    if boundaries:
        X, y = val_data
        columns = columns or plain_columns(X.shape[1], weights[0]["b2"].shape[0])
        for run, w, ax in zip(runs, weights, axes[1], strict=True):
            _boundary_panel(ax, run, w, forward, X, y, columns)
    worst = max_differences(*runs)
    fig.suptitle(
        f"{runs[0].name} vs {runs[1].name}: largest per-epoch |difference| "
        + ", ".join(f"{tag} {worst[tag]:.2g}" for tag in (TRAIN_LOSS, VAL_LOSS, TRAIN_ACC, VAL_ACC)),
        fontsize=10,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(buffer.getvalue(), Path(out))
    return Path(out)


def write_comparison_figure(a: Run, b: Run, path: Path) -> Path:
    """The curves, and both decision boundaries where the data is 2-D and both runs left weights."""
    from mlp_lightning.analysis.export import load_model_file, run_weights_file
    from mlp_lightning.core.data import load_splits
    from mlp_lightning.core.errors import WeightsError
    from mlp_lightning.core.quoted import printable
    from mlp_lightning.numpy_twin.model import forward
    from mlp_lightning.runs.layout import CHECKPOINT_DIR, LIGHTNING_CHECKPOINT, TWIN_WEIGHTS

    hp = a.typed_hparams()
    files = [run_weights_file(run.path) for run in (a, b)]
    if hp.dim != 2 or None in files:
        reason = (
            f"--dim is {hp.dim}"
            if hp.dim != 2
            else f"a run has no {TWIN_WEIGHTS} or {CHECKPOINT_DIR}/{LIGHTNING_CHECKPOINT}"
        )
        print(f"note: no decision boundaries: {reason}")
        return comparison_figure((a, b), path)
    try:
        (weights_a, columns), (weights_b, _) = (load_model_file(f) for f in files)
    except WeightsError as err:
        print(f"note: no decision boundaries: {printable(str(err))}")
        return comparison_figure((a, b), path)
    _, _, Xva, yva = load_splits(hp)  # as the models take them: standardized where the run was
    return comparison_figure(
        (a, b), path, weights=(weights_a, weights_b), val_data=(Xva, yva),
        forward=lambda w, X: forward(X, w)[0], columns=columns,
    )  # fmt: skip


def _boundary_panel(
    ax, run: Run, weights: dict, forward: Forward, X: np.ndarray, y: np.ndarray, columns: Columns
) -> None:
    xx, yy, grid_pred = decision_grid(weights, forward, X)
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    n_classes = weights["b2"].shape[0]
    # two classes: blue and red as in the notebook; more: one distinct colour each (tab10, then repeats)
    colours = (
        matplotlib.colormaps["coolwarm"]([0.0, 1.0])
        if n_classes == 2
        else [f"C{k % 10}" for k in range(n_classes)]
    )
    cmap = ListedColormap(colours)
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(xx, yy, grid_pred, levels=levels, cmap=cmap, alpha=0.3)
    pred = forward(weights, X.astype(weights["W1"].dtype)).argmax(axis=1)
    wrong = pred != y
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, s=12, edgecolors="none")
    ring = ax.scatter(
        X[wrong, 0], X[wrong, 1], facecolors="none", edgecolors="black", s=40, label="misclassified"
    )
    scaled = " (standardized)" if columns.standardized else ""
    xlabel, ylabel = (f"{_plain(name)}{scaled}" for name in columns.feature_names)
    title = f"{run.name}: val acc {np.mean(~wrong):.3f} ({wrong.sum()} wrong)"
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    handles = [  # each class by name, in its colour (the first ten); then the ring, if any point is wrong
        Line2D([], [], marker="o", linestyle="", markersize=5, color=colours[k], label=_plain(name))
        for k, name in enumerate(columns.class_names[:MAX_LEGEND_CLASSES])
    ]
    ax.legend(handles=handles + ([ring] if wrong.any() else []), fontsize=8, loc="upper left")


def _plain(name: str) -> str:
    """A column or class name for a figure: escaped and cut as messages show it, without the quotes."""
    return shown_name(name)[1:-1]
