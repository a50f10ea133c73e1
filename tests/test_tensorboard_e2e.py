"""TensorBoard end to end: the real server, on localhost, serves both twins' runs as written.

Through TensorBoard's HTTP API, as its browser tabs read it: /data/runs; the SCALARS tab
(/data/plugin/scalars/tags, /scalars); the CUSTOM SCALARS tab (/data/plugin/custom_scalars/layout,
/scalars); the IMAGES tab (/data/plugin/images/tags, /images, /individualImage); the TEXT tab
(/data/plugin/text/tags, /text); and metrics.csv beside the values served.
"""

from __future__ import annotations

import html
import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.boundary_image import IMAGE_SIZE
from mlp_lightning.core.data import BatchOrder
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.report import should_report
from mlp_lightning.core.tensorboard_schema import (
    ALL_TAGS,
    CUSTOM_SCALARS_LAYOUT,
    DECISION_BOUNDARY,
    RUN_TEXT,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
    epoch_end_step,
)
from tests.helpers import metrics_csv_scalars, png_size, run_both

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


RUNS = ("numpy/version_0", "lightning/version_0")
MAX_EPOCHS = 3


@dataclass
class Served:
    """Both trainers' runs in one logdir, and a TensorBoard server on it (alive during the module)."""

    logdir: Path
    port: int
    run_dirs: dict[str, Path]  # run name -> its directory
    argv: list[str]

    def get(self, path: str, **query: str):
        return get_json(self.port, path, **query)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tensorboard")
    logdir = tmp_path / "logs"
    argv = ["--max_epochs", str(MAX_EPOCHS), "--dropout", "0"]
    run_dirs = {f"{d.parent.name}/{d.name}": d for d in run_both(argv, logdir)}
    assert set(run_dirs) == set(RUNS)
    port = free_port()
    log = tmp_path / "tensorboard.log"  # a file, not a pipe: a full pipe would stall the server
    with open(log, "w") as out:
        server = subprocess.Popen(tensorboard_command(logdir, port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_runs(server, port, set(RUNS), log)
        result = Served(logdir, port, run_dirs, argv)
        wait_for_last_images(server, result, log)  # listed runs may still be loading
        yield result
    finally:
        stop(server)


def served_scalars(served: Served, run: str) -> dict[str, list[tuple[int, float]]]:
    """/data/plugin/scalars/scalars for every tag of ``run``, as (step, value)."""
    tags = served.get("/data/plugin/scalars/tags")[run]
    return {
        tag: [
            (step, value) for _, step, value in served.get("/data/plugin/scalars/scalars", run=run, tag=tag)
        ]
        for tag in tags
    }


def wait_for_last_images(server: subprocess.Popen, served: Served, log: Path) -> None:
    """Poll until both runs' last image is served: each trainer writes it after all its scalars."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited with code {server.returncode}: {log.read_text()[-2000:]}")
        try:
            counts = [
                len(served.get("/data/plugin/images/images", run=run, tag=DECISION_BOUNDARY, sample="0"))
                for run in RUNS
            ]
            if counts == [len(REPORTED_STEPS)] * len(RUNS):
                return
        except urllib.error.HTTPError:
            pass  # 404 "no image data" until the run's images are loaded
        time.sleep(0.5)
    pytest.fail(f"tensorboard did not serve every image within {READY_TIMEOUT_S} s")


STEPS_PER_EPOCH = len(BatchOrder(HParams().n_train, HParams().batch_size, seed=0))
REPORTED_STEPS = [  # the epochs the console reports (1, 5, 10, ..., last), at their scalars' step
    epoch_end_step(epoch - 1, STEPS_PER_EPOCH)
    for epoch in range(1, MAX_EPOCHS + 1)
    if should_report(epoch, MAX_EPOCHS)
]


def test_tensorboard_serves_both_runs_with_the_same_tags_steps_and_values(served):
    written = {run: event_file_scalars(d) for run, d in served.run_dirs.items()}
    got = {run: served_scalars(served, run) for run in RUNS}
    numpy_run, lightning_run = got["numpy/version_0"], got["lightning/version_0"]
    assert set(numpy_run) == set(lightning_run) == set(ALL_TAGS)
    for tag in ALL_TAGS:
        assert [s for s, _ in numpy_run[tag]] == [s for s, _ in lightning_run[tag]] == [9, 19, 29], tag
    assert got == written  # float32 values survive the JSON round trip exactly


def test_metrics_csv_of_each_run_holds_the_values_tensorboard_serves(served):
    for run, run_dir in served.run_dirs.items():
        assert metrics_csv_scalars(run_dir) == served_scalars(served, run), run


def test_custom_scalars_tab_draws_train_and_val_on_one_chart_per_metric_for_both_runs(served):
    layout = served.get("/data/plugin/custom_scalars/layout")
    (category,) = layout["category"]  # both runs' layouts merge into one
    ((title, charts),) = CUSTOM_SCALARS_LAYOUT.items()
    assert category["title"] == title
    assert [(c["title"], c["multiline"]["tag"]) for c in category["chart"]] == [
        (chart, regexes) for chart, (_, regexes) in charts.items()
    ]
    expected_tags = {"loss": {TRAIN_LOSS, VAL_LOSS}, "accuracy": {TRAIN_ACC, VAL_ACC}}
    for chart in category["chart"]:
        (regex,) = chart["multiline"]["tag"]
        for run in RUNS:
            lines = served.get("/data/plugin/custom_scalars/scalars", run=run, tag=regex)
            assert lines["regex_valid"], regex
            assert set(lines["tag_to_events"]) == expected_tags[chart["title"]], (run, chart["title"])
            scalars = served_scalars(served, run)
            for tag, events in lines["tag_to_events"].items():
                assert [(step, value) for _, step, value in events] == scalars[tag]


def test_images_tab_steps_through_the_decision_boundary_at_the_reported_epochs_of_both_runs(served):
    tags = served.get("/data/plugin/images/tags")
    for run in RUNS:
        assert set(tags[run]) == {DECISION_BOUNDARY}, run
        entries = served.get("/data/plugin/images/images", run=run, tag=DECISION_BOUNDARY, sample="0")
        assert [e["step"] for e in entries] == REPORTED_STEPS == [9, 29], run
        for entry in entries:
            url = f"http://{HOST}:{served.port}/data/plugin/images/individualImage?{entry['query']}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert png_size(response.read()) == (IMAGE_SIZE, IMAGE_SIZE)


def test_text_tab_shows_each_runs_command_and_its_print_config_yaml(served, capsys):
    tags = served.get("/data/plugin/text/tags")
    for run, (script, parse) in {
        "numpy/version_0": ("baseline_numpy.py", parse_numpy_args),
        "lightning/version_0": ("fit.py", parse_fit_args),
    }.items():
        assert tags[run] == [RUN_TEXT], run
        (entry,) = served.get("/data/plugin/text/text", run=run, tag=RUN_TEXT)
        assert entry["step"] == 0
        argv = [*served.argv, "--logdir", str(served.logdir)]
        if script == "fit.py":
            argv += ["--accelerator", "cpu", "--devices", "1"]
        command = shlex.join(["python", f"scripts/{script}", *argv])
        with pytest.raises(SystemExit):
            parse([*argv, "--print_config"])
        printed = capsys.readouterr().out
        assert f"<pre><code>{html.escape(command, quote=False)}\n</code></pre>" in entry["text"], run
        assert f"<pre><code>{html.escape(printed, quote=False)}</code></pre>" in entry["text"], run
