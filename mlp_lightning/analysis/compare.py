"""Two runs side by side: the hyperparameters they differ in, a table per epoch, the parity check, a figure.

The runs are read back as TensorBoard shows them (``logged_run``). No torch here.
"""

from __future__ import annotations

from pathlib import Path

from mlp_lightning.analysis.figures import write_comparison_figure
from mlp_lightning.analysis.logged_run import (
    INT_FIELDS,
    Run,
    differences,
    load_run,
    max_differences,
    newest_run,
)
from mlp_lightning.core.errors import RunError
from mlp_lightning.core.hparams import HParams, hparam_names
from mlp_lightning.core.quoted import quoted_text
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS, TRAIN_ACC, VAL_ACC
from mlp_lightning.runs.layout import LIGHTNING_TRAINER, NUMPY_TRAINER
from mlp_lightning.runs.lock import hold_run_of

# what run-level parity guarantees at any --dropout (tests/test_parity_runs.py checks it): the twins
# draw the same dropout masks, from the run's stream (core/dropout.py)
LOSS_TOLERANCE = 1e-6
ACC_TOLERANCE = 0.0
WEIGHT_TOLERANCE = 1e-6


def hparam_differences(a: Run, b: Run) -> list[str]:
    """``lr: 0.1 vs 0.05`` for each hyperparameter that differs (or that one run lacks)."""
    order = [n for n in hparam_names() if n in a.hparams or n in b.hparams]
    order += sorted((set(a.hparams) | set(b.hparams)) - set(order))
    missing = "(not set)"
    return [
        f"{quoted_text(name)}: {format_hparam(name, a.hparams.get(name, missing))} vs "
        f"{format_hparam(name, b.hparams.get(name, missing))}"
        for name in order
        if a.hparams.get(name) != b.hparams.get(name)
    ]


def global_batch_processes(a: Run, b: Run) -> int | None:
    """W where one run is a W-process Lightning run at ``--batch_size b`` and the other trains on the
    same global batch, ``W * b``: the only hyperparameter they differ in is batch_size, by that whole
    factor, and their step axes are the same (the number of global batches an epoch is cut into
    depends on ``W * b``). None where the pair is not that."""
    if [name for name in hparam_names() if a.hparams.get(name) != b.hparams.get(name)] != ["batch_size"]:
        return None
    (small, large) = sorted((a, b), key=lambda run: run.hparams["batch_size"])
    processes, rest = divmod(int(large.hparams["batch_size"]), int(small.hparams["batch_size"]))
    ddp = small.path.parent.name == LIGHTNING_TRAINER
    if rest or processes < 2 or not ddp or _steps_differ(a, b) is not None:
        return None
    return processes


def format_hparam(name: str, value: float | int | str) -> str:
    """A hyperparameter as its flag takes it: TensorBoard stores every number as a float, so an
    integer field's ``30.0`` prints as ``30``; a float field's ``2.0`` stays ``2.0``."""
    if name in INT_FIELDS and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return quoted_text(str(value))  # the run's event file may come from someone else: escaped, bounded


def within_parity(a: Run, b: Run) -> list[str]:
    """The tags whose largest difference breaks the exact parity guarantee (empty: none)."""
    broken = []
    for tag, worst in max_differences(a, b).items():
        tolerance = ACC_TOLERANCE if tag in (TRAIN_ACC, VAL_ACC) else LOSS_TOLERANCE
        if worst > tolerance:
            broken.append(f"{tag} differs by up to {worst:.3g} (allowed {tolerance:g})")
    return broken


def _dropout(run: Run) -> float:
    return float(run.hparams.get("dropout", HParams().dropout))


def guarantee(a: Run, b: Run) -> str:
    """The guarantee ``--check`` applies, as it prints it: exact, at any --dropout (the same masks)."""
    dropout = " vs ".join(dict.fromkeys(f"{_dropout(run):g}" for run in (a, b)))
    return (
        f"exact (--dropout {dropout}: the same data, weights, batches and dropout masks): same tags, "
        f"steps and hyperparameters; at every epoch losses within {LOSS_TOLERANCE:g} and accuracies equal"
    )


def check_pair(a: Run, b: Run) -> list[str]:
    """How the pair breaks the guarantee that ``guarantee`` names for it (empty: it holds)."""
    broken = []
    if a.tags != b.tags:
        only_a, only_b = (", ".join(sorted(set(x.tags) - set(y.tags))) or "none" for x, y in ((a, b), (b, a)))
        broken.append(f"the tags differ (only in A: {only_a}; only in B: {only_b})")
    if (steps := _steps_differ(a, b)) is not None:
        broken.append(f"the steps differ ({steps})")
    changed = [] if global_batch_processes(a, b) else hparam_differences(a, b)
    if changed:
        broken.append(f"the hyperparameters differ ({'; '.join(changed)})")
    return broken + within_parity(a, b)


def _steps_differ(a: Run, b: Run) -> str | None:
    """Where the two runs' step axes part, or None where they are the same."""
    if len(a.steps) != len(b.steps):
        return f"A logged {len(a.steps)} epochs, B {len(b.steps)}"
    for epoch, (x, y) in enumerate(zip(a.steps.tolist(), b.steps.tolist(), strict=True), start=1):
        if x != y:
            return f"epoch {epoch} is logged at step {x} in A and {y} in B"
    return None


TABLE_WIDTH = 100  # columns at most: a terminal's, a CI log's


def format_table(a: Run, b: Run) -> str:
    """Per epoch (1-based, as the console prints), each tag's value in A and A - B (B is A minus that;
    both are in TensorBoard): 93 columns, within ``TABLE_WIDTH``."""
    diffs = differences(a, b)
    head1 = f"{'':>5} {'':>6} " + " ".join(f"{tag:^19}" for tag in METRIC_TAGS)
    head2 = f"{'epoch':>5} {'step':>6} " + " ".join(f"{'A':>9} {'A - B':>9}" for _ in METRIC_TAGS)
    lines = [f"A = {a.name}   B = {b.name}", head1, head2]
    for i in range(min(len(a.steps), len(b.steps))):
        step = str(a.steps[i]) if a.steps[i] == b.steps[i] else f"{a.steps[i]}/{b.steps[i]}"
        cells = [f"{a.scalars[t][i]:9.6f} {diffs[t][i]:9.1e}" for t in METRIC_TAGS]
        lines.append(f"{i + 1:>5} {step:>6} " + " ".join(cells))
    worst = max_differences(a, b)
    lines.append(f"{'max |A - B|':>12} " + " ".join(f"{'':>9} {worst[t]:9.1e}" for t in METRIC_TAGS))
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
        a_path, b_path = newest_run(logdir, NUMPY_TRAINER), newest_run(logdir, LIGHTNING_TRAINER)
    a, b = load_run(a_path), load_run(b_path)
    figure = default_figure_path(a, b, out)
    with hold_run_of(figure):  # refused while a trainer holds the run the figure goes into
        return _compare(a, b, figure, force, check)


def _compare(a: Run, b: Run, figure: Path, force: bool, check: bool) -> int:
    changed = hparam_differences(a, b)
    if processes := global_batch_processes(a, b):
        sizes = sorted(int(run.hparams["batch_size"]) for run in (a, b))
        print(f"note: the same global batch: {processes} processes x --batch_size {sizes[0]} = {sizes[1]}")
        changed = []
    if changed and not force:
        raise RunError(
            f"{a.name} and {b.name} were trained with different hyperparameters "
            f"({'; '.join(changed)}); pass --force to compare them anyway"
        )
    if changed:
        print(f"note: the hyperparameters differ: {'; '.join(changed)}")
    print(format_table(a, b))

    print(f"figure: {write_comparison_figure(a, b, figure)}")
    if check:
        print(f"check: {guarantee(a, b)}")
        broken = check_pair(a, b)
        for line in broken:
            print(f"parity broken: {line}")
        if not broken:
            print("check passed: the pair holds to it")
        return 1 if broken else 0
    return 0
