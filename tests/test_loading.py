"""Damaged, foreign and malicious checkpoints: one error naming the file, nothing run, nothing written."""

from __future__ import annotations

import errno
import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.errors import CheckpointError, DivergenceError, WriteFailed
from mlp_lightning.lightning.checkpoint_io import (
    PROJECT_KEY,
    SafeCheckpointIO,
    atomic_torch_save,
    checkpoint_epochs_done,
    load_for_resume,
)
from mlp_lightning.lightning.train import fit

TINY = ("--accelerator", "cpu", "--n_per_class", "20", "--max_epochs", "1", "--hidden_dim", "8")


class Payload:
    """Unpickling this would create the file ``marker``: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mknod, (str(self.marker),))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> dict:
    logdir = tmp_path_factory.mktemp("good")
    assert fit(parse_fit_args(["--logdir", str(logdir), *TINY])) == 0
    path = logdir / "lightning" / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(path, weights_only=True)


def in_run_dir(logdir: Path, data: bytes) -> Path:
    path = logdir / "lightning" / "version_0" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def with_param(ckpt: dict, name: str, value) -> dict:
    state = dict(ckpt["state_dict"])
    if value is None:
        del state[name]
    else:
        state[name] = value
    return {**ckpt, "state_dict": state}


def with_hparam(ckpt: dict, name: str, value) -> dict:
    section = dict(ckpt[PROJECT_KEY])
    section["hparams"] = {**section["hparams"], name: value}
    return {**ckpt, PROJECT_KEY: section}


def with_trainer_flags(ckpt: dict, flags) -> dict:
    return {**ckpt, PROJECT_KEY: {**ckpt[PROJECT_KEY], "trainer": flags}}


def bad_files(good: dict, marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file contents, what the error must say)."""
    good_bytes = saved(good)
    no_project = {k: v for k, v in good.items() if k != PROJECT_KEY}
    return {
        "empty": (b"", "is empty"),
        "truncated": (good_bytes[: len(good_bytes) // 2], "is truncated"),
        "garbage": (os.urandom(2048), "is not a checkpoint"),
        "text": (b"epoch: 3\nlr: 0.1\n", "is not a checkpoint"),
        "raw_pickle_payload": (pickle.dumps(Payload(marker)), "is not a checkpoint"),
        "torch_pickle_payload": (saved({**good, "extra": Payload(marker)}), "nothing in it was run"),
        "not_a_dict": (saved(torch.zeros(3)), "not a Lightning checkpoint"),
        "foreign_lightning_checkpoint": (saved(no_project), "not written by this project"),
        "wrong_shape": (saved(with_param(good, "model.W1", torch.zeros(3, 8))), "W1 has shape (3, 8)"),
        "wrong_architecture": (
            saved(with_param(good, "model.W3", torch.zeros(8, 8))),
            "another architecture",
        ),
        "missing_parameter": (saved(with_param(good, "model.b2", None)), "another architecture"),
        "non_finite_weights": (
            saved(with_param(good, "model.b1", torch.full((8,), float("nan")))),
            "non-finite values in b1",
        ),
        "hparam_not_plain": (saved(with_hparam(good, "lr", "0.1")), "not a plain float"),
        "hparam_out_of_range": (saved(with_hparam(good, "dropout", 1.5)), "--dropout must be in [0, 1)"),
        "trainer_flags_not_a_table": (saved(with_trainer_flags(good, ["cpu"])), "Lightning flags"),
        "trainer_flag_not_plain": (
            saved(with_trainer_flags(good, {"accelerator": "cpu", "num_nodes": 1.5})),
            "Lightning flags",
        ),
        "weights_only": (saved({k: good[k] for k in ("state_dict", PROJECT_KEY)}), "lacks 'loops'"),
    }


def test_every_bad_checkpoint_gives_one_error_naming_the_file_and_runs_nothing(good_checkpoint, tmp_path):
    marker = tmp_path / "payload_ran"
    for name, (data, message) in bad_files(good_checkpoint, marker).items():
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_for_resume(path)
        assert str(path) in str(err.value), name
        assert message in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value), name
        # Lightning's own resume path reads through the plugin: also weights_only, whatever it asks for
        with pytest.raises(CheckpointError):
            SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


def test_the_payload_would_have_run_under_a_plain_unpickler(tmp_path):
    """Guards the test above: the payload is live, so its not running proves something."""
    marker = tmp_path / "payload_ran"
    torch.load(io.BytesIO(saved({"x": Payload(marker)})), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["empty", "truncated", "torch_pickle_payload", "wrong_shape"])
def test_resume_from_a_corrupt_newest_run_exits_2_and_writes_nothing(
    good_checkpoint, tmp_path, capsys, tree_snapshot, name
):
    marker = tmp_path / "payload_ran"
    logdir = tmp_path / "logs"
    data, message = bad_files(good_checkpoint, marker)[name]
    path = in_run_dir(logdir, data)
    before = tree_snapshot(logdir)
    with pytest.raises(SystemExit) as exit_info:
        fit(parse_fit_args(["--logdir", str(logdir), "--resume", "--accelerator", "cpu"]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fit.py: error: checkpoint ") and str(path) in err and message in err
    assert len(err.splitlines()) == 1
    assert tree_snapshot(logdir) == before  # no new run started in its place
    assert not marker.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_runs", "there is no lightning run under"),
        ("run_without_checkpoint", "has no checkpoint"),
        ("missing_path", "is neither a run directory nor a checkpoint file"),
        ("file_outside_a_run", "is not inside a run directory"),
        ("numpy_run", "is not a lightning run directory"),
    ],
)
def test_resume_that_names_no_usable_run_exits_2_and_never_starts_from_scratch(
    tmp_path, capsys, tree_snapshot, setup, message
):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    target = []
    if setup == "run_without_checkpoint":
        (logdir / "lightning" / "version_0").mkdir(parents=True)
    elif setup == "missing_path":
        target = [str(tmp_path / "nowhere")]
    elif setup == "file_outside_a_run":
        (tmp_path / "loose.ckpt").write_bytes(b"x")
        target = [str(tmp_path / "loose.ckpt")]
    elif setup == "numpy_run":
        (logdir / "numpy" / "version_0" / "checkpoints").mkdir(parents=True)
        target = [str(logdir / "numpy" / "version_0")]
    before = tree_snapshot(logdir)
    with pytest.raises(SystemExit) as exit_info:
        fit(parse_fit_args(["--logdir", str(logdir), "--accelerator", "cpu", "--resume", *target]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert tree_snapshot(logdir) == before


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": torch.tensor(1)}, path)
    before = path.read_bytes()

    def crash(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(WriteFailed, match=r"cannot write '.*last\.ckpt': disk full$"):
        atomic_torch_save({"step": torch.tensor(2)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_checkpoint_io_refuses_to_save_non_finite_weights(good_checkpoint, tmp_path):
    poisoned = with_param(good_checkpoint, "model.W2", torch.full((8, 2), float("inf")))
    with pytest.raises(DivergenceError, match="model.W2"):
        SafeCheckpointIO().save_checkpoint(poisoned, tmp_path / "last.ckpt")
    assert not (tmp_path / "last.ckpt").exists()


def test_the_checkpoint_records_the_lightning_flags_and_the_device_it_trained_with(good_checkpoint):
    section = good_checkpoint[PROJECT_KEY]
    assert section["trainer"] == {
        "accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "num_nodes": 1,
    }  # fmt: skip
    assert section["device"] == "cpu"


def test_stored_hyperparameters_are_plain_python_values(good_checkpoint):
    plain = (int, float, str, bool, type(None))

    def is_plain(value) -> bool:  # class_names: a list of strings
        return type(value) in plain or (type(value) is list and all(type(v) is str for v in value))

    for section in (good_checkpoint["hyper_parameters"], good_checkpoint[PROJECT_KEY]["hparams"]):
        assert all(is_plain(v) for v in section.values()), section
    assert type(good_checkpoint["hyper_parameters"]) is dict


def test_the_checkpoint_records_its_epochs_in_the_projects_section_as_lightnings_loop_does(good_checkpoint):
    """The project reads its own record; the fallback for older checkpoints reads Lightning's loop schema.

    If Lightning moves ``loops.fit_loop.epoch_progress`` this fails here, not in a user's resume.
    """
    section = good_checkpoint[PROJECT_KEY]
    lightning_loop = good_checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
    assert section["epochs_done"] == lightning_loop == good_checkpoint["epoch"] + 1
    older = {**good_checkpoint, PROJECT_KEY: {k: v for k, v in section.items() if k != "epochs_done"}}
    assert checkpoint_epochs_done(older) == checkpoint_epochs_done(good_checkpoint) == section["epochs_done"]
