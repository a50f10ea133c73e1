"""The twin's TensorBoard event file: what the Lightning run writes, without torch.

Written with the ``tensorboard`` package's own ``EventFileWriter`` and classic
``simple_value`` scalars, which is what Lightning's TensorBoardLogger writes too, so
TensorBoard's scalar readers return both runs alike and overlay them. The HPARAMS
session, the custom-scalars layout, the run's text and the boundary images are the
summaries ``tensorboard_schema`` builds for both trainers. The writer writes from a thread
that keeps a failed write's error for its next ``flush()``: every epoch is flushed, and a
refused write comes out as ``WriteFailed`` naming the file, as on the Lightning side.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mlp_lightning.core.boundary_image import IMAGE_SIZE
from mlp_lightning.core.errors import WriteFailed
from mlp_lightning.core.tensorboard_schema import (
    EPOCH,
    TRAIN_LOSS_STEP,
    custom_scalars_summary,
    epoch_end_step,
    hparams_session_end,
    hparams_session_start,
    image_summary,
    text_summary,
)
from mlp_lightning.runs.files import event_file_errors


class EventWriter:
    """One run's event file: per-epoch (and per-step) scalars at Lightning's steps, the HPARAMS session, ...

    ``text`` (the run's command and configuration) is written at ``first_step``, where a
    resumed run starts; so is a ``purge_step`` marker, which hides what the earlier files hold
    from that step on (the steps a resume replays are logged again).
    """

    def __init__(
        self,
        run_dir: Path,
        hparams: dict[str, int | float | str],
        run_name: str,
        text: str,
        first_step: int,
        purge_step: int | None = None,
        per_step: bool = False,
    ) -> None:
        self._run_dir = run_dir
        self._epoch_at: int | None = None  # the step `epoch` was last written at: one point per step
        with event_file_errors(run_dir):
            self._writer = EventFileWriter(str(run_dir))
            if purge_step is not None:  # as torch's SummaryWriter(purge_step=...) writes it
                self._writer.add_event(
                    Event(step=purge_step, session_log=SessionLog(status=SessionLog.START))
                )
            # the session first, at step 0, as the Lightning side writes it when fit starts
            for summary in hparams_session_start(hparams, run_name):
                self._add(summary, step=0)
            self._add(custom_scalars_summary(per_step), step=0)
            self._add(text_summary(text), step=first_step)

    def _add(self, summary: Summary, step: int) -> None:
        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def _scalars(self, values: dict[str, float], epoch: int, step: int) -> Summary:
        """``values`` and ``epoch`` (a float, as Lightning logs it), unless ``epoch`` is there at ``step``."""
        if self._epoch_at != step:
            values, self._epoch_at = {**values, EPOCH: float(epoch)}, step
        return Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])

    def step_loss(self, epoch: int, step: int, loss: float) -> None:
        """``train/loss_step`` and the 0-based ``epoch`` at optimizer step ``step``, as Lightning logs it."""
        self._add(self._scalars({TRAIN_LOSS_STEP: float(loss)}, epoch, step), step=step)

    def epoch_scalars(self, epoch: int, steps_per_epoch: int, metrics: dict[str, float]) -> None:
        """``metrics`` and the 0-based ``epoch`` (a float, as Lightning logs it) at the epoch's last step."""
        step = epoch_end_step(epoch, steps_per_epoch)
        summary = self._scalars(metrics, epoch, step)
        with event_file_errors(self._run_dir):
            self._add(summary, step=step)
            # on the disk (or its error raised) before the epoch's checkpoint: a kill after that
            # save must not lose them
            self._writer.flush()

    def boundary_image(self, png: bytes, step: int) -> None:
        """The decision-boundary PNG (``boundary_image.IMAGE_SIZE`` square) at ``step``."""
        self._add(image_summary(png, IMAGE_SIZE, IMAGE_SIZE), step=step)

    def close(self, status: str | None = "STATUS_SUCCESS") -> None:
        """End the HPARAMS session with ``status`` (None: leave it open) and flush the file."""
        with event_file_errors(self._run_dir):
            if status is not None:
                self._add(hparams_session_end(status), step=0)
            self._writer.flush()  # close() alone would not raise the writer thread's error
            self._writer.close()

    def close_after_failure(self, status: str | None) -> None:
        """``close`` on the way out of a failed or stopped run: the error that ended it is reported."""
        with contextlib.suppress(WriteFailed):
            self.close(status)
