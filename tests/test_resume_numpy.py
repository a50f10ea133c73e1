"""The NumPy twin: interrupt, resume, and get the uninterrupted run bit for bit; bad .npz files refused."""

from __future__ import annotations

import io
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

from mlp_lightning.analysis.export import load_npz
from mlp_lightning.analysis.logged_run import load_run
from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core.errors import CheckpointError
from mlp_lightning.numpy_twin import train as twin_train
from mlp_lightning.numpy_twin.checkpoint import load_state
from tests.helpers import (
    metrics_csv_scalars,
    read_scalars,
    restamp_event_files_into_this_second,
    signal_during_step,
)

# 80 points -> 64 train -> 4 batches of 16 per epoch, 12 steps in all
SMALL = ("--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3")


def run(logdir: Path, *flags: str) -> int:
    return twin_train.fit(parse_numpy_args(["--logdir", str(logdir), *flags]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("reference")
    assert run(logdir, *SMALL) == 0
    run_dir = logdir / "numpy" / "version_0"
    return (
        read_scalars(run_dir),
        load_npz(run_dir / "weights.npz"),
        load_state(run_dir / "checkpoints" / "last.npz"),
    )


@pytest.mark.parametrize(
    ("where", "step", "signum"),
    [
        ("mid_epoch", 6, signal.SIGINT),
        # the other moments: the slow suite (pytest -m slow)
        pytest.param("last_batch_of_an_epoch", 4, signal.SIGTERM, marks=pytest.mark.slow),
        pytest.param("first", 1, signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_interrupted_twin_resumes_to_the_uninterrupted_result_bit_for_bit(
    tmp_path, capsys, monkeypatch, reference, where, step, signum
):
    ref_scalars, ref_weights, ref_state = reference
    with monkeypatch.context() as patch:
        signal_during_step(patch, step, signum)
        assert run(tmp_path, *SMALL) == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    run_dir = tmp_path / "numpy" / "version_0"
    err = capsys.readouterr().err
    assert f"resume with: python scripts/baseline_numpy.py --resume {run_dir}" in err
    assert load_state(run_dir / "checkpoints" / "last.npz").step == step
    assert not (run_dir / "weights.npz").exists()

    restamp_event_files_into_this_second(run_dir)  # the resumed run must still be read after it
    assert run(tmp_path, "--resume") == 0
    assert [p.name for p in (tmp_path / "numpy").iterdir()] == ["version_0"]
    assert read_scalars(run_dir) == ref_scalars
    assert len(load_run(run_dir).steps) == 3  # read back as a finished run: its session ended in success
    assert metrics_csv_scalars(run_dir) == ref_scalars  # one row per epoch, none twice
    got = load_npz(run_dir / "weights.npz")
    assert all(np.array_equal(got[k], ref_weights[k]) for k in ref_weights)
    final = load_state(run_dir / "checkpoints" / "last.npz")
    assert final.step == ref_state.step


def interrupted_twin_run(tmp_path, monkeypatch, capsys) -> Path:
    with monkeypatch.context() as patch:
        signal_during_step(patch, 6, signal.SIGINT)
        assert run(tmp_path, *SMALL) == 130
    capsys.readouterr()
    return tmp_path / "numpy" / "version_0"


def test_twin_resume_with_the_runs_own_flags_and_config_continues_it(
    tmp_path, capsys, monkeypatch, reference
):
    """The first command again plus ``--resume``; the values compare as numbers (0.10 is 0.1, 2 is 2.0)."""
    ref_scalars, ref_weights, _ = reference
    run_dir = interrupted_twin_run(tmp_path, monkeypatch, capsys)
    config = tmp_path / "run.yaml"
    config.write_text("n_per_class: 40\nbatch_size: 16\nlr: 0.10\nseed: 42\n")

    assert run(tmp_path, "--config", str(config), *SMALL, "--offset", "2", "--resume") == 0

    assert [p.name for p in (tmp_path / "numpy").iterdir()] == ["version_0"]
    assert read_scalars(run_dir) == ref_scalars
    assert len(load_run(run_dir).steps) == 3  # read back as a finished run: its session ended in success
    assert metrics_csv_scalars(run_dir) == ref_scalars  # one row per epoch, none twice
    got = load_npz(run_dir / "weights.npz")
    assert all(np.array_equal(got[k], ref_weights[k]) for k in ref_weights)


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (["--n_per_class", "41"], "", "--n_per_class 40; got --n_per_class 41"),
        (["--config", "{config}"], "lr: 0.2\n", "--lr 0.1; got --lr 0.2"),
        (
            ["--config", "{config}", "--lr", "0.1"],
            "lr: 0.2\ndropout: 0.25\n",
            "--dropout 0.5; got --dropout 0.25",
        ),
    ],
)
def test_twin_resume_with_a_hyperparameter_that_differs_is_refused_naming_both_values(
    tmp_path, capsys, monkeypatch, tree_snapshot, flags, config, message
):
    interrupted_twin_run(tmp_path, monkeypatch, capsys)
    (tmp_path / "run.yaml").write_text(config)
    flags = [flag.format(config=tmp_path / "run.yaml") for flag in flags]
    before = tree_snapshot(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "--resume", *flags)

    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"baseline_numpy.py: error: --resume: the run was started with {message} "
        "(a resumed run keeps its hyperparameters; start a new run to change them)\n"
    )
    assert tree_snapshot(tmp_path) == before


def test_twin_divergence_stops_before_the_update_and_keeps_a_finite_checkpoint(tmp_path, capsys):
    assert run(tmp_path, *SMALL, "--lr", "1e6", "--checkpoint_every_n_steps", "1") == 1
    err = capsys.readouterr().err
    assert "training diverged at epoch " in err and "stopped before the update" in err
    state = load_state(tmp_path / "numpy" / "version_0" / "checkpoints" / "last.npz")
    assert all(np.isfinite(v).all() for v in state.params.values())
    assert f"step {state.step + 1}:" in err  # the step after the last saved one diverged


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mknod, (str(self.marker),))


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_every_bad_npz_gives_one_error_naming_the_file_and_runs_nothing(tmp_path, reference):
    _, _, good = reference
    good_path = tmp_path / "good.npz"
    from mlp_lightning.numpy_twin.checkpoint import save_state

    save_state(good, good_path)
    good_bytes = good_path.read_bytes()
    with np.load(good_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    marker = tmp_path / "payload_ran"

    def patched(**changes) -> bytes:
        return npz_bytes(**{**arrays, **changes})

    cases = {
        "empty": (b"", "is empty"),
        "truncated": (good_bytes[: len(good_bytes) // 2], "is truncated"),
        "garbage": (os.urandom(1024), "is not a checkpoint"),
        "raw_pickle": (pickle.dumps(Payload(marker)), "is not a checkpoint"),
        "pickle_payload": (
            npz_bytes(**{**arrays, "W1": np.array([Payload(marker)], dtype=object)}),
            "holds pickled objects",
        ),
        "wrong_shape": (
            npz_bytes(**{**arrays, "W1": np.zeros((3, 32), np.float32)}),
            "W1 has shape (3, 32), expected (2, 32)",
        ),
        "wrong_architecture": (
            npz_bytes(**{**arrays, "W3": np.zeros(2, np.float32)}),
            "another architecture",
        ),
        "missing_meta": (
            npz_bytes(**{k: v for k, v in arrays.items() if k != "meta"}),
            "another architecture",
        ),
        "bad_meta": (npz_bytes(**{**arrays, "meta": np.array("{not json")}), "damaged 'meta'"),
        "non_finite": (
            npz_bytes(**{**arrays, "b2": np.full(2, np.inf, np.float32)}),
            "non-finite values in b2",
        ),
        "weights_file_not_a_checkpoint": (npz_bytes(W1=arrays["W1"]), "another architecture"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_state(path)
        assert str(path) in str(err.value) and message in str(err.value), (name, str(err.value))
    assert not marker.exists()


def test_twin_resume_of_a_corrupt_newest_run_exits_2_and_changes_nothing(tmp_path, capsys, tree_snapshot):
    path = tmp_path / "numpy" / "version_0" / "checkpoints" / "last.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    before = tree_snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "--resume")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("baseline_numpy.py: error: checkpoint ") and "is truncated" in err
    assert tree_snapshot(tmp_path) == before
