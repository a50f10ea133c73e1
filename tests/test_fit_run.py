"""End to end: scripts/fit.py trains, reports and writes the project's TensorBoard run."""

import math
import re

import pytest

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.tensorboard_schema import ALL_TAGS, EPOCH, VAL_ACC, epoch_end_step
from tests.helpers import read_scalars, run_script


def fit_in_process(logdir, *flags: str):
    from mlp_lightning.lightning.train import fit

    assert fit(parse_fit_args(["--logdir", str(logdir), "--accelerator", "cpu", *flags])) == 0


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One real `python scripts/fit.py` with defaults, shared by the tests below."""
    logdir = tmp_path_factory.mktemp("logs")
    result = run_script("fit.py", "--accelerator", "cpu", "--logdir", str(logdir), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir, result


def test_default_run_reaches_98_percent_val_accuracy(default_run):
    logdir, _ = default_run
    scalars = read_scalars(logdir / "lightning" / "version_0")
    assert scalars[VAL_ACC][-1][1] >= 0.98


def test_default_run_writes_the_five_tags_once_per_epoch_at_the_last_step(default_run):
    logdir, _ = default_run
    scalars = read_scalars(logdir / "lightning" / "version_0")
    assert set(ALL_TAGS) <= set(scalars)
    steps_per_epoch = math.ceil(640 / 64)
    expected_steps = [epoch_end_step(e, steps_per_epoch) for e in range(30)]
    for tag in ALL_TAGS:
        assert [step for step, _ in scalars[tag]] == expected_steps, tag
    assert [value for _, value in scalars[EPOCH]] == list(range(30))


def test_default_run_prints_summaries_report_and_keeps_its_checkpoint_in_the_run(default_run):
    logdir, result = default_run
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line[:8] for line in lines] == [f"epoch {e:02d}" for e in (1, 5, 10, 15, 20, 25, 30)]
    assert "| train loss " in lines[0] and " | val loss " in lines[0]
    assert f"tensorboard --logdir {logdir}" in result.stdout
    run_dir = logdir / "lightning" / "version_0"
    assert str(run_dir) in result.stdout
    assert list((run_dir / "checkpoints").glob("*.ckpt"))


def test_default_run_off_a_terminal_prints_whole_lines_and_no_progress_bar(default_run):
    """Captured output is what a CI log, nohup or ``| tee`` gets: no carriage-return redraws."""
    _, result = default_run
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert result.stderr == ""
    summary = r"epoch \d{2} \| train loss \S+ acc \S+ \| val loss \S+ acc \S+"
    report = [r"final    \| train loss .*", r"trained in .*", r"open it with: tensorboard --logdir .*"]
    for line in result.stdout.splitlines():
        assert any(re.fullmatch(pattern, line) for pattern in (summary, *report)), line


def test_default_run_writes_an_hparams_session_with_every_hyperparameter(default_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    logdir, _ = default_run
    acc = EventAccumulator(str(logdir / "lightning" / "version_0"))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert set(start.hparams) == set(parse_fit_args([]).hp.as_dict())
    assert start.hparams["hidden_dim"].number_value == 32
    assert "hp_metric" not in acc.Tags()["scalars"]


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path):
    flags = ("--max_epochs", "3", "--seed", "7")
    fit_in_process(tmp_path, *flags)
    fit_in_process(tmp_path, *flags)
    fit_in_process(tmp_path, "--max_epochs", "3", "--seed", "8")
    runs = [read_scalars(tmp_path / "lightning" / f"version_{v}") for v in range(3)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_every_run_gets_a_new_version_directory(tmp_path):
    fit_in_process(tmp_path, "--max_epochs", "1", "--n_per_class", "20")
    fit_in_process(tmp_path, "--max_epochs", "1", "--n_per_class", "20")
    assert sorted(p.name for p in (tmp_path / "lightning").iterdir()) == ["version_0", "version_1"]
