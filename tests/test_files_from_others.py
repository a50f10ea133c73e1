"""Files from someone else (issue 26): values that expand, sizes past the bounds, tracebacks, escapes.

Each probe is a run, checkpoint, config or table as someone could send it. Every script that reads it
runs in a child whose address space is capped at 1 GiB (RLIMIT_AS), so a regression that builds the
expansion fails with MemoryError (a traceback) instead of taking the machine; the scripts' timeout
catches one that spins. Each must end in one printable line, ``<prog>: error: ...``, exit 2, within
seconds, and leave the files it read as they were.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import (
    MAX_CLASSES,
    MAX_DIM,
    MAX_EPOCHS,
    MAX_HIDDEN,
    MAX_POINTS,
    MAX_VALUES,
    HParams,
    validate,
)
from tests.helpers import GIB, run_lightning, run_numpy, run_script

TINY = ["--n_per_class", "20", "--batch_size", "8", "--hidden_dim", "8", "--max_epochs", "2"]
HOSTILE = "b\x1b]0;pwned\x07\x1b[2J"  # sets the terminal's title, then clears the screen
TIMEOUT = 60  # seconds: each answers in a few; a probe that spins (draws 10^12 points) fails by this


# A checkpoint's structure is walked, its tensors counted, before any value in it is used
# (lightning/checkpoint_archive.py): 2^60 paths end that walk first. The values' own checks (types,
# bounded messages) are reached by the hparams.yaml and --config probes, and by a shallower nest below.
STRUCTURE = "holds more than 100000 values in its structure: refused"


def shared_lists(depth: int = 60) -> list:
    """2^depth leaves in a few hundred bytes (pickle memoizes the shared list); repr would never end."""
    value: list = []
    for _ in range(depth):
        value = [value, value]
    return value


def anchors(levels: int = 9) -> str:
    """A YAML list of ``levels`` anchors, each nine aliases of the one before: 9^9 strings in 360 bytes."""
    parts = ["&a [x, x, x, x, x, x, x, x, x]"]
    names = "abcdefghijklmnop"
    for before, name in zip(names[: levels - 1], names[1:levels], strict=True):
        parts.append(f"&{name} [{', '.join([f'*{before}'] * 9)}]")
    return "[" + ", ".join(parts) + "]"


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory) -> Path:
    """A finished twin run to make probes of (copied, never changed): NumPy alone, fast."""
    return run_numpy(TINY, tmp_path_factory.mktemp("sent"))


@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory) -> Path:
    """A finished Lightning run to make probes of (the slow tests': a script that reads it imports torch)."""
    return run_lightning(TINY, tmp_path_factory.mktemp("sent"))


def received(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of ``run_dir`` at ``<tmp_path>/logs/<trainer>/version_0``, as someone's run arrives."""
    copy = tmp_path / "logs" / run_dir.parent.name / "version_0"
    shutil.copytree(run_dir, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def contents(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its sha256, but the run lock (a run's own, which each command takes)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def refused(script: str, *args: str, cwd: Path | None = None) -> str:
    """Run ``script`` under the 1 GiB cap: its one error line (exit 2, printable, no traceback)."""
    result = run_script(script, *args, timeout=TIMEOUT, memory=GIB, cwd=cwd)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), result.stderr[-3000:]
    assert lines[0].isprintable(), repr(lines[0])  # no escape reaches the terminal
    assert len(lines[0]) < 1000, lines[0]  # bounded, however large the value
    return lines[0]


def probe(script: str, target: Path, *args: str) -> str:
    """``refused``, and the files under ``target`` (the probe) unchanged."""
    before = contents(target)
    line = refused(script, *args)
    assert contents(target) == before
    return line


def lightning_checkpoint(run_dir: Path, change) -> Path:
    """``run_dir``'s last.ckpt rewritten with ``change(ckpt)`` applied: a received checkpoint."""
    path = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    return path


def twin_checkpoint(run_dir: Path, change) -> Path:
    """``run_dir``'s last.npz with ``change(meta)`` applied to its JSON ``meta`` entry."""
    path = run_dir / "checkpoints" / "last.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))
    arrays["meta"] = np.array(change(meta) or json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def hparams_file(run_dir: Path, **values) -> Path:
    path = run_dir / "hparams.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **values}))
    return path


# --- values that expand: nested shared lists, YAML anchors -----------------------------------------


@pytest.mark.slow  # imports torch in a process of its own; the anchors below are the quick probes
def test_nested_shared_lists_in_a_checkpoints_hyperparameters_are_refused_by_evaluate(tmp_path):
    path = tmp_path / "sent.ckpt"  # evaluate.py reads the hyperparameters of any .ckpt that has them
    torch.save({"mlp_lightning": {"hparams": {**HParams().as_dict(), "lr": shared_lists()}}}, path)
    line = probe("evaluate.py", tmp_path, str(path))  # refused while its tensors are counted, before use
    assert STRUCTURE in line


@pytest.mark.slow
def test_nested_shared_lists_in_a_checkpoints_hyperparameters_are_refused_by_a_resume(
    lightning_run, tmp_path
):
    run = received(lightning_run, tmp_path)
    lightning_checkpoint(run, lambda c: c["mlp_lightning"]["hparams"].update(lr=shared_lists()))
    line = probe("fit.py", tmp_path, "--resume", str(run))
    assert STRUCTURE in line


@pytest.mark.slow
def test_nested_shared_lists_in_a_checkpoints_trainer_flags_are_refused_in_one_line(lightning_run, tmp_path):
    run = received(lightning_run, tmp_path)
    lightning_checkpoint(run, lambda c: c["mlp_lightning"]["trainer"].update(devices=shared_lists()))
    line = probe("fit.py", tmp_path, "--resume", str(run))
    assert STRUCTURE in line


@pytest.mark.slow
def test_a_checkpoint_whose_device_is_not_a_device_type_is_refused_in_one_line(lightning_run, tmp_path):
    run = received(lightning_run, tmp_path)
    lightning_checkpoint(run, lambda c: c["mlp_lightning"].update(device=shared_lists()))
    assert STRUCTURE in probe("fit.py", tmp_path, "--resume", str(run))


def anchored_hparams(run_dir: Path) -> None:
    text = (run_dir / "hparams.yaml").read_text()
    (run_dir / "hparams.yaml").write_text(re.sub(r"^lr: .*$", f"lr: {anchors()}", text, flags=re.M))


def test_yaml_anchors_in_a_received_hparams_yaml_are_refused_in_one_line(twin_run, tmp_path):
    run = received(twin_run, tmp_path)
    anchored_hparams(run)
    assert "hyperparameter 'lr' is [['x', 'x'" in probe("evaluate.py", tmp_path, str(run))


@pytest.mark.slow
def test_yaml_anchors_in_a_received_lightning_runs_hparams_yaml_are_refused_in_one_line(
    lightning_run, tmp_path
):
    run = received(lightning_run, tmp_path)
    anchored_hparams(run)
    assert "hyperparameter 'lr' is [['x', 'x'" in probe("evaluate.py", tmp_path, str(run))


def test_a_sweep_passes_over_a_run_whose_hparams_yaml_expands(twin_run, tmp_path):
    from mlp_lightning.runs.sweep import read_stored_hparams

    run = received(twin_run, tmp_path)
    (run / "hparams.yaml").write_text(f"drop: {anchors()}\n")
    assert read_stored_hparams(run) is None  # a sweep compares, hashes and prints what it reads


CONFIGS = {
    "nested": f"lr: {anchors()}\n",
    "drop-nested": f"drop: {anchors()}\n",  # a list of lists
    "drop-aliases": f"drop: [&a {'x' * 1000}, {', '.join(['*a'] * 2000)}]\n",  # flat, but 2 MB of aliases
    "text-of-anchors": f"max_epochs: '{anchors()}'\n",  # a text jsonargparse loads as YAML for a number
}
QUICK_CONFIG = [pytest.param("fit.py", "nested")]
SLOW_CONFIGS = [
    pytest.param(script, kind, marks=pytest.mark.slow)
    for script in ("fit.py", "baseline_numpy.py")
    for kind in CONFIGS
    if (script, kind) != ("fit.py", "nested")
]


@pytest.mark.parametrize(("script", "kind"), QUICK_CONFIG + SLOW_CONFIGS)
def test_yaml_anchors_in_a_config_are_refused_in_one_line(tmp_path, script, kind):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIGS[kind])
    line = probe(script, tmp_path, "--config", str(path), "--logdir", str(tmp_path / "logs"))
    assert f"--config {path}: " in line
    assert not (tmp_path / "logs").exists()


def test_yaml_anchors_in_a_config_that_a_config_names_are_refused(tmp_path):
    nested = tmp_path / "nested.yaml"  # jsonargparse reads it itself: its loader checks what it loads
    nested.write_text(f"lr: {anchors()}\n")
    outer = tmp_path / "outer.yaml"
    outer.write_text(f"config: {nested}\n")
    line = probe("fit.py", tmp_path, "--config", str(outer), "--logdir", str(tmp_path / "logs"))
    assert "--config: " in line and "'lr' must be one value" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv", [["--lr", anchors()], ["--config", f"lr: {anchors()}"]], ids=["flag", "config"]
)
def test_yaml_anchors_in_a_value_on_the_command_line_are_refused(tmp_path, argv):
    line = probe("fit.py", tmp_path, *argv, "--logdir", str(tmp_path / "logs"))
    assert "expands (YAML aliases) past 1048576 characters" in line


def test_a_twin_checkpoint_of_deeply_nested_json_is_refused_in_one_line(twin_run, tmp_path):
    run = received(twin_run, tmp_path)
    twin_checkpoint(run, lambda meta: json.dumps(meta)[:-1] + ', "x": ' + "[" * 10**5 + "]" * 10**5 + "}")
    assert "damaged 'meta' entry" in probe("baseline_numpy.py", tmp_path, "--resume", str(run))


# --- sizes past the bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("n_per_class", [10**12, 10**8])
def test_a_received_hparams_yaml_of_too_many_points_is_refused_by_evaluate(twin_run, tmp_path, n_per_class):
    run = received(twin_run, tmp_path)
    hparams_file(run, n_per_class=n_per_class)
    line = probe("evaluate.py", tmp_path, str(run))
    assert f"--n_per_class must be <= {MAX_POINTS // 2} for --num_classes 2" in line
    assert line.endswith(f"got {n_per_class}")


def test_a_received_checkpoint_past_a_bound_is_refused_by_a_resume(twin_run, tmp_path):
    run = received(twin_run, tmp_path)
    twin_checkpoint(run, lambda meta: meta["hparams"].update(hidden_dim=10**6))
    line = probe("baseline_numpy.py", tmp_path, "--resume", str(run))
    assert f"--hidden_dim must be <= {MAX_HIDDEN}, got 1000000" in line


BOUNDS = [  # the flag, a value one past its bound, the bound named in the message
    ("n_per_class", MAX_POINTS // 2 + 1, f"--n_per_class must be <= {MAX_POINTS // 2} for --num_classes 2"),
    ("dim", MAX_DIM + 1, f"--dim must be <= {MAX_DIM},"),
    ("num_classes", MAX_CLASSES + 1, f"--num_classes must be <= {MAX_CLASSES},"),
    ("hidden_dim", MAX_HIDDEN + 1, f"--hidden_dim must be <= {MAX_HIDDEN},"),
    ("max_epochs", MAX_EPOCHS + 1, f"--max_epochs must be <= {MAX_EPOCHS},"),
    ("batch_size", MAX_POINTS + 1, f"--batch_size must be <= {MAX_POINTS},"),
]


@pytest.mark.parametrize(("name", "value", "message"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_each_size_past_its_bound_is_refused_naming_the_bound(name, value, message):
    with pytest.raises(ConfigError) as refusal:
        validate(HParams(**{name: value}))
    assert message in str(refusal.value) and str(refusal.value).endswith(f"got {value}")
    fewer = {"n_per_class": 2} if name == "num_classes" else {}  # 10^4 classes' probabilities: 2 per class
    validate(HParams(**{name: value - 1, **fewer}))  # the bound itself is allowed


@pytest.mark.slow
@pytest.mark.parametrize(("name", "value", "message"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_each_size_past_its_bound_is_refused_by_the_scripts_at_once(tmp_path, name, value, message):
    line = refused("baseline_numpy.py", f"--{name}", str(value), "--logdir", str(tmp_path / "logs"))
    assert message in line and line.endswith(f"got {value}")
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"n_per_class": 200_000, "dim": 1000}, "--n_per_class must be <= 125000 for --num_classes 2 and"),
        ({"dim": 10_000, "hidden_dim": 30_000}, "--hidden_dim must be <= 25000 for --dim 10000"),
        ({"n_per_class": 1, "num_classes": 10_000, "hidden_dim": 30_000}, "--hidden_dim must be <= 25000"),
        ({"n_per_class": 10**5, "hidden_dim": 50_000, "batch_size": 10_000}, "--batch_size must be <= 5000"),
    ],
    ids=["data", "W1", "W2", "activations"],
)
def test_products_past_one_arrays_bound_are_refused_naming_the_flags_they_depend_on(flags, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(HParams(**flags))


def test_the_largest_configs_in_use_are_inside_the_bounds():
    validate(HParams(n_per_class=62_500, dim=512, hidden_dim=2048))  # the benchmark's large config
    validate(HParams(dataset="file", data="big.csv", data_points=1_000_000, dim=20))  # its million-row table
    validate(HParams(n_per_class=MAX_POINTS // 2, dim=MAX_VALUES // MAX_POINTS))  # every bound at once
    validate(HParams(dim=MAX_DIM, hidden_dim=MAX_VALUES // MAX_DIM, max_epochs=MAX_EPOCHS))


def test_an_integer_past_a_floats_range_is_refused_not_raised():
    with pytest.raises(ConfigError, match=r"--offset must be a finite number, got <int of \d+ bits>"):
        validate(HParams(offset=10**400))


# --- tracebacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "cell",
        pytest.param("quoted cell", marks=pytest.mark.slow),
        pytest.param("header", marks=pytest.mark.slow),
    ],
)
def test_a_200_kb_csv_cell_is_refused_in_one_line_naming_its_row(tmp_path, where):
    big = "9" * 200_000
    table = {
        "cell": f"a,b,label\n1,2,0\n3,4,1\n5,{big},0\n1,1,1\n",
        "quoted cell": f'a,b,label\n1,2,0\n3,4,1\n5,"{big}",0\n1,1,1\n',
        "header": f"a,b{big},label\n1,2,0\n3,4,1\n",
    }[where]
    path = tmp_path / "table.csv"
    path.write_text(table)
    line = probe("baseline_numpy.py", tmp_path, "--data", str(path), "--logdir", str(tmp_path / "logs"))
    row = 1 if where == "header" else 4
    assert f"row {row}: a cell longer than 131072 characters" in line


def python_tag(run_dir: Path, marker: Path) -> Path:
    path = run_dir / "hparams.yaml"
    path.write_text(path.read_text() + f"x: !!python/object/apply:os.mknod ['{marker}']\n")
    return path


def test_a_python_tag_in_a_received_hparams_yaml_is_refused_by_evaluate_naming_the_file(twin_run, tmp_path):
    run = received(twin_run, tmp_path)
    path = python_tag(run, tmp_path / "ran")
    line = probe("evaluate.py", tmp_path, str(run))
    assert f"{str(path)!r} is not a run's hyperparameters as YAML" in line
    assert "python/object/apply:os.mknod" in line and not (tmp_path / "ran").exists()


@pytest.mark.slow
def test_a_python_tag_in_a_received_lightning_runs_hparams_yaml_is_refused(lightning_run, tmp_path):
    run = received(lightning_run, tmp_path)
    path = python_tag(run, tmp_path / "ran")
    assert f"{str(path)!r} is not a run's hyperparameters as YAML" in probe("evaluate.py", tmp_path, str(run))


@pytest.mark.slow
def test_an_integer_of_5000_digits_in_a_config_is_refused_in_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"max_epochs: {'9' * 5000}\n")
    assert f"--config {path}: not a YAML file" in refused("fit.py", "--config", str(path))


# --- terminal escapes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_zip_member_named_with_terminal_escapes_is_never_printed_raw(lightning_run, tmp_path):
    run = received(lightning_run, tmp_path)
    path = run / "checkpoints" / "last.ckpt"
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"archive/{HOSTILE}", b"PAYLOAD")
    path.write_bytes(path.read_bytes().replace(b"PAYLOAD", b"payload"))  # its checksum fails
    for script, args in (("fit.py", ["--resume", str(run)]), ("evaluate.py", [str(path)])):
        probe(script, tmp_path, *args)  # one printable line: the name never reaches the terminal raw


def test_a_damaged_zip_members_name_is_shown_escaped(tmp_path):
    from mlp_lightning.core.errors import CheckpointError
    from mlp_lightning.runs.files import read_zip_archive

    path = tmp_path / "sent.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(HOSTILE, b"PAYLOAD")
    path.write_bytes(path.read_bytes().replace(b"PAYLOAD", b"payload"))  # its checksum fails
    with pytest.raises(CheckpointError) as refusal:
        read_zip_archive(path, "an .npz")
    assert "'b\\x1b]0;pwned\\x07\\x1b[2J' fails its checksum" in str(refusal.value)


def test_a_csv_header_name_with_terminal_escapes_is_shown_escaped(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(f"a,{HOSTILE},label\n1,x,0\n3,4,1\n")
    line = probe("baseline_numpy.py", tmp_path, "--data", str(path), "--logdir", str(tmp_path / "logs"))
    assert "column 2 ('b\\x1b]0;pwned\\x07\\x1b[2J')" in line


def test_a_class_name_with_terminal_escapes_is_escaped_in_the_message(tmp_path):
    from mlp_lightning.core.class_labels import class_labels

    with pytest.raises(ConfigError, match=re.escape("has one value ('cb\\x1b]0;pwned\\x07\\x1b[2J')")):
        class_labels(np.array([f"c{HOSTILE}"] * 3), "column 3 ('label')")


@pytest.mark.slow
def test_a_hyperparameter_with_terminal_escapes_is_shown_escaped(twin_run, tmp_path):
    run = received(twin_run, tmp_path)
    hparams_file(run, dataset=f"blobs{HOSTILE}")
    assert "\\x1b]0;pwned\\x07" in probe("evaluate.py", tmp_path, str(run))


def test_every_error_line_escapes_what_a_terminal_would_act_on():
    from mlp_lightning.core.errors import error_line
    from mlp_lightning.core.quoted import fits, short_text

    assert error_line("fit.py", f"bad {HOSTILE} é") == "fit.py: error: bad b\\x1b]0;pwned\\x07\\x1b[2J é"
    assert short_text("a\n  b" + "c" * 500, limit=20) == "a b" + "c" * 14 + "..."
    assert fits(["x"] * 10, 100) and not fits(shared_lists(), 10**4)  # 2^60 leaves, found at once
