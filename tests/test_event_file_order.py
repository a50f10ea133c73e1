"""A resumed run's new event file sorts after the interrupted run's: TensorBoard reads them in name order."""

import time

from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mlp_lightning.runs import layout as runs
from mlp_lightning.runs.layout import wait_for_a_later_event_file_second


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
