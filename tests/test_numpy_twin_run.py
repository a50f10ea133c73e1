"""The twin's runs: the script end to end, its TensorBoard output beside Lightning's, determinism."""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.columns import COLUMN_ARRAYS
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import ALL_TAGS, VAL_ACC
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.numpy_twin.train import fit
from tests.helpers import REPO, read_scalars, run_script

# runs the script as `python scripts/baseline_numpy.py` would, then reports what got imported
IMPORT_PROBE = """
import runpy, sys
sys.argv = ["baseline_numpy.py", *sys.argv[1:]]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
print("IMPORTED:", sorted(m for m in ("torch", "lightning", "torchmetrics") if m in sys.modules))
"""


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One run of the script with its defaults, in a fresh interpreter."""
    logdir = tmp_path_factory.mktemp("logs")
    probe = IMPORT_PROBE.format(script=str(REPO / "scripts" / "baseline_numpy.py"))
    result = subprocess.run(
        [sys.executable, "-c", probe, "--logdir", str(logdir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result, logdir / "numpy" / "version_0"


def test_the_script_never_imports_torch_or_lightning(default_run):
    result, _ = default_run
    assert "IMPORTED: []" in result.stdout


def test_the_default_run_reaches_val_acc_098_and_reports_like_fit(default_run):
    result, run_dir = default_run
    scalars = read_scalars(run_dir)
    assert scalars[VAL_ACC][-1][1] >= 0.98
    lines = result.stdout.splitlines()
    assert [line[:8] for line in lines if line.startswith("epoch")] == [
        f"epoch {e:02d}" for e in (1, 5, 10, 15, 20, 25, 30)
    ]
    assert any(line.startswith("final    | train loss") for line in lines)
    assert f"run directory: {run_dir}" in result.stdout


def test_the_default_run_off_a_terminal_prints_whole_lines_and_no_progress_bar(default_run):
    """Captured output is what a CI log, nohup or ``| tee`` gets: no carriage-return redraws."""
    result, _ = default_run
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert result.stderr == ""
    summary = r"epoch \d{2} \| train loss \S+ acc \S+ \| val loss \S+ acc \S+"
    report = [
        r"final    \| train loss .*",
        r"trained in .*",
        r"open it with: tensorboard --logdir .*",
        r"IMPORTED: .*",
    ]
    for line in result.stdout.splitlines():
        assert any(re.fullmatch(pattern, line) for pattern in (summary, *report)), line


def test_weights_npz_holds_float32_params_and_its_columns_and_loads_without_pickle(default_run):
    _, run_dir = default_run
    hp = HParams()
    with np.load(run_dir / "weights.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted([*PARAM_NAMES, *COLUMN_ARRAYS])
        # the blobs are not standardized: the columns say so, and name the classes by their labels
        assert np.array_equal(saved["feature_mean"], np.zeros(hp.dim, np.float32))
        assert np.array_equal(saved["feature_scale"], np.ones(hp.dim, np.float32))
        assert saved["class_names"].tolist() == ["0", "1"] and saved["feature_names"].tolist() == ["x1", "x2"]
        assert saved["W1"].shape == (hp.dim, hp.hidden_dim) and saved["W2"].shape == (
            hp.hidden_dim,
            hp.num_classes,
        )
        assert all(saved[name].dtype == np.float32 for name in PARAM_NAMES)


def test_hparams_yaml_sits_beside_the_events_as_lightning_writes_it(default_run):
    _, run_dir = default_run
    assert yaml.safe_load((run_dir / "hparams.yaml").read_text()) == HParams().as_dict()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1


def hparams_session(run_dir):
    """(hyperparameter names, metric tags) of a run's HPARAMS session, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    config = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert metadata.SESSION_END_INFO_TAG in content
    return sorted(start.hparams), sorted(m.name.tag for m in config.metric_infos)


def test_event_file_has_lightnings_tags_steps_and_hparams(tmp_path, monkeypatch, capsys):
    from mlp_lightning.lightning.train import fit as fit_lightning
    from mlp_lightning.runs.layout import RUN_VERSION_ENV

    argv = ["--max_epochs", "3", "--n_per_class", "100", "--batch_size", "48", "--logdir", str(tmp_path)]
    monkeypatch.setenv(RUN_VERSION_ENV, "0")  # what run_version would claim; restored afterwards
    assert fit_lightning(parse_fit_args([*argv, "--accelerator", "cpu"])) == 0
    assert fit(parse_numpy_args(argv)) == 0
    lightning, numpy_run = tmp_path / "lightning" / "version_0", tmp_path / "numpy" / "version_0"
    expected, got = read_scalars(lightning), read_scalars(numpy_run)
    assert set(got) == set(expected) == set(ALL_TAGS)
    for tag in ALL_TAGS:
        assert [step for step, _ in got[tag]] == [step for step, _ in expected[tag]] == [3, 7, 11], tag
    assert got["epoch"] == expected["epoch"]
    assert hparams_session(numpy_run) == hparams_session(lightning)


def test_same_seed_twice_gives_bit_identical_weights_and_metrics(tmp_path, capsys):
    argv = ["--max_epochs", "4", "--seed", "3", "--logdir", str(tmp_path)]
    assert fit(parse_numpy_args(argv)) == 0
    assert fit(parse_numpy_args(argv)) == 0
    runs = [tmp_path / "numpy" / f"version_{v}" for v in (0, 1)]
    first, second = (np.load(run / "weights.npz", allow_pickle=False) for run in runs)
    for name in PARAM_NAMES:
        assert first[name].tobytes() == second[name].tobytes(), name
    assert read_scalars(runs[0]) == read_scalars(runs[1])


def test_a_different_seed_gives_different_weights(tmp_path, capsys):
    for seed in ("1", "2"):
        assert fit(parse_numpy_args(["--max_epochs", "1", "--seed", seed, "--logdir", str(tmp_path)])) == 0
    a, b = (np.load(tmp_path / "numpy" / f"version_{v}" / "weights.npz") for v in (0, 1))
    assert not np.array_equal(a["W1"], b["W1"])


def test_bad_input_and_lightning_flags_exit_2_and_write_nothing(tmp_path):
    logdir = tmp_path / "logs"
    bad = run_script("baseline_numpy.py", "--dropout", "1.5", "--logdir", str(logdir))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "baseline_numpy.py: error: --dropout must be in [0, 1), got 1.5"
    refused = run_script("baseline_numpy.py", "--devices", "2", "--logdir", str(logdir))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--devices" in refused.stderr
    assert not logdir.exists()
