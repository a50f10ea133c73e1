"""Lightning's TensorBoardLogger, whose write errors end the run in one line; hparams.yaml atomic;
one point per tag and step.

TensorBoard's event writer writes from a thread that keeps a failed write's error and raises it
again at the writer's next ``flush()``; Lightning flushes (``save``) after every ``log_metrics``.
Both calls, and the final ``finalize``, turn an OSError into ``WriteFailed`` naming the event
file. ``hparams.yaml`` is written, as Lightning would write it, through the atomic writer first,
so Lightning's own (non-atomic) write finds it there and skips it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from mlp_lightning.core.errors import WriteFailed
from mlp_lightning.runs.files import atomic_write_text, event_file_errors
from mlp_lightning.runs.layout import HPARAMS_FILE


class RunLogger(TensorBoardLogger):
    """A ``TensorBoardLogger`` that reports a refused write as ``WriteFailed``."""

    NAME_HPARAMS_FILE = HPARAMS_FILE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: WriteFailed | None = None  # the event file's refused first write
        self._written: dict[str, tuple[int | None, Any]] = {}  # tag -> (step, value) last written

    @property
    def experiment(self):
        """The SummaryWriter, made on first use (its event file's first write happens here).

        Once that write was refused, asked again (a failing run's ``on_exception``) it raises the
        same error rather than open a second event file.
        """
        if self.refused is not None:
            raise self.refused
        try:
            with event_file_errors(self.log_dir):
                return super().experiment
        except WriteFailed as err:
            self.refused = err
            raise

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # One point per tag and step, as the twin writes them. Lightning adds `epoch` to each call (a
        # step's metrics, the validation's, the training epoch's: all at an epoch's last step), and
        # RunRecord writes the epoch's train metrics before its checkpoint, which Lightning logs after.
        metrics = {tag: v for tag, v in metrics.items() if self._written.get(tag) != (step, v)}
        self._written.update({tag: (step, v) for tag, v in metrics.items()})
        if not metrics:
            return
        with event_file_errors(self.log_dir):
            super().log_metrics(metrics, step)

    @rank_zero_only
    def save(self) -> None:
        path = Path(self.log_dir) / HPARAMS_FILE
        # written again when a resume changed what may change (a longer --max_epochs)
        if self.hparams and Path(self.log_dir).is_dir() and _text_or_none(path) != hparams_yaml(self.hparams):
            atomic_write_text(hparams_yaml(self.hparams), path)
        with event_file_errors(self.log_dir):
            super().save()  # flushes the events

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status == "success":
            with event_file_errors(self.log_dir):
                super().finalize(status)
            return
        # a failed run: the error that ended it is the one to report, not a second one from here
        with contextlib.suppress(OSError, WriteFailed):
            super().finalize(status)


def hparams_yaml(hparams: dict[str, Any]) -> str:
    """``hparams.yaml``'s text as Lightning's ``save_hparams_to_yaml`` writes plain values: ``yaml.dump``.

    A tuple (the data module's ``class_names``) is written as a list: ``yaml.safe_load`` reads no tuples.
    """
    return yaml.dump({k: list(v) if isinstance(v, tuple) else v for k, v in dict(hparams).items()})


def _text_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
