"""What both trainers write to TensorBoard: the tags, their step, the HPARAMS session.

One definition for the project (no torch here; the NumPy twin imports it):
- ``train/loss``, ``train/acc``: mean over the epoch's training batches, weighted by
  batch size, as measured during training (dropout on, weights changing);
- ``val/loss``, ``val/acc``: the whole validation split, eval mode, after the epoch;
- ``epoch``: the 0-based epoch index, beside them.
All five are written once per epoch at the step Lightning's TensorBoardLogger uses
for epoch-level metrics: the index of the epoch's last optimizer step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

# The tensorboard imports sit inside the functions that build protos: they take longer
# than numpy itself (the hparams plugin pulls in TensorBoard's TensorFlow stub), and the
# tag names below are wanted without them.

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
EPOCH = "epoch"
METRIC_TAGS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC)
ALL_TAGS = (*METRIC_TAGS, EPOCH)


def epoch_end_step(epoch: int, steps_per_epoch: int) -> int:
    """Global step of epoch ``epoch``'s (0-based) metrics: its last optimizer step."""
    return (epoch + 1) * steps_per_epoch - 1


def hparams_session_start(hparams: dict[str, int | float | str], run_name: str) -> list[Summary]:
    """The HPARAMS tab's experiment config and session start, for ``hparams``.

    The metric columns are the four metric tags, so the tab shows each run's last
    values beside its hyperparameters.
    """
    from tensorboard.plugins.hparams import summary_v2 as hp_summary

    config = hp_summary.hparams_config_pb(
        hparams=[hp_summary.HParam(name) for name in hparams],
        metrics=[hp_summary.Metric(tag) for tag in METRIC_TAGS],
    )
    start = hp_summary.hparams_pb(hparams, trial_id=run_name)
    return [config, start]


def hparams_session_end(status: str = "STATUS_SUCCESS") -> Summary:
    """Ends the session: ``STATUS_SUCCESS`` or ``STATUS_FAILURE`` (a stopped run, to be resumed, has none)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata as hp_metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    info = SessionEndInfo(status=api_pb2.Status.Value(status))
    metadata = hp_metadata.create_summary_metadata(HParamsPluginData(session_end_info=info))
    value = Summary.Value(
        tag=hp_metadata.SESSION_END_INFO_TAG, metadata=metadata, tensor=hp_metadata.NULL_TENSOR
    )
    return Summary(value=[value])
