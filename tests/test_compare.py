"""scripts/compare.py on hand-written event files: the table, the refusals, the errors, the figure."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mlp_lightning.analysis.compare import (
    check_pair,
    compare_runs,
    format_table,
    global_batch_processes,
    hparam_differences,
    within_parity,
)
from mlp_lightning.analysis.export import save_npz
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.core.errors import RunError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import (
    EPOCH,
    METRIC_TAGS,
    VAL_ACC,
    epoch_end_step,
    hparams_session_end,
    hparams_session_start,
)
from mlp_lightning.core.weights import init_weights

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4


def write_run(
    run_dir: Path,
    hp: HParams,
    values: dict[str, list[float]] | None = None,
    end: bool = True,
    epochs: int | None = None,
) -> Path:
    """A run as the trainers write it: HPARAMS session, the four tags and `epoch` once per epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    epochs = hp.max_epochs if epochs is None else epochs
    values = values or {tag: [0.5 / (e + 1) for e in range(epochs)] for tag in METRIC_TAGS}
    writer = EventFileWriter(str(run_dir))
    for summary in hparams_session_start(hp.as_dict(), f"{run_dir.parent.name}/{run_dir.name}"):
        writer.add_event(Event(wall_time=time.time(), summary=summary))
    steps_per_epoch = -(-hp.n_train // hp.batch_size)
    for e in range(epochs):
        pairs = [(tag, values[tag][e]) for tag in METRIC_TAGS] + [(EPOCH, float(e))]
        summary = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in pairs])
        writer.add_event(
            Event(wall_time=time.time(), step=epoch_end_step(e, steps_per_epoch), summary=summary)
        )
    if end:
        writer.add_event(Event(wall_time=time.time(), summary=hparams_session_end()))
    writer.close()
    return run_dir


@pytest.fixture
def hp() -> HParams:
    return HParams(max_epochs=EPOCHS, n_per_class=50)


def _values(shift: float = 0.0) -> dict[str, list[float]]:
    return {tag: [0.5 / (e + 1) + shift * (e + 1) for e in range(EPOCHS)] for tag in METRIC_TAGS}


def test_load_run_reads_hparams_and_one_value_per_epoch(tmp_path, hp):
    run = load_run(write_run(tmp_path / "numpy" / "version_0", hp, _values()))
    assert run.name == "numpy/version_0"
    assert run.typed_hparams() == hp
    assert run.steps.tolist() == [epoch_end_step(e, 2) for e in range(EPOCHS)]
    np.testing.assert_allclose(run.scalars[VAL_ACC], _values()[VAL_ACC], rtol=1e-7)


def test_table_shows_each_epoch_and_the_largest_difference(tmp_path, hp):
    a = load_run(write_run(tmp_path / "numpy" / "version_0", hp, _values()))
    b = load_run(write_run(tmp_path / "lightning" / "version_0", hp, _values(shift=0.01)))
    worst = max_differences(a, b)
    assert worst == pytest.approx({tag: 0.04 for tag in METRIC_TAGS}, rel=1e-5)
    table = format_table(a, b).splitlines()
    assert table[0] == "A = numpy/version_0   B = lightning/version_0"
    assert len(table) == 3 + EPOCHS + 1
    assert table[-1].startswith(" max |A - B|") and "4.0e-02" in table[-1]
    assert max(len(line) for line in table) <= 100, "the table is wider than 100 columns"
    assert len(within_parity(a, b)) == len(METRIC_TAGS)
    assert within_parity(a, a) == []


def test_compare_refuses_runs_whose_hparams_differ_and_lists_them(tmp_path, hp):
    a = write_run(tmp_path / "numpy" / "version_0", hp)
    b = write_run(tmp_path / "lightning" / "version_0", HParams(max_epochs=EPOCHS, n_per_class=50, lr=0.05))
    assert hparam_differences(load_run(a), load_run(b)) == ["lr: 0.1 vs 0.05"]
    with pytest.raises(RunError, match=r"different hyperparameters \(lr: 0.1 vs 0.05\).*--force"):
        compare_runs(a, b, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_compare_with_force_writes_the_figure_beside_the_newer_run(tmp_path, hp, capsys):
    a = write_run(tmp_path / "numpy" / "version_0", hp)
    b = write_run(tmp_path / "lightning" / "version_0", HParams(max_epochs=EPOCHS, n_per_class=50, dim=3))
    assert compare_runs(a, b, force=True) == 0
    printed = capsys.readouterr().out
    assert "note: the hyperparameters differ: dim: 2 vs 3" in printed
    assert "no decision boundaries" in printed
    assert (b / "compare_numpy-version_0_vs_lightning-version_0.png").stat().st_size > 0


def test_figure_has_decision_boundaries_when_both_runs_left_weights(tmp_path, hp, capsys):
    runs = [write_run(tmp_path / t / "version_0", hp) for t in ("numpy", "lightning")]
    for run in runs:
        save_npz(init_weights(2, hp.hidden_dim, 2, seed=0), run / "weights.npz")
    assert compare_runs(*runs, out=tmp_path / "figs") == 0
    assert "no decision boundaries" not in capsys.readouterr().out
    png = tmp_path / "figs" / "compare_numpy-version_0_vs_lightning-version_0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hyperparameter_differences_print_integers_as_integers_and_floats_as_floats(tmp_path, hp):
    a = write_run(tmp_path / "numpy" / "version_0", HParams(max_epochs=4, n_per_class=50, offset=2.0))
    b = write_run(tmp_path / "lightning" / "version_0", HParams(max_epochs=6, n_per_class=30, offset=3.0))
    assert hparam_differences(load_run(a), load_run(b)) == [
        "n_per_class: 50 vs 30",
        "offset: 2.0 vs 3.0",
        "max_epochs: 4 vs 6",
    ]


def test_check_at_dropout_0_applies_the_exact_guarantee_and_fails_a_pair_that_breaks_it(tmp_path, capsys):
    hp = HParams(max_epochs=EPOCHS, n_per_class=50, dropout=0.0)
    a = write_run(tmp_path / "numpy" / "version_0", hp, _values())
    same = write_run(tmp_path / "numpy" / "version_1", hp, _values())
    off = write_run(tmp_path / "lightning" / "version_0", hp, _values(shift=1e-5))
    assert compare_runs(a, same, out=tmp_path, check=True) == 0
    printed = capsys.readouterr().out
    assert (
        "check: exact (--dropout 0: the same data, weights, batches and dropout masks): same tags, "
        "steps and hyperparameters; at every epoch losses within 1e-06 and accuracies equal"
    ) in printed
    assert "check passed" in printed
    assert compare_runs(a, off, out=tmp_path, check=True) == 1
    printed = capsys.readouterr().out
    assert "check: exact (--dropout 0:" in printed
    assert "parity broken: train/loss differs by up to" in printed and "check passed" not in printed


def test_check_with_dropout_on_applies_the_same_exact_guarantee(tmp_path, hp, capsys):
    """The twins draw the same masks at any dropout: a pair 1e-5 apart breaks parity."""
    assert hp.dropout == 0.5
    a = write_run(tmp_path / "numpy" / "version_0", hp, _values())
    same = write_run(tmp_path / "numpy" / "version_1", hp, _values())
    off = write_run(tmp_path / "lightning" / "version_0", hp, _values(shift=1e-5))
    assert compare_runs(a, same, out=tmp_path, check=True) == 0
    printed = capsys.readouterr().out
    assert "check: exact (--dropout 0.5: the same data, weights, batches and dropout masks)" in printed
    assert "check passed" in printed
    assert compare_runs(a, off, out=tmp_path, check=True) == 1
    assert "parity broken: train/loss differs by up to" in capsys.readouterr().out


def test_check_with_dropout_on_fails_a_pair_with_other_hyperparameters_or_steps(tmp_path, hp, capsys):
    a = write_run(tmp_path / "numpy" / "version_0", hp)
    other_lr = write_run(
        tmp_path / "lightning" / "version_0", HParams(max_epochs=EPOCHS, n_per_class=50, lr=0.05)
    )
    assert compare_runs(a, other_lr, out=tmp_path, force=True, check=True) == 1
    assert "parity broken: the hyperparameters differ (lr: 0.1 vs 0.05)" in capsys.readouterr().out
    # same hyperparameters, but its epochs logged at other steps (as a run with a larger batch would)
    shifted = tmp_path / "lightning" / "version_1"
    write_run(shifted, HParams(max_epochs=EPOCHS, n_per_class=50, batch_size=32))
    run_a, run_b = load_run(a), load_run(shifted)
    run_b = dataclasses.replace(run_b, hparams=run_a.hparams)
    assert check_pair(run_a, run_b) == ["the steps differ (epoch 1 is logged at step 1 in A and 2 in B)"]
    extra_tag = dataclasses.replace(run_a, tags=(*run_a.tags, "hp_metric"))
    assert check_pair(run_a, extra_tag) == ["the tags differ (only in A: none; only in B: hp_metric)"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, hp: d, "no such run directory"),
        (lambda d, hp: (d.mkdir(parents=True), d)[1], "no TensorBoard event file"),
        (lambda d, hp: write_run(d, hp, end=False), "half-written: no HPARAMS session end"),
        (lambda d, hp: write_run(d, hp, epochs=2), "half-written: 2 epochs logged, max_epochs is 4"),
    ],
)
def test_broken_runs_give_one_line_errors(tmp_path, hp, make, message):
    with pytest.raises(RunError, match=message) as err:
        load_run(make(tmp_path / "numpy" / "version_0", hp))
    assert "\n" not in str(err.value)


def test_a_run_cut_off_mid_record_is_half_written(tmp_path, hp):
    run = write_run(tmp_path / "numpy" / "version_0", hp)
    events = next(run.glob("events.out.tfevents.*"))
    events.write_bytes(events.read_bytes()[:-5])  # the session end record, torn
    with pytest.raises(RunError, match="half-written: no HPARAMS session end"):
        load_run(run)


def test_two_runs_in_one_directory_are_refused(tmp_path, hp):
    run = write_run(tmp_path / "numpy" / "version_0", hp)
    write_run(run, hp)
    with pytest.raises(RunError, match="several runs wrote into this directory"):
        load_run(run)


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), *args], cwd=cwd, capture_output=True, text=True
    )


def test_script_defaults_to_the_newest_numpy_and_lightning_runs(tmp_path, hp):
    for trainer in ("numpy", "lightning"):
        for version in (0, 1):
            write_run(tmp_path / "logs" / trainer / f"version_{version}", hp)
    done = _script("--logdir", "logs", "--out", "figs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A = numpy/version_1   B = lightning/version_1")
    assert (tmp_path / "figs" / "compare_numpy-version_1_vs_lightning-version_1.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--logdir", "nowhere"], "no numpy run under nowhere/numpy"),
        (["only_one"], "give two run directories, or none"),
        (["a", "b"], "a: no such run directory"),
        (["--bogus"], "unknown flag --bogus"),
    ],
)
def test_script_errors_are_one_line_exit_2_without_traceback(tmp_path, args, message):
    done = _script(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("compare.py: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_lightning_run_at_a_whole_fraction_of_the_batch_with_the_same_steps_is_the_same_global_batch(
    tmp_path,
):
    twin_hp = HParams(max_epochs=EPOCHS, n_per_class=64, batch_size=32)
    twin = load_run(write_run(tmp_path / "numpy" / "version_0", twin_hp))
    lightning_dir = tmp_path / "lightning" / "version_0"
    write_run(lightning_dir, twin_hp)  # the twin's step axis: what 2 processes at 16 log
    ddp = dataclasses.replace(load_run(lightning_dir), hparams={**twin.hparams, "batch_size": 16})
    assert global_batch_processes(twin, ddp) == 2 and check_pair(twin, ddp) == []
    # another step axis (one process at 16), a twin at the smaller batch, or a 1.5 ratio: not the same batch
    assert global_batch_processes(twin, dataclasses.replace(ddp, steps=ddp.steps * 2 + 1)) is None
    assert global_batch_processes(dataclasses.replace(ddp, path=twin.path), twin) is None
    assert (
        global_batch_processes(twin, dataclasses.replace(ddp, hparams={**twin.hparams, "batch_size": 24}))
        is None
    )
