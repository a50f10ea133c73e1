"""``--logdir`` is checked while parsing: a place that cannot be created or written is refused at once.

Exit 2, one line naming the path and why, nothing written, and torch never imported (the run
would otherwise pay seconds of imports and end in a traceback at its first mkdir).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from tests.helpers import REPO

SCRIPTS = ["fit.py", "baseline_numpy.py"]
# runs a script's main() as `python scripts/<name> ...` would, then says how it ended
PROBE = """
import json, runpy, sys
script, argv = sys.argv[1], sys.argv[2:]
sys.argv = [script, *argv]
try:
    runpy.run_path(script, run_name="__main__")
    code = 0
except SystemExit as end:
    code = end.code
except BaseException as err:  # a traceback: name it, so the test says what happened
    code = type(err).__name__
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "lightning": "lightning" in sys.modules}))
"""


def refusal(script: str, logdir: str, cwd: Path) -> tuple[dict, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "scripts" / script), "--logdir", logdir],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def virtual(root: str, *more: str):
    """``<root>/x`` as a test case, skipped where ``root`` (/proc, /sys) does not exist."""
    return pytest.param(
        f"{root}/x", *more, marks=pytest.mark.skipif(not os.path.isdir(root), reason=f"no {root}"), id=root
    )


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("logdir", [virtual("/proc"), virtual("/sys"), "under_a_file/x", "under_a_file/x/y"])
def test_a_logdir_that_cannot_be_created_is_refused_before_torch_is_imported(script, logdir, tmp_path):
    (tmp_path / "under_a_file").write_text("a regular file\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    ended, err = refusal(script, logdir, tmp_path)
    assert ended == {"code": 2, "torch": False, "lightning": False}, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"{script}: error: --logdir {logdir!r} cannot be created"), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "under_a_file").read_text() == "a regular file\n"


@pytest.mark.parametrize(
    ("logdir", "reason"),
    [
        virtual("/proc", "cannot be created in '/proc': it accepts no new directories"),
        virtual("/sys", "cannot be created in '/sys': "),
    ],
)
def test_the_reason_is_said_in_plain_words(logdir, reason, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_fit_args(["--logdir", logdir])
    assert exit_info.value.code == 2
    assert reason in capsys.readouterr().err


def test_a_path_under_a_regular_file_says_which_file(tmp_path, capsys):
    (tmp_path / "notes").write_text("")
    with pytest.raises(SystemExit):
        parse_numpy_args(["--logdir", str(tmp_path / "notes" / "logs")])
    err = capsys.readouterr().err.strip()
    assert err == (
        f"baseline_numpy.py: error: --logdir {str(tmp_path / 'notes' / 'logs')!r} cannot be created: "
        f"{str(tmp_path / 'notes')!r} is a file, not a directory"
    )


def test_a_logdir_behind_a_broken_symlink_is_refused(tmp_path, capsys):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SystemExit):
        parse_fit_args(["--logdir", str(tmp_path / "gone")])
    assert "is a broken symbolic link" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a directory without write permission")
def test_an_existing_logdir_without_write_permission_is_refused(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o555)
    with pytest.raises(SystemExit):
        parse_fit_args(["--logdir", str(logs)])
    assert f"--logdir {str(logs)!r} is not writable: permission denied" in capsys.readouterr().err


@pytest.mark.parametrize("parse", [parse_fit_args, parse_numpy_args])
def test_checking_a_new_logdir_leaves_nothing_behind(parse, tmp_path):
    args = parse(["--logdir", str(tmp_path / "a" / "b" / "logs")])
    assert args.logdir == tmp_path / "a" / "b" / "logs"
    assert list(tmp_path.iterdir()) == []  # neither the logdir nor the probe that tested its parent
    (tmp_path / "logs").mkdir()
    parse(["--logdir", str(tmp_path / "logs")])
    assert list((tmp_path / "logs").iterdir()) == []


def test_an_existing_logdir_that_is_a_file_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / "logs").write_text("")
    with pytest.raises(SystemExit):
        parse_fit_args(["--logdir", str(tmp_path / "logs")])
    err = capsys.readouterr().err.strip()
    assert err == f"fit.py: error: --logdir {str(tmp_path / 'logs')!r} is a file, not a directory"
