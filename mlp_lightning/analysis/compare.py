"""Two runs side by side, read back through TensorBoard's own event reader.

A run is a ``<logdir>/<trainer>/version_N`` directory written by either trainer: the
four metric tags once per epoch, and an HPARAMS session (start and end) that holds
its hyperparameters (see ``tensorboard_schema``). Reading the event files rather
than any side channel means the comparison sees exactly what TensorBoard shows.
No torch here: the table is NumPy only.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_lightning.core.hparams import HParams, hparam_names
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS, TRAIN_ACC, VAL_ACC
from mlp_lightning.runs.layout import versions

# what run-level parity at --dropout 0 guarantees (tests/test_parity_runs.py checks it)
LOSS_TOLERANCE = 1e-6
ACC_TOLERANCE = 0.0
WEIGHT_TOLERANCE = 1e-6
# with dropout on, what one pair of runs shows: final val accuracies this many validation points apart
VAL_POINTS_TOLERANCE = 1
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(HParams)}


class RunError(ValueError):
    """A run directory is missing, empty or half-written; the message says which and why."""


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
        """The session's hyperparameters as ``HParams`` (TensorBoard stores numbers as floats)."""
        types = _FIELD_TYPES
        values = {k: int(v) if types[k] in (int, "int") else v for k, v in self.hparams.items() if k in types}
        return HParams(**values)


def newest_run(logdir: Path, trainer: str) -> Path:
    """``<logdir>/<trainer>/version_N`` with the highest N."""
    found = versions(Path(logdir) / trainer)
    if not found:
        raise RunError(f"no {trainer} run under {Path(logdir) / trainer}; train one first, or name two runs")
    return Path(logdir) / trainer / f"version_{found[-1]}"


def load_run(path: str | Path) -> Run:
    """Read a run's scalars and HPARAMS session; RunError names what is missing."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import metadata as hp_metadata

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    if not any(path.glob("events.out.tfevents.*")):
        raise RunError(f"{path}: no TensorBoard event file here, so not a run (or it never started)")
    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a torn last record is reported below
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    if not tags["scalars"] and not tags["tensors"]:
        raise RunError(f"{path}: the event file is empty (the run stopped before logging anything)")
    try:
        hp_content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    except KeyError:
        hp_content = {}
    if hp_metadata.SESSION_START_INFO_TAG not in hp_content:
        raise RunError(f"{path}: no HPARAMS session, so its hyperparameters are unknown")
    start = hp_metadata.parse_session_start_info_plugin_data(hp_content[hp_metadata.SESSION_START_INFO_TAG])
    hparams = {name: _hparam_value(value) for name, value in start.hparams.items()}
    if hp_metadata.SESSION_END_INFO_TAG not in hp_content:
        raise RunError(f"{path}: half-written: no HPARAMS session end (still training, or it was stopped)")
    end = hp_metadata.parse_session_end_info_plugin_data(hp_content[hp_metadata.SESSION_END_INFO_TAG])
    if end.status != 1:  # api_pb2.STATUS_SUCCESS
        raise RunError(f"{path}: the run did not finish successfully (session status {end.status})")

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


def _hparam_value(value) -> float | int | str:
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value}.get(
        kind, value.bool_value
    )


def hparam_differences(a: Run, b: Run) -> list[str]:
    """``lr: 0.1 vs 0.05`` for each hyperparameter that differs (or that one run lacks)."""
    order = [n for n in hparam_names() if n in a.hparams or n in b.hparams]
    order += sorted((set(a.hparams) | set(b.hparams)) - set(order))
    missing = "(not set)"
    return [
        f"{name}: {format_hparam(name, a.hparams.get(name, missing))} vs "
        f"{format_hparam(name, b.hparams.get(name, missing))}"
        for name in order
        if a.hparams.get(name) != b.hparams.get(name)
    ]


def format_hparam(name: str, value: float | int | str) -> str:
    """A hyperparameter as its flag takes it: TensorBoard stores every number as a float, so an
    integer field's ``30.0`` prints as ``30``; a float field's ``2.0`` stays ``2.0``."""
    if _FIELD_TYPES.get(name) in (int, "int") and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def differences(a: Run, b: Run) -> dict[str, np.ndarray]:
    """Per tag, ``a - b`` at each epoch both runs logged (E,)."""
    n = min(len(a.steps), len(b.steps))
    return {tag: a.scalars[tag][:n] - b.scalars[tag][:n] for tag in METRIC_TAGS}


def max_differences(a: Run, b: Run) -> dict[str, float]:
    return {tag: float(np.max(np.abs(d))) if len(d) else 0.0 for tag, d in differences(a, b).items()}


def within_parity(a: Run, b: Run) -> list[str]:
    """The tags whose largest difference breaks the --dropout 0 parity guarantee (empty: none)."""
    broken = []
    for tag, worst in max_differences(a, b).items():
        tolerance = ACC_TOLERANCE if tag in (TRAIN_ACC, VAL_ACC) else LOSS_TOLERANCE
        if worst > tolerance:
            broken.append(f"{tag} differs by up to {worst:.3g} (allowed {tolerance:g})")
    return broken


def _dropout(run: Run) -> float:
    return float(run.hparams.get("dropout", HParams().dropout))


def guarantee(a: Run, b: Run) -> str:
    """Which guarantee holds for the pair, as ``--check`` prints it: exact at --dropout 0, else one pair's."""
    shared = "same tags, steps and hyperparameters"
    if _dropout(a) == 0 and _dropout(b) == 0:
        return (
            f"exact (--dropout 0): {shared}; at every epoch losses within {LOSS_TOLERANCE:g} "
            "and accuracies equal"
        )
    dropout = " vs ".join(dict.fromkeys(format_hparam("dropout", _dropout(run)) for run in (a, b)))
    return (
        f"one pair with dropout on (--dropout {dropout}; the trainers draw different masks): {shared}; "
        f"final val/acc within one validation point (1/{a.typed_hparams().n_val})"
    )


def check_pair(a: Run, b: Run) -> list[str]:
    """How the pair breaks the guarantee that ``guarantee`` names for it (empty: it holds)."""
    broken = []
    if a.tags != b.tags:
        only_a, only_b = (", ".join(sorted(set(x.tags) - set(y.tags))) or "none" for x, y in ((a, b), (b, a)))
        broken.append(f"the tags differ (only in A: {only_a}; only in B: {only_b})")
    if (steps := _steps_differ(a, b)) is not None:
        broken.append(f"the steps differ ({steps})")
    changed = hparam_differences(a, b)
    if changed:
        broken.append(f"the hyperparameters differ ({'; '.join(changed)})")
    if _dropout(a) == 0 and _dropout(b) == 0:
        return broken + within_parity(a, b)
    n_val = a.typed_hparams().n_val
    final_a, final_b = a.scalars[VAL_ACC][-1], b.scalars[VAL_ACC][-1]
    points = abs(round(final_a * n_val) - round(final_b * n_val))  # the accuracies are counts / n_val
    if points > VAL_POINTS_TOLERANCE:
        broken.append(
            f"final {VAL_ACC} differs by {points} of {n_val} validation points ({final_a:.4f} vs "
            f"{final_b:.4f}; allowed {VAL_POINTS_TOLERANCE})"
        )
    return broken


def _steps_differ(a: Run, b: Run) -> str | None:
    """Where the two runs' step axes part, or None where they are the same."""
    if len(a.steps) != len(b.steps):
        return f"A logged {len(a.steps)} epochs, B {len(b.steps)}"
    for epoch, (x, y) in enumerate(zip(a.steps.tolist(), b.steps.tolist(), strict=True), start=1):
        if x != y:
            return f"epoch {epoch} is logged at step {x} in A and {y} in B"
    return None


def format_table(a: Run, b: Run) -> str:
    """Per epoch (1-based, as the console prints), each tag's value in A and B and A - B."""
    diffs = differences(a, b)
    head1 = f"{'':>5} {'':>6} " + " ".join(f"{tag:^32}" for tag in METRIC_TAGS)
    head2 = f"{'epoch':>5} {'step':>6} " + " ".join(f"{'A':>10} {'B':>10} {'A - B':>10}" for _ in METRIC_TAGS)
    lines = [f"A = {a.name}   B = {b.name}", head1, head2]
    for i in range(min(len(a.steps), len(b.steps))):
        step = str(a.steps[i]) if a.steps[i] == b.steps[i] else f"{a.steps[i]}/{b.steps[i]}"
        cells = [f"{a.scalars[t][i]:10.6f} {b.scalars[t][i]:10.6f} {diffs[t][i]:10.2e}" for t in METRIC_TAGS]
        lines.append(f"{i + 1:>5} {step:>6} " + " ".join(cells))
    worst = max_differences(a, b)
    lines.append(f"{'max |A - B|':>12} " + " ".join(f"{'':>21} {worst[t]:10.2e}" for t in METRIC_TAGS))
    return "\n".join(lines)


def default_figure_path(a: Run, b: Run, out: Path | None) -> Path:
    """``compare_<A>_vs_<B>.png`` in ``out``, by default in the newer run's directory."""
    directory = out if out is not None else max((a, b), key=lambda r: r.started).path
    name = f"compare_{a.name.replace('/', '-')}_vs_{b.name.replace('/', '-')}.png"
    return Path(directory) / name


def compare_runs(
    a_path: Path | None = None,
    b_path: Path | None = None,
    *,
    logdir: Path = Path("logs"),
    out: Path | None = None,
    force: bool = False,
    check: bool = False,
) -> int:
    """Print the table and write the figure; 1 if ``check`` and the pair breaks its guarantee, else 0."""
    if a_path is None or b_path is None:
        a_path, b_path = newest_run(logdir, "numpy"), newest_run(logdir, "lightning")
    a, b = load_run(a_path), load_run(b_path)
    changed = hparam_differences(a, b)
    if changed and not force:
        raise RunError(
            f"{a.name} and {b.name} were trained with different hyperparameters "
            f"({'; '.join(changed)}); pass --force to compare them anyway"
        )
    if changed:
        print(f"note: the hyperparameters differ: {'; '.join(changed)}")
    print(format_table(a, b))
    from mlp_lightning.analysis.figures import write_comparison_figure

    print(f"figure: {write_comparison_figure(a, b, default_figure_path(a, b, out))}")
    if check:
        print(f"check: {guarantee(a, b)}")
        broken = check_pair(a, b)
        for line in broken:
            print(f"parity broken: {line}")
        if not broken:
            print("check passed: the pair holds to it")
        return 1 if broken else 0
    return 0
