"""TensorBoard end to end: the real server, on localhost, serves both twins' runs as written."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator

from mlp_lightning.core.tensorboard_schema import ALL_TAGS
from tests.helpers import run_both

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90  # TensorBoard imports TensorFlow-free plugins and scans the logdir first


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    exe = shutil.which("tensorboard")
    base = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    # --load_fast false: the pure-Python reader, so the test does not depend on the Rust data server
    return [*base, "--logdir", str(logdir), "--port", str(port), "--host", HOST, "--load_fast", "false",
            "--reload_interval", "1"]  # fmt: skip


def get_json(port: int, path: str, **query: str):
    url = f"http://{HOST}:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for_runs(server: subprocess.Popen, port: int, runs: set[str], log: Path) -> list[str]:
    """Poll /data/runs until every run is listed; fail (not hang) if the server dies or is slow."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    listed: list[str] = []
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited with code {server.returncode}: {log.read_text()[-2000:]}")
        try:
            listed = get_json(port, "/data/runs")
            if runs <= set(listed):
                return listed
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"tensorboard did not list {sorted(runs)} within {READY_TIMEOUT_S} s (listed: {listed})")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def event_file_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a run's event files, as (step, value), read by TensorBoard's reader."""
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_serves_both_runs_with_the_same_tags_steps_and_values(tmp_path):
    logdir = tmp_path / "logs"
    run_dirs = run_both(["--max_epochs", "3", "--dropout", "0"], logdir)
    written = {f"{d.parent.name}/{d.name}": event_file_scalars(d) for d in run_dirs}
    assert set(written) == {"numpy/version_0", "lightning/version_0"}
    port = free_port()
    log = tmp_path / "tensorboard.log"  # a file, not a pipe: a full pipe would stall the server
    with open(log, "w") as out:
        server = subprocess.Popen(tensorboard_command(logdir, port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_runs(server, port, set(written), log)
        tags = get_json(port, "/data/plugin/scalars/tags")
        served = {
            run: {
                tag: [(step, value) for _, step, value in get_json(
                    port, "/data/plugin/scalars/scalars", run=run, tag=tag
                )]
                for tag in tags[run]
            }
            for run in written
        }  # fmt: skip
    finally:
        stop(server)
    numpy_run, lightning_run = served["numpy/version_0"], served["lightning/version_0"]
    assert set(numpy_run) == set(lightning_run) == set(ALL_TAGS)
    for tag in ALL_TAGS:
        assert [s for s, _ in numpy_run[tag]] == [s for s, _ in lightning_run[tag]] == [9, 19, 29], tag
    assert served == written  # float32 values survive the JSON round trip exactly
