"""Nothing the project writes into a run goes through a symbolic link planted there: for each file it
writes, a link to a file outside leaves that file byte for byte as it was."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from mlp_lightning.core.errors import WriteFailed
from mlp_lightning.runs.files import cut_half_record
from mlp_lightning.runs.metrics_csv import MetricsCsv
from tests.helpers import run_lightning, run_numpy, script_main

VICTIM = b"a file outside the run\n"
TINY = ["--max_epochs", "1", "--n_per_class", "20"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One finished tiny run of each trainer, and a second twin run to compare with; copied by each test."""
    logdir = tmp_path_factory.mktemp("trained")
    return {
        "numpy": run_numpy(TINY, logdir),
        "lightning": run_lightning(TINY, logdir),
        "other": run_numpy(TINY, logdir),
    }


def copy_run(trained: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[name], tmp_path / "logs" / trained[name].parent.name / "version_0"))


def plant(run_dir: Path, name: str, tmp_path: Path) -> Path:
    """``run_dir/name`` made a link to a new file outside the run; that file."""
    target = tmp_path / f"victim-{name.replace('/', '-')}"
    target.write_bytes(VICTIM)
    (run_dir / name).unlink(missing_ok=True)
    (run_dir / name).symlink_to(target)
    return target


def exit_code(main, argv: list[str]) -> int:
    """A script's exit code, whether it returns it or ends with sys.exit (``fail``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return main(argv)
        except SystemExit as end:
            return end.code


def lock_refusal(prog: str, run_dir: Path) -> str:
    return (
        f"{prog}: error: run {str(run_dir)!r} cannot be locked: its .lock is a symbolic link, never followed "
        "in a run; a run's lock file must be a regular file of the account that trains in it"
    )


@pytest.mark.parametrize("script", ["fit.py", "baseline_numpy.py", "export_weights.py", "compare.py"])
def test_a_lock_linked_to_a_file_outside_is_refused_by_each_command_and_the_file_unchanged(
    trained, tmp_path, capsys, script
):
    trainer = "lightning" if script in ("fit.py", "export_weights.py") else "numpy"
    run_dir = copy_run(trained, trainer, tmp_path)
    target = plant(run_dir, ".lock", tmp_path)
    argv = {
        "fit.py": ["--resume", str(run_dir), "--accelerator", "cpu"],
        "baseline_numpy.py": ["--resume", str(run_dir)],
        "export_weights.py": [str(trained["numpy"] / "weights.npz"), str(run_dir / "w.ckpt")],
        "compare.py": [str(trained["other"]), str(trained["lightning"]), "--out", str(run_dir)],
    }[script]
    assert exit_code(script_main(script), argv) == 2
    assert capsys.readouterr().err.splitlines() == [lock_refusal(script, run_dir)]
    assert target.read_bytes() == VICTIM


def test_a_twin_resume_writes_around_links_at_each_file_it_writes(trained, tmp_path):
    run_dir = copy_run(trained, "numpy", tmp_path)
    names = ["hparams.yaml", "metrics.csv", "weights.npz"]  # not last.npz: a resume reads it first
    targets = [plant(run_dir, name, tmp_path) for name in names]
    assert exit_code(script_main("baseline_numpy.py"), ["--resume", str(run_dir), "--max_epochs", "2"]) == 0
    assert [t.read_bytes() for t in targets] == [VICTIM] * 3
    assert all((run_dir / name).is_file() and not (run_dir / name).is_symlink() for name in names)


def test_a_fit_resume_writes_around_links_at_hparams_and_metrics(trained, tmp_path):
    run_dir = copy_run(trained, "lightning", tmp_path)
    targets = [plant(run_dir, name, tmp_path) for name in ("hparams.yaml", "metrics.csv")]
    assert (
        exit_code(
            script_main("fit.py"), ["--resume", str(run_dir), "--max_epochs", "2", "--accelerator", "cpu"]
        )
        == 0
    )
    assert [t.read_bytes() for t in targets] == [VICTIM] * 2
    assert not (run_dir / "metrics.csv").is_symlink()


def test_export_compare_and_evaluate_replace_a_link_at_their_output_not_its_target(trained, tmp_path):
    run_dir = copy_run(trained, "numpy", tmp_path)
    figure = "compare_numpy-version_1_vs_lightning-version_0.png"
    outputs = {
        "export_weights.py": ("w.ckpt", [str(run_dir / "weights.npz"), str(run_dir / "w.ckpt")]),
        "compare.py": (figure, [str(trained["other"]), str(trained["lightning"]), "--out", str(run_dir)]),
        "evaluate.py": ("p.csv", [str(run_dir), "--predictions", str(run_dir / "p.csv")]),
    }
    for script, (name, argv) in outputs.items():
        target = plant(run_dir, name, tmp_path)
        assert exit_code(script_main(script), argv) == 0, script
        assert target.read_bytes() == VICTIM, script
        assert (run_dir / name).is_file() and not (run_dir / name).is_symlink(), script


def test_metrics_csv_swapped_for_a_link_during_a_run_is_refused_and_the_target_unchanged(tmp_path):
    table = MetricsCsv(tmp_path / "metrics.csv")
    target = plant(tmp_path, "metrics.csv", tmp_path)
    with pytest.raises(WriteFailed) as refused:
        table.append(0, 1, {"train/loss": 1.0, "train/acc": 0.5, "val/loss": 1.0, "val/acc": 0.5})
    path = str(tmp_path / "metrics.csv")
    assert str(refused.value) == f"cannot write {path!r}: a symbolic link, never followed in a run"
    assert target.read_bytes() == VICTIM


def test_cutting_a_half_record_never_truncates_through_a_link(tmp_path):
    target = plant(tmp_path, "events.out.tfevents.1.host.1.0", tmp_path)
    with pytest.raises(OSError):
        cut_half_record(tmp_path / "events.out.tfevents.1.host.1.0")
    assert target.read_bytes() == VICTIM
