"""A run that failed (diverged, or an error ended it) is never "the newest run": a bare compare.py or
--resume takes the newest one that can serve and says in one line which newer run it passed over."""

from __future__ import annotations

import signal

import pytest

from mlp_lightning.analysis.logged_run import load_run, newest_run
from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.errors import RunError
from mlp_lightning.numpy_twin import train as twin_train
from tests.helpers import signal_during_step

SMALL = ["--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3"]
NOTE = "it failed in epoch 2 (diverged, or an error ended it)"  # as the run said: "diverged at epoch 2"


def twin(logdir, *flags: str) -> int:
    return twin_train.fit(parse_numpy_args([*SMALL, "--logdir", str(logdir), *flags]))


def test_a_bare_compare_passes_over_a_diverged_newest_run_in_one_note_line(tmp_path, capsys):
    assert twin(tmp_path) == 0
    assert twin(tmp_path, "--lr", "1e6") == 1
    capsys.readouterr()
    assert newest_run(tmp_path, "numpy") == tmp_path / "numpy" / "version_0"
    (note,) = capsys.readouterr().out.splitlines()
    assert note == f"note: compare.py skipped the newer numpy/version_1: {NOTE}; it takes numpy/version_0"
    with pytest.raises(RunError, match=r"version_1: it failed in epoch 2 \(diverged"):
        load_run(tmp_path / "numpy" / "version_1")  # named, it says why in words, not a session status


def test_a_bare_resume_passes_over_a_diverged_newest_run_and_resumes_the_stopped_one(
    tmp_path, monkeypatch, capsys
):
    with monkeypatch.context() as patch:
        signal_during_step(patch, 6, signal.SIGINT)
        assert twin(tmp_path) == 130
    assert twin(tmp_path, "--lr", "1e6") == 1
    capsys.readouterr()
    assert twin_train.fit(parse_numpy_args(["--resume", "--logdir", str(tmp_path)])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"note: --resume skipped the newer numpy/version_1: {NOTE}; it takes numpy/version_0"
    assert out[1].startswith(f"resuming {tmp_path / 'numpy' / 'version_0'} from ")
    assert (tmp_path / "numpy" / "version_0" / "weights.npz").is_file()
