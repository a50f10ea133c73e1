"""A disk that refuses a write (full, over quota, file too large, failing, read-only), at every file
the project writes: one line naming the file and the reason, exit 74, no traceback, no partial
file under a final name, and the last checkpoint whole, so that a resume ends bit for bit where
an uninterrupted run ends.

Faults are injected without root: ``disk_fault`` raises the operating system's OSError at the
N-th write to one file (in this process, TensorBoard's writer thread included), and a child
process under RLIMIT_FSIZE gets the kernel's own EFBIG.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.errors import WRITE_FAILED_EXIT, WriteFailed
from mlp_lightning.lightning.checkpoint_io import read_checkpoint
from mlp_lightning.numpy_twin.checkpoint import load_state
from tests.helpers import REPO, disk_fault, file_size_limited, read_scalars, script_main

# the reason each refusal is reported with
PLAIN = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this filesystem's or process's size limit",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
}
ERRNOS = list(PLAIN)
# 80 points: 64 train, 2 steps per epoch; a checkpoint every epoch, 4 in all
SMALL = ["--n_per_class", "40", "--batch_size", "32", "--max_epochs", "4", "--checkpoint_every_n_steps", "2"]
EVENTS = "events.out.tfevents"
# (trainer, the file's name, where it lies in the run directory)
LIGHTNING_FILES = [("lightning", EVENTS, "."), ("lightning", "hparams.yaml", "."),
                   ("lightning", "last.ckpt", "checkpoints"), ("lightning", "metrics.csv", ".")]  # fmt: skip
TWIN_FILES = [("numpy", EVENTS, "."), ("numpy", "hparams.yaml", "."), ("numpy", "last.npz", "checkpoints"),
              ("numpy", "weights.npz", "."), ("numpy", "metrics.csv", ".")]  # fmt: skip
RUN_FILES = LIGHTNING_FILES + TWIN_FILES
QUICK_FILES = ("last.ckpt", "last.npz")  # the resumable checkpoints: the quick suite's midway faults
PROGS = {"lightning": "fit.py", "numpy": "baseline_numpy.py"}


def train(trainer: str, logdir: Path, *extra: str) -> int:
    if trainer == "lightning":
        from mlp_lightning.lightning.train import fit

        return fit(parse_fit_args(["--logdir", str(logdir), *SMALL, "--accelerator", "cpu", *extra]))
    from mlp_lightning.numpy_twin.train import fit

    return fit(parse_numpy_args(["--logdir", str(logdir), *SMALL, *extra]))


def outcome(run_dir: Path) -> tuple[dict, dict]:
    """What a run ends with: each tag's value at each step (the newest point where a resume
    logged a step again, as TensorBoard shows it), and the final weights."""
    scalars = {tag: dict(points) for tag, points in read_scalars(run_dir).items()}
    if (run_dir / "weights.npz").is_file():
        with np.load(run_dir / "weights.npz", allow_pickle=False) as npz:
            return scalars, {k: npz[k] for k in npz.files}
    state = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    return scalars, {k: v.numpy() for k, v in state.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Per trainer: the uninterrupted run's outcome, and how many writes each of its files takes."""
    found = {}
    for trainer, names in (("lightning", LIGHTNING_FILES), ("numpy", TWIN_FILES)):
        logdir = tmp_path_factory.mktemp(trainer)
        with contextlib.ExitStack() as stack:
            counts = {name: stack.enter_context(disk_fault(errno.ENOSPC, name, at_write=10**9))
                      for _, name, _ in names}  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):
                assert train(trainer, logdir) == 0
        found[trainer] = outcome(logdir / trainer / "version_0"), {n: c.writes for n, c in counts.items()}
    return found


def check_refused_write(trainer, name, where, err_no, at_write, tmp_path, capsys, reference) -> None:
    run_dir = tmp_path / trainer / "version_0"
    with disk_fault(err_no, name, at_write) as fault:
        assert train(trainer, tmp_path) == WRITE_FAILED_EXIT
    assert fault.failed
    out, err = capsys.readouterr()
    path = run_dir / where / name
    if (
        name == EVENTS
    ):  # its name holds the second it was opened in; a file never written is named by its pattern
        path = next(run_dir.glob(f"{EVENTS}.*"), run_dir / f"{EVENTS}.*")
    assert err.splitlines() == [f"{PROGS[trainer]}: error: cannot write {str(path)!r}: {PLAIN[err_no]}"]
    assert "Traceback" not in out + err
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no temporary file left
    assert_whole(run_dir)
    # once there is room again: resume from the last checkpoint, or start again where none was saved
    saved = any((run_dir / "checkpoints").glob("last.*"))
    if not saved:
        for p in sorted(run_dir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        run_dir.rmdir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert train(trainer, tmp_path, *(["--resume"] if saved else [])) == 0
    capsys.readouterr()
    assert_same_outcome(outcome(run_dir), reference[trainer][0])


def assert_same_outcome(got, expected) -> None:
    """The same value at every step of every tag, and the same weights, bit for bit."""
    assert got[0] == expected[0]
    assert got[1].keys() == expected[1].keys()
    for name in got[1]:
        np.testing.assert_array_equal(got[1][name], expected[1][name], strict=True)


def assert_whole(run_dir: Path) -> None:
    """Every file under a final name reads back whole (a refused write left none half-written)."""
    if (run_dir / "hparams.yaml").is_file():
        assert isinstance(yaml.safe_load((run_dir / "hparams.yaml").read_text()), dict)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    if (run_dir / "checkpoints" / "last.npz").is_file():
        load_state(run_dir / "checkpoints" / "last.npz")
    if (run_dir / "weights.npz").is_file():
        from mlp_lightning.analysis.export import load_npz

        load_npz(run_dir / "weights.npz")


def _midway(reference, trainer: str, name: str) -> int:
    return reference[trainer][1][name] // 2 + 1  # a checkpoint: with earlier ones saved before it


@pytest.mark.parametrize(
    ("trainer", "name", "where", "err_no"),
    # one file of each trainer here; every file, errno and moment in the slow suite below
    [
        pytest.param(*f, ERRNOS[i % len(ERRNOS)], marks=() if f[1] in QUICK_FILES else pytest.mark.slow)
        for i, f in enumerate(RUN_FILES)
    ],
    ids=[f"{t}-{n}" for t, n, _ in RUN_FILES],
)
def test_a_refused_write_midway_ends_the_run_in_one_line_and_the_resume_ends_bit_for_bit(
    trainer, name, where, err_no, tmp_path, capsys, reference
):
    at_write = _midway(reference, trainer, name)
    check_refused_write(trainer, name, where, err_no, at_write, tmp_path, capsys, reference)


@pytest.mark.slow
@pytest.mark.parametrize("err_no", ERRNOS, ids=[errno.errorcode[e] for e in ERRNOS])
@pytest.mark.parametrize(("trainer", "name", "where"), RUN_FILES, ids=[f"{t}-{n}" for t, n, _ in RUN_FILES])
@pytest.mark.parametrize("when", ["first", "midway", "last"])
def test_every_refused_write_of_every_run_file_ends_in_one_line_and_resumes_bit_for_bit(
    trainer, name, where, err_no, when, tmp_path, capsys, reference
):
    writes = reference[trainer][1][name]
    at_write = {"first": 1, "midway": writes // 2 + 1, "last": writes}[when]
    check_refused_write(trainer, name, where, err_no, at_write, tmp_path, capsys, reference)


@pytest.mark.parametrize(
    "trainer", [pytest.param("lightning", marks=pytest.mark.slow), "numpy"]
)  # a fresh interpreter that imports Lightning takes seconds
def test_a_checkpoint_past_the_process_file_size_limit_ends_the_script_in_one_line(tmp_path, trainer):
    """The kernel's own EFBIG (RLIMIT_FSIZE), in a child process: the issue's reproduction."""
    script = {"lightning": "fit.py", "numpy": "baseline_numpy.py"}[trainer]
    # a wide hidden layer: its checkpoint outgrows the limit, the event file and hparams.yaml do not
    argv = [
        sys.executable,
        str(REPO / "scripts" / script),
        "--logdir",
        str(tmp_path),
        *SMALL,
        "--hidden_dim",
        "2048",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO,
                          preexec_fn=file_size_limited(24_000))  # fmt: skip
    ckpt = (
        tmp_path
        / trainer
        / "version_0"
        / "checkpoints"
        / ("last.ckpt" if trainer == "lightning" else "last.npz")
    )
    assert done.returncode == WRITE_FAILED_EXIT
    assert done.stderr.splitlines() == [f"{script}: error: cannot write {str(ckpt)!r}: {PLAIN[errno.EFBIG]}"]
    assert not ckpt.exists() and not list(ckpt.parent.iterdir())  # nothing half-written under any name


# the helper scripts: (script, its arguments, the file it writes), given a trained run's directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A Lightning run and a twin run of the same flags (compare and export read them)."""
    logdir = tmp_path_factory.mktemp("runs")
    with contextlib.redirect_stdout(io.StringIO()):
        assert train("lightning", logdir) == 0 and train("numpy", logdir) == 0
    return logdir / "lightning" / "version_0", logdir / "numpy" / "version_0"


HELPERS = {
    "export-npz": ("export_weights.py", lambda runs, out: [str(runs[0]), str(out / "w.npz")], "w.npz"),
    "export-ckpt": (
        "export_weights.py",
        lambda runs, out: [str(runs[1] / "weights.npz"), str(out / "w.ckpt")],
        "w.ckpt",
    ),
    "evaluate-predictions": (
        "evaluate.py",
        lambda runs, out: [str(runs[1]), "--predictions", str(out / "predictions.csv")],
        "predictions.csv",
    ),
    "compare-figure": (
        "compare.py",
        lambda runs, out: [str(runs[1]), str(runs[0]), "--out", str(out)],
        "compare_numpy-version_0_vs_lightning-version_0.png",
    ),
}


# each helper and each errno once in the quick suite; every pair in the slow one
HELPER_CASES = [
    pytest.param(helper, err_no, earlier, marks=() if (i + 2 * j) % len(ERRNOS) == k else pytest.mark.slow,
                 id=f"{helper}-{errno.errorcode[err_no]}-{'over-an-earlier-file' if earlier else 'new'}")
    for i, helper in enumerate(HELPERS) for k, err_no in enumerate(ERRNOS)
    for j, earlier in enumerate((False, True))
]  # fmt: skip


@pytest.mark.parametrize(("helper", "err_no", "earlier"), HELPER_CASES)
def test_a_helper_script_whose_output_is_refused_says_so_in_one_line_and_leaves_no_partial_file(
    runs, tmp_path, capsys, helper, err_no, earlier
):
    script, argv, name = HELPERS[helper]
    out = tmp_path / "out"
    out.mkdir()
    if earlier:
        (out / name).write_bytes(b"an earlier result")
    main = script_main(script)
    with disk_fault(err_no, name):
        assert main(argv(runs, out)) == WRITE_FAILED_EXIT
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{script}: error: cannot write {str(out / name)!r}: {PLAIN[err_no]}"]
    assert sorted(p.name for p in out.iterdir()) == ([name] if earlier else [])
    if earlier:
        assert (out / name).read_bytes() == b"an earlier result"


@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_a_sweep_whose_figure_is_refused_says_so_in_one_line_and_leaves_no_partial_figure(
    runs, tmp_path, capsys, err_no
):
    from mlp_lightning.analysis.sweep_report import FIGURE

    logdir = tmp_path / "sweep"
    shutil.copytree(runs[0].parents[1], logdir)  # both finished runs, as a sweep leaves them
    with disk_fault(err_no, FIGURE):
        assert script_main("sweep.py")(["--summarize", "--logdir", str(logdir)]) == WRITE_FAILED_EXIT
    err = capsys.readouterr().err
    assert err.splitlines() == [f"sweep.py: error: cannot write {str(logdir / FIGURE)!r}: {PLAIN[err_no]}"]
    assert not (logdir / FIGURE).exists() and not list(logdir.glob("*.tmp"))


@pytest.mark.parametrize("err_no", ERRNOS, ids=[errno.errorcode[e] for e in ERRNOS])
def test_a_refused_benchmark_report_leaves_the_earlier_report_whole(tmp_path, err_no):
    from benchmarks import report

    path = tmp_path / "BENCHMARKS.md"
    report.write(path, "# Benchmarks\n\nearlier", "## GPU\n\nearlier")
    before = path.read_bytes()
    with disk_fault(err_no, path.name), pytest.raises(WriteFailed) as refused:
        report.write(path, "# Benchmarks\n\nnewer", "## GPU\n\nnewer")
    assert str(refused.value) == f"cannot write {str(path)!r}: {PLAIN[err_no]}"
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.slow  # two processes that import Lightning
def test_a_checkpoint_refused_to_rank_0_of_a_ddp_run_ends_every_process_in_one_line(tmp_path):
    """Only rank 0 writes; every rank learns of the refusal at the save and ends, none waits."""
    argv = [sys.executable, str(REPO / "scripts" / "fit.py"), "--logdir", str(tmp_path), *SMALL,
            "--batch_size", "16", "--hidden_dim", "2048", "--accelerator", "cpu", "--devices", "2",
            "--strategy", "ddp"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO,
                          preexec_fn=file_size_limited(24_000))  # fmt: skip
    ckpt = tmp_path / "lightning" / "version_0" / "checkpoints" / "last.ckpt"
    assert done.returncode == WRITE_FAILED_EXIT
    assert done.stderr.splitlines() == [f"fit.py: error: cannot write {str(ckpt)!r}: {PLAIN[errno.EFBIG]}"]
    assert not list(ckpt.parent.iterdir())


def whole_records(path: Path) -> bool:
    """Whether ``path`` is a sequence of whole TFRecords, up to its last byte."""
    data, at = path.read_bytes(), 0
    while at + 12 <= len(data):
        at += 12 + int.from_bytes(data[at : at + 8], "little") + 4
    return at == len(data)


def test_an_event_file_cut_short_by_the_file_size_limit_keeps_only_whole_records(tmp_path):
    """The kernel's EFBIG half-way through a record: the half record is cut off, the rest read back."""
    # the checkpoint (~5.1 KB) fits under the limit; the event file grows past it some 40 epochs in
    # (3-D data: a 2-D run's boundary images would fill it in the first epoch)
    argv = [sys.executable, str(REPO / "scripts" / "baseline_numpy.py"), "--logdir", str(tmp_path),
            "--max_epochs", "100", "--checkpoint_every_n_steps", "20", "--dim", "3"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO,
                          preexec_fn=file_size_limited(5600))  # fmt: skip
    run_dir = tmp_path / "numpy" / "version_0"
    (events,) = run_dir.glob(f"{EVENTS}.*")
    assert done.returncode == WRITE_FAILED_EXIT
    assert done.stderr.splitlines() == [
        f"baseline_numpy.py: error: cannot write {str(events)!r}: {PLAIN[errno.EFBIG]}"
    ]
    assert events.stat().st_size < 5600 and whole_records(events)
    points = {tag: len(p) for tag, p in read_scalars(run_dir).items()}
    assert min(points.values()) > 1  # what was written whole is read back


@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
def test_a_run_directory_the_disk_has_no_room_for_is_reported_in_one_line(
    tmp_path, capsys, monkeypatch, err_no
):
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name.startswith("version_"):
            raise OSError(err_no, os.strerror(err_no))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert train("numpy", tmp_path) == WRITE_FAILED_EXIT
    run_dir = tmp_path / "numpy" / "version_0"
    assert capsys.readouterr().err.splitlines() == [
        f"baseline_numpy.py: error: cannot write {str(run_dir)!r}: {PLAIN[err_no]}"
    ]
