"""The twin's TensorBoard event file: the Lightning run's scalars and HPARAMS session, without torch.

Written with the ``tensorboard`` package's own ``EventFileWriter`` and classic
``simple_value`` scalars, which is what Lightning's TensorBoardLogger writes too, so
TensorBoard's scalar readers return both runs alike and overlay them.
"""

from __future__ import annotations

import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mlp_lightning.core.tensorboard_schema import (
    EPOCH,
    epoch_end_step,
    hparams_session_end,
    hparams_session_start,
)


class EventWriter:
    """One run's event file: per-epoch scalars at Lightning's steps, and the HPARAMS session."""

    def __init__(
        self,
        run_dir: Path,
        hparams: dict[str, int | float | str],
        run_name: str,
        purge_step: int | None = None,
    ) -> None:
        self._writer = EventFileWriter(str(run_dir))
        if purge_step is not None:
            # a resume replays the steps since its checkpoint: TensorBoard hides what the earlier
            # files hold from that step on (torch's SummaryWriter(purge_step=...) writes the same)
            self._writer.add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        # the session first, at step 0, as the Lightning side writes it when fit starts
        for summary in hparams_session_start(hparams, run_name):
            self._add(summary, step=0)

    def _add(self, summary: Summary, step: int) -> None:
        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def epoch_scalars(self, epoch: int, steps_per_epoch: int, metrics: dict[str, float]) -> None:
        """``metrics`` and the 0-based ``epoch`` (a float, as Lightning logs it) at the epoch's last step."""
        values = {**metrics, EPOCH: float(epoch)}
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])
        self._add(summary, step=epoch_end_step(epoch, steps_per_epoch))
        # on disk before the checkpoint that follows: a kill after that save must not lose them
        self._writer.flush()

    def close(self, status: str = "STATUS_SUCCESS") -> None:
        """End the HPARAMS session with ``status`` and flush the file."""
        self._add(hparams_session_end(status), step=0)
        self._writer.close()
