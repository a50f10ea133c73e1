"""A resumed run's new event file sorts after the interrupted run's: TensorBoard reads them in name order."""

import os
import time

import pytest
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mlp_lightning.runs import layout as runs
from mlp_lightning.runs.layout import own_event_file, wait_for_a_later_event_file_second
from tests.helpers import GIB, run_numpy, run_script


def event_file(run_dir, second: int, host: str = "host", pid: int = 1, n: int = 0):
    path = run_dir / f"events.out.tfevents.{second:010d}.{host}.{pid}.{n}"
    path.write_bytes(b"")
    return path


def test_a_file_opened_after_the_wait_sorts_after_one_from_the_same_second(tmp_path):
    # within one second, host, pid and counter decide the order: this one sorts after any real name
    earlier = event_file(tmp_path, int(time.time()), host="~~~~", pid=99999999, n=99)

    wait_for_a_later_event_file_second(tmp_path)
    writer = EventFileWriter(str(tmp_path))
    writer.close()

    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2
    assert names[0] == earlier.name  # read first by TensorBoard, as it was written first


def test_no_wait_when_the_newest_file_is_from_an_earlier_second(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(runs.time, "sleep", slept.append)
    event_file(tmp_path, int(time.time()) - 5)
    event_file(tmp_path, int(time.time()) - 60, n=10)

    wait_for_a_later_event_file_second(tmp_path)

    assert slept == []


def test_a_run_directory_without_event_files_does_not_wait(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(runs.time, "sleep", slept.append)
    (tmp_path / "events.out.tfevents.copy").write_bytes(b"")  # not a name TensorBoard's writer makes

    wait_for_a_later_event_file_second(tmp_path)

    assert slept == []


@pytest.mark.parametrize("stamp", ["9999999999", "99999999999999999999", "9" * 200])
def test_a_name_from_a_future_second_waits_at_most_a_second(tmp_path, monkeypatch, stamp):
    """A received run's names can claim any second: the wait for it is capped, never a century."""
    slept = []
    monkeypatch.setattr(runs.time, "sleep", slept.append)
    (tmp_path / f"events.out.tfevents.{stamp}.x.1.0").write_bytes(b"")

    wait_for_a_later_event_file_second(tmp_path)

    assert sum(slept) <= runs.EVENT_WAIT_MAX_S == 1.0


def test_a_stamp_of_digits_other_than_ascii_is_a_stray_name_not_an_error(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(runs.time, "sleep", slept.append)
    (tmp_path / "events.out.tfevents.\u00b2\u0663.x.1.0").write_bytes(b"")  # "²٣".isdigit(), int() refuses

    wait_for_a_later_event_file_second(tmp_path)

    assert slept == []


def test_a_resume_of_a_received_run_naming_a_second_centuries_ahead_ends_within_seconds(tmp_path):
    """The probe: an empty ``events.out.tfevents.9999999999...`` made ``--resume`` sleep ~250 years
    (20 digits: an OverflowError traceback). Under a 1 GiB cap and a timeout, it resumes and ends."""
    logdir = tmp_path / "logs"
    run_dir = run_numpy(["--max_epochs", "1", "--n_per_class", "20"], logdir)
    planted = [run_dir / f"events.out.tfevents.{'9' * n}.x.1.0" for n in (10, 20)]
    for path in planted:
        path.write_bytes(b"")

    result = run_script(
        "baseline_numpy.py", "--resume", str(run_dir), "--max_epochs", "2", timeout=30, memory=GIB
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert all(path.read_bytes() == b"" for path in planted)  # read by name, never written


def test_a_planted_name_with_this_process_pid_is_a_stray_name_not_an_error(tmp_path):
    pid = os.getpid()
    for name in (
        f"events.out.tfevents.{pid}.x",
        f"events.out.tfevents.1.h.{pid}.1e3",
        f"events.out.tfevents.1.{pid}.9",
    ):
        (tmp_path / name).write_bytes(b"")
    real = tmp_path / f"events.out.tfevents.1700000000.node1.cluster.{pid}.0"  # a host name with dots
    real.write_bytes(b"")
    assert own_event_file(tmp_path) == real
