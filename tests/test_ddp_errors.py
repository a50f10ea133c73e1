"""Launches whose process count cannot work end with one line and exit 2, writing nothing.

The process count is known once the Trainer exists, before anything is launched, so
these run in-process: the Trainer for two DDP processes is built and never started.
"""

import pytest

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.lightning.datamodule import check_world_size
from mlp_lightning.lightning.train import fit

TWO_PROCESSES = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


def test_a_split_smaller_than_the_process_count_names_the_flags():
    check_world_size(3, 2, 2)
    with pytest.raises(ConfigError, match=r"give 1 validation point\(s\), fewer than the 2 processes"):
        check_world_size(3, 1, 2)
    with pytest.raises(ConfigError, match=r"give 1 training point\(s\), fewer than the 4 processes"):
        check_world_size(1, 5, 4)


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        fit(parse_fit_args(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_fewer_validation_points_than_processes_is_refused_before_any_directory_is_made(tmp_path, capsys):
    logdir = tmp_path / "new" / "logs"
    # 4 points: 3 train, 1 validation for 2 processes
    argv = ["--logdir", str(logdir), "--n_per_class", "2", "--val_fraction", "0.25", *TWO_PROCESSES]
    err = _refused(argv, capsys)
    assert err.startswith("fit.py: error: --n_per_class, --num_classes and --val_fraction give 1 validation")
    assert "(--devices x --num_nodes)" in err
    assert not (tmp_path / "new").exists()


def test_resuming_on_another_process_count_is_refused_and_leaves_the_run_as_it_was(
    tmp_path, capsys, tree_snapshot
):
    one_process = ["--logdir", str(tmp_path), "--accelerator", "cpu", "--n_per_class", "40"]
    assert fit(parse_fit_args([*one_process, "--max_epochs", "1"])) == 0
    capsys.readouterr()
    before = tree_snapshot(tmp_path)
    err = _refused(["--logdir", str(tmp_path), "--resume", "--max_epochs", "2", *TWO_PROCESSES], capsys)
    assert err == (
        "fit.py: error: --resume: the run was trained by 1 process(es) and this launch has 2; resume it "
        "with 1 (--devices x --num_nodes), because each process continues its own data shard and "
        "metric sums"
    )
    assert tree_snapshot(tmp_path) == before
