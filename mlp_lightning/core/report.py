"""What both trainers print, built once: summaries, resume and end-of-run lines, the bar's epoch."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from mlp_lightning.core.tensorboard_schema import METRIC_TAGS, TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS

# both trainers' bars: Lightning's TQDMProgressBar.BAR_FORMAT (its rate never inverted to s/it)
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


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


def done_words(epochs_done: int, steps_done: int) -> str:
    """``6 epochs and 60 steps done``: how far a checkpoint got, in the stop, resume and divergence lines."""
    return (
        f"{epochs_done} {_plural(epochs_done, 'epoch')} and {steps_done} {_plural(steps_done, 'step')} done"
    )


def bar_metrics(metrics: dict[str, float]) -> dict[str, str]:
    """What both bars show after ``Epoch i/N`` and the epoch's steps: each metric tag logged so far."""
    return {tag: f"{metrics[tag]:.3f}" for tag in METRIC_TAGS if tag in metrics}


def resuming_line(run_dir: Path, checkpoint: Path, epochs_done: int, steps_done: int) -> str:
    """What either trainer prints as a ``--resume`` starts."""
    return f"resuming {run_dir} from {checkpoint} ({done_words(epochs_done, steps_done)})"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


SUMMARY_LINES = 30  # at most, however long the run


def report_every(max_epochs: int) -> int:
    """Every 5 epochs, as the reference notebook prints, up to 140 epochs; then the next multiple of 5
    that keeps a run to ``SUMMARY_LINES`` lines (the first and the last epoch included)."""
    return 5 * math.ceil(max_epochs / (5 * (SUMMARY_LINES - 2)))


def should_report(epoch: int, max_epochs: int) -> bool:
    """Epoch 1, every ``report_every(max_epochs)`` epochs, and the last (1-based)."""
    return epoch == 1 or epoch % report_every(max_epochs) == 0 or epoch == max_epochs


def val_line(loss: float, acc: float) -> str:
    """``val loss 0.0681 acc 1.000``: the summaries' validation part, and what evaluate.py prints."""
    return f"val loss {loss:.4f} acc {acc:.3f}"


def scores_line(loss: float, acc: float) -> str:
    """``loss 0.0681 acc 1.000``: evaluate.py's scores on rows that are not a run's validation split."""
    return f"loss {loss:.4f} acc {acc:.3f}"


def epoch_line(epoch: int, metrics: dict[str, float]) -> str:
    """``epoch 05 | train loss 0.0813 acc 0.994 | val loss 0.0681 acc 1.000`` (1-based epoch).

    The val part only where the epoch was validated (a user's Trainer may skip validation).
    """
    line = f"epoch {epoch:02d} | train loss {metrics[TRAIN_LOSS]:.4f} acc {metrics[TRAIN_ACC]:.3f}"
    if VAL_LOSS in metrics:
        line += f" | {val_line(metrics[VAL_LOSS], metrics[VAL_ACC])}"
    return line


def final_report(metrics: dict[str, float], run_dir: Path, logdir: Path, wall_s: float) -> str:
    return "\n".join(
        [
            f"final    | train loss {metrics[TRAIN_LOSS]:.4f} acc {metrics[TRAIN_ACC]:.3f} | "
            f"{val_line(metrics[VAL_LOSS], metrics[VAL_ACC])}",
            f"trained in {wall_s:.1f} s; run directory: {run_dir}",
            f"open it with: tensorboard --logdir {logdir}",
        ]
    )


def resume_hint(script: str, run_dir: Path | str) -> str:
    return f"resume with: python {script} --resume {run_dir}"


def already_finished_line(run_dir: Path | str, epochs_done: int) -> str:
    """What a ``--resume`` of a finished run prints instead of training."""
    return (
        f"run {run_dir} already finished its {epochs_done} {_plural(epochs_done, 'epoch')}: "
        "nothing to resume (pass --max_epochs with more epochs to train it further)"
    )


def stopped_lines(
    prog: str, script: str, signal_name: str, saved_at: tuple[int, int], checkpoint, run_dir
) -> str:
    """A run stopped by a signal: how far it got (``saved_at``: epochs and steps done at its last save),
    what it saved, the command that resumes it."""
    return (
        f"{prog}: stopped by {signal_name} with {done_words(*saved_at)}; "
        f"checkpoint saved to {checkpoint}\n{resume_hint(script, run_dir)}"
    )


def rank_died_lines(
    prog: str, script: str, what: str, saved_at: tuple[int, int] | None, checkpoint, run_dir
) -> str:
    """A multi-process run one of whose processes died: what happened, the checkpoint kept, the resume."""
    if saved_at is None:
        return f"{prog}: {what}; the run stopped before its first checkpoint: start it again"
    epoch, step = saved_at
    return (
        f"{prog}: {what}; the run stopped\nits checkpoint (epoch {epoch + 1}, step {step}) is kept: "
        f"{checkpoint}\n{resume_hint(script, run_dir)}"
    )


def diverged_lines(prog: str, error: Exception, saved_at: tuple[int, int] | None, checkpoint) -> str:
    """A diverged run: what went wrong, and its last good checkpoint (a resume would diverge again)."""
    if saved_at is None:
        return f"{prog}: {error}\nno checkpoint had been saved yet; nothing to resume"
    return (
        f"{prog}: {error}\nthe last good checkpoint ({done_words(*saved_at)}) is kept: {checkpoint}; "
        "to go on, start a new run with a smaller --lr"
    )
