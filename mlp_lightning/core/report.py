"""What both trainers print: summaries, final report, resume line, the bar's epoch; whether to draw a bar."""

from __future__ import annotations

import sys
from pathlib import Path

from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS


def progress_bar_wanted() -> bool:
    """Draw a progress bar only when stdout and stderr are both a terminal.

    A bar redraws its line with carriage returns: in a CI log, under nohup or through
    ``| tee`` those pile up on one line and glue the next message onto them. Both
    streams, since a line written to one must clear the bar drawn on the other.
    """
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def epoch_description(epoch: int, max_epochs: int) -> str:
    """A progress bar's ``Epoch 3/30``: 1-based, as the summary lines and the messages count."""
    return f"Epoch {epoch}/{max_epochs}"


def resuming_line(run_dir: Path, checkpoint: Path, epochs_done: int, steps_done: int) -> str:
    """What either trainer prints as a ``--resume`` starts."""
    return (
        f"resuming {run_dir} from {checkpoint} "
        f"({epochs_done} {_plural(epochs_done, 'epoch')} and {steps_done} {_plural(steps_done, 'step')} done)"
    )


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


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
