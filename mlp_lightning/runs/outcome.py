"""How a run ended, as its event file tells: which runs a bare ``--resume`` or ``compare.py`` passes over.

A run whose HPARAMS session ended as failed (it diverged, or an error ended it) cannot serve as "the
newest run": a resume of it would diverge again or finds no checkpoint, and it has no finished
curves to compare. Read with TensorBoard's own event reader; no torch here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mlp_lightning.core.tensorboard_schema import VAL_LOSS


def failed_in_epoch(run_dir: str | Path) -> int | None:
    """The 1-based epoch in which the run ended in failure; None if it did not (finished, stopped, or
    still training)."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata as hp_metadata

    if not any(Path(run_dir).glob("events.out.tfevents.*")):
        return None
    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a torn last record: read what is whole
    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    try:
        end = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME).get(hp_metadata.SESSION_END_INFO_TAG)
    except KeyError:
        return None
    if end is None or hp_metadata.parse_session_end_info_plugin_data(end).status != api_pb2.STATUS_FAILURE:
        return None
    return len(acc.Scalars(VAL_LOSS)) + 1 if VAL_LOSS in acc.Tags()["scalars"] else 1


def failure_words(epoch: int) -> str:
    """``it failed in epoch 1 (diverged, or an error ended it)``: why a newer run was passed over."""
    return f"it failed in epoch {epoch} (diverged, or an error ended it)"


def newest_not_failed(
    run_dirs: list[Path], who: str | None, still_serves: Callable[[Path], bool] = lambda run_dir: False
) -> Path | None:
    """The first of ``run_dirs`` (newest first) that did not fail, or that failed but ``still_serves``;
    a note on stdout, from ``who`` (None: no note), names the newer ones passed over and why. None when
    every one failed."""
    skipped = []
    for run_dir in run_dirs:
        if (epoch := failed_in_epoch(run_dir)) is None or still_serves(run_dir):
            if skipped and who is not None:
                newer = "; ".join(f"{_name(d)}: {failure_words(e)}" for d, e in skipped)
                print(f"note: {who} skipped the newer {newer}; it takes {_name(run_dir)}", flush=True)
            return run_dir
        skipped.append((run_dir, epoch))
    return None


def _name(run_dir: Path) -> str:
    return f"{run_dir.parent.name}/{run_dir.name}"
