"""The console lines both trainers print: per-epoch summaries and the final report."""

from __future__ import annotations

from pathlib import Path

from mlp_lightning.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS


def should_report(epoch: int, max_epochs: int) -> bool:
    """Print epochs 1, 5, 10, ... and the last (1-based), as the reference notebook does."""
    return epoch == 1 or epoch % 5 == 0 or epoch == max_epochs


def epoch_line(epoch: int, metrics: dict[str, float]) -> str:
    """``epoch 05 | train loss 0.0813 acc 0.994 | val loss 0.0681 acc 1.000`` (1-based epoch)."""
    return (
        f"epoch {epoch:02d} | "
        f"train loss {metrics[TRAIN_LOSS]:.4f} acc {metrics[TRAIN_ACC]:.3f} | "
        f"val loss {metrics[VAL_LOSS]:.4f} acc {metrics[VAL_ACC]:.3f}"
    )


def final_report(metrics: dict[str, float], run_dir: Path, logdir: Path, wall_s: float) -> str:
    return "\n".join(
        [
            f"final    | train loss {metrics[TRAIN_LOSS]:.4f} acc {metrics[TRAIN_ACC]:.3f} | "
            f"val loss {metrics[VAL_LOSS]:.4f} acc {metrics[VAL_ACC]:.3f}",
            f"trained in {wall_s:.1f} s; run directory: {run_dir}",
            f"open it with: tensorboard --logdir {logdir}",
        ]
    )
