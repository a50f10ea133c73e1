"""A run read back through TensorBoard's own event reader, as TensorBoard shows it.

A run is a ``<logdir>/<trainer>/version_N`` directory written by either trainer: the
four metric tags once per epoch, and an HPARAMS session (start and end) that holds
its hyperparameters (see ``tensorboard_schema``). Reading the event files rather
than any side channel means the comparison sees exactly what TensorBoard shows.
No torch here.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_lightning.core.errors import ConfigError, RunError
from mlp_lightning.core.hparams import HParams, validate
from mlp_lightning.core.quoted import quoted
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS
from mlp_lightning.runs.layout import run_name, versions
from mlp_lightning.runs.outcome import failed_in_epoch, failure_words, newest_not_failed

FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(HParams)}
# the integer hyperparameters, by their resolved default (max_epochs is Optional[int]: None is the set's own)
INT_FIELDS = frozenset(f.name for f in dataclasses.fields(HParams) if type(getattr(HParams(), f.name)) is int)


@dataclass(frozen=True)
class Run:
    path: Path
    hparams: dict[str, float | int | str]
    steps: np.ndarray  # (E,) the global step of each epoch's metrics
    scalars: dict[str, np.ndarray]  # tag -> (E,) float64, one value per epoch
    started: float  # wall time of the first event
    tags: tuple[str, ...] = ()  # every scalar tag in the run, sorted

    @property
    def name(self) -> str:
        """``numpy/version_3``: the trainer and the version, as TensorBoard lists the run."""
        return f"{self.path.parent.name}/{self.path.name}"

    def typed_hparams(self) -> HParams:
        """The session's hyperparameters as ``HParams`` (TensorBoard stores numbers as floats), validated as
        the command line's are: a received run's sizes are bounded before anything is built from them."""
        values = {k: int(v) if k in INT_FIELDS else v for k, v in self.hparams.items() if k in FIELD_TYPES}
        for name in ("class_names", "drop"):  # the tab holds a list of names as one string, ", "-joined
            if isinstance(values.get(name), str):
                values[name] = tuple(values[name].split(", ")) if values[name] else ()
        hp = HParams(**values)
        try:  # the names as one string may have split at a ", " inside a name: the sizes are what matter here
            validate(dataclasses.replace(hp, class_names=()))
            return hp
        except ConfigError as err:
            raise RunError(f"{self.path}: its HPARAMS session holds a bad hyperparameter: {err}") from None


def newest_run(logdir: Path, trainer: str) -> Path:
    """``<logdir>/<trainer>/version_N`` with the highest N whose run did not fail (diverged, crashed); a note
    on stdout names the newer ones passed over and why."""
    found = versions(Path(logdir) / trainer)
    if not found:
        raise RunError(f"no {trainer} run under {Path(logdir) / trainer}; train one first, or name two runs")
    run_dir = newest_not_failed([Path(logdir) / run_name(trainer, v) for v in reversed(found)], "compare.py")
    if run_dir is None:
        raise RunError(f"every {trainer} run under {Path(logdir) / trainer} failed; train one that finishes")
    return run_dir


def load_run(path: str | Path) -> Run:
    """Read a run's scalars and HPARAMS session; RunError names what is missing."""
    from tensorboard.plugins.hparams import metadata as hp_metadata

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    if not any(path.glob("events.out.tfevents.*")):
        raise RunError(f"{path}: no TensorBoard event file here, so not a run (or it never started)")
    acc = _accumulator(path)
    tags = acc.Tags()
    if not tags["scalars"] and not tags["tensors"]:
        raise RunError(f"{path}: the event file is empty (the run stopped before logging anything)")
    hp_content = _hparams_content(acc)
    if hp_metadata.SESSION_START_INFO_TAG not in hp_content:
        raise RunError(f"{path}: no HPARAMS session, so its hyperparameters are unknown")
    start = hp_metadata.parse_session_start_info_plugin_data(hp_content[hp_metadata.SESSION_START_INFO_TAG])
    hparams = {name: _hparam_value(value) for name, value in start.hparams.items()}
    for name in INT_FIELDS & set(hparams):  # TensorBoard stores them as floats: whole ones
        value = hparams[name]
        if not (isinstance(value, bool | int) or (isinstance(value, float) and value.is_integer())):
            raise RunError(f"{path}: its HPARAMS session holds {name} {quoted(value)}, not an integer")
    if hp_metadata.SESSION_END_INFO_TAG not in hp_content:
        raise RunError(f"{path}: half-written: no HPARAMS session end (still training, or it was stopped)")
    end = hp_metadata.parse_session_end_info_plugin_data(hp_content[hp_metadata.SESSION_END_INFO_TAG])
    if end.status != 1:  # api_pb2.STATUS_SUCCESS
        epoch = failed_in_epoch(path)
        why = failure_words(epoch) if epoch is not None else "it did not finish"
        raise RunError(f"{path}: {why}; compare a run that finished")

    missing = [tag for tag in METRIC_TAGS if tag not in tags["scalars"]]
    if missing:
        raise RunError(f"{path}: half-written: no {', '.join(missing)} scalars")
    series = {tag: acc.Scalars(tag) for tag in METRIC_TAGS}
    steps = np.array([e.step for e in series[METRIC_TAGS[0]]], dtype=np.int64)
    for tag, events in series.items():
        if [e.step for e in events] != steps.tolist():
            raise RunError(f"{path}: half-written: {tag} is logged at other steps than {METRIC_TAGS[0]}")
    if np.any(np.diff(steps) <= 0):
        raise RunError(f"{path}: steps repeat, so several runs wrote into this directory; compare one")
    expected = int(hparams.get("max_epochs", len(steps)))
    if len(steps) != expected:
        raise RunError(f"{path}: half-written: {len(steps)} epochs logged, max_epochs is {expected}")
    scalars = {tag: np.array([e.value for e in events], dtype=np.float64) for tag, events in series.items()}
    return Run(
        path=path, hparams=hparams, steps=steps, scalars=scalars, started=acc.FirstEventTimestamp(),
        tags=tuple(sorted(tags["scalars"])),
    )  # fmt: skip


def _accumulator(path: Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a torn last record is reported by the caller
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def _hparams_content(acc) -> dict:
    from tensorboard.plugins.hparams import metadata as hp_metadata

    try:
        return acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    except KeyError:
        return {}


def ended_in_failure(path: str | Path) -> bool:
    """Whether the run's HPARAMS session ended as failed (diverged or crashed), not stopped to be resumed."""
    return failed_in_epoch(path) is not None


def _hparam_value(value) -> float | int | str:
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value}.get(
        kind, value.bool_value
    )


def differences(a: Run, b: Run) -> dict[str, np.ndarray]:
    """Per tag, ``a - b`` at each epoch both runs logged (E,)."""
    n = min(len(a.steps), len(b.steps))
    return {tag: a.scalars[tag][:n] - b.scalars[tag][:n] for tag in METRIC_TAGS}


def max_differences(a: Run, b: Run) -> dict[str, float]:
    return {tag: float(np.max(np.abs(d))) if len(d) else 0.0 for tag, d in differences(a, b).items()}
