"""scripts/sweep.py: every combination trained once, finished runs skipped, stopped ones resumed, bad values
refused before anything runs, one command per run for a job array, and the report per configuration."""

from __future__ import annotations

import dataclasses
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlp_lightning.analysis.logged_run import Run
from mlp_lightning.analysis.sweep import print_commands, run_sweep
from mlp_lightning.analysis.sweep_report import FIGURE, Configuration, configurations, labels, verdict
from mlp_lightning.cli import parse_fit_args, parse_numpy_args, parse_sweep_args, sweep_flags
from mlp_lightning.core.hparams import flag_names
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS, VAL_ACC, VAL_LOSS
from mlp_lightning.numpy_twin import train as twin_train
from mlp_lightning.runs.args import TrainerFlags
from mlp_lightning.runs.sweep import THREAD_VARIABLES, Combination, Job, run_pool, threads_per_job
from tests.helpers import REPO, read_scalars, run_numpy, run_script, signal_during_step

SCRIPTS = REPO / "scripts"
# 40 points -> 32 train: one step per epoch, 3 epochs
SMALL = ("--n_per_class", "20", "--max_epochs", "3")


def sweep(logdir: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_script("sweep.py", *argv, "--logdir", str(logdir), "--jobs", "2", timeout=timeout)


def progress_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[")]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--dropout", "0", "1.5"], "--dropout must be in [0, 1), got 1.5"),
        (["--seed", "0", "-1"], "--seed must be an integer >= 0, got -1"),
        (["--seed", "1", "1"], "seed=1 and seed=1 are the same run"),
        (
            ["--n_per_class", "20", "--val_fraction", "0.5", "0.99"],
            "--val_fraction 0.99 leaves an empty split",
        ),
        (["--jobs", "0"], "--jobs must be an integer >= 1"),
        (["--accelerator", "gpu"], "--accelerator is a Lightning flag"),
        (["--trainers", "jax"], "--trainers"),
        (["--print_commands", "--summarize"], "--print_commands and --summarize exclude each other"),
    ],
)
def test_bad_values_are_refused_in_one_line_before_any_run_starts(tmp_path, argv, named):
    logdir = tmp_path / "logs"
    result = run_script("sweep.py", *argv, "--logdir", str(logdir), timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("sweep.py: error: ") and named in result.stderr
    assert result.stdout == "" and not logdir.exists()


def test_a_bad_value_is_refused_without_importing_torch(tmp_path):
    probe = (
        "import sys\nfrom mlp_lightning.cli import parse_sweep_args\n"
        "try:\n    parse_sweep_args(['--seed', '0', '1', '--lr', '0.1', 'nan'])\n"
        "except SystemExit:\n    print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.stdout.strip() == "False", out.stderr


def test_print_commands_prints_every_combination_as_a_valid_run_and_runs_nothing(tmp_path, capsys):
    logdir = tmp_path / "logs"
    args = parse_sweep_args(["--seed", "0", "1", "--dropout", "0", "0.5", *SMALL, "--logdir", str(logdir)])
    assert print_commands(args, SCRIPTS) == 0
    lines = capsys.readouterr().out.splitlines()
    seen = []
    for line in lines:
        python, script, *argv = shlex.split(line)
        assert python == sys.executable and Path(script).parent == SCRIPTS
        parse = {"fit.py": parse_fit_args, "baseline_numpy.py": parse_numpy_args}[Path(script).name]
        run = parse(argv)
        assert run.logdir == logdir and run.resume is None
        assert run.run_id.startswith("sweep-")  # a rerun of the line continues its run
        if parse is parse_fit_args:
            assert (run.trainer.accelerator, run.trainer.devices) == ("cpu", 1)
        seen.append((Path(script).name, run.hp.seed, run.hp.dropout, run.hp.n_per_class, run.hp.max_epochs))
    expected = {
        (s, seed, p, 20, 3) for s in ("fit.py", "baseline_numpy.py") for seed in (0, 1) for p in (0, 0.5)
    }
    assert len(seen) == 8 and set(seen) == expected
    assert not logdir.exists()


def stopped_twin_run(logdir: Path, monkeypatch, *flags: str) -> Path:
    """A twin run stopped by Ctrl-C in its second step: its checkpoint holds one step."""
    with monkeypatch.context() as patch:
        signal_during_step(patch, 2, signal.SIGINT)
        assert twin_train.fit(parse_numpy_args([*flags, "--logdir", str(logdir)])) == 130
    return max((logdir / "numpy").iterdir(), key=lambda p: int(p.name.split("_")[1]))


def test_print_commands_leaves_out_finished_runs_and_resumes_stopped_ones(tmp_path, monkeypatch, capsys):
    run_numpy(["--seed", "0", *SMALL], tmp_path)
    stopped = stopped_twin_run(tmp_path, monkeypatch, "--seed", "1", *SMALL)
    capsys.readouterr()
    args = parse_sweep_args(
        ["--trainers", "numpy", "--seed", "0", "1", "2", *SMALL, "--logdir", str(tmp_path)]
    )
    print_commands(args, SCRIPTS)
    commands = [shlex.split(line)[2:] for line in capsys.readouterr().out.splitlines()]
    new_run = ["--seed", "2", *SMALL, "--logdir", str(tmp_path), "--run_id", args.combinations[2].run_id]
    assert commands == [["--resume", str(stopped)], new_run]


def test_a_sweep_skips_finished_runs_and_resumes_a_stopped_one_to_the_uninterrupted_result(
    tmp_path, monkeypatch, capsys
):
    logdir, reference = tmp_path / "logs", tmp_path / "reference"
    run_numpy(["--seed", "0", *SMALL], logdir)
    stopped = stopped_twin_run(logdir, monkeypatch, "--seed", "1", *SMALL)
    uninterrupted = run_numpy(["--seed", "1", *SMALL], reference)

    capsys.readouterr()
    argv = ["--trainers", "numpy", "--seed", "0", "1", "2", *SMALL, "--logdir", str(logdir), "--jobs", "2"]
    assert run_sweep(parse_sweep_args(argv), SCRIPTS) == 0
    out = capsys.readouterr().out
    assert "3 runs under" in out and "1 finished already, 1 to resume, 1 to start" in out
    lines = progress_lines(out)
    assert len(lines) == 2 and all(line.startswith(("[1/2]", "[2/2]")) for line in lines)
    resumed = [line for line in lines if "] numpy seed=1 n_per_class=20 max_epochs=3: val loss" in line]
    assert len(resumed) == 1 and "(resumed," in resumed[0]
    assert sorted(p.name for p in (logdir / "numpy").iterdir()) == ["version_0", "version_1", "version_2"]
    assert read_scalars(stopped) == read_scalars(uninterrupted)

    assert run_sweep(parse_sweep_args(argv), SCRIPTS) == 0
    again = capsys.readouterr().out
    assert "3 finished already, 0 to resume, 0 to start" in again and progress_lines(again) == []


def test_a_failed_run_is_reported_with_its_last_line_and_the_sweep_exits_1(tmp_path, capsys):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "baseline_numpy.py").write_text("import sys\nprint('starting')\nsys.exit('it went wrong')\n")
    args = parse_sweep_args(["--trainers", "numpy", "--seed", "0", "--logdir", str(tmp_path / "logs")])
    assert run_sweep(args, scripts) == 1
    out = capsys.readouterr().out
    assert "[1/1] numpy seed=0: failed (exit 1): it went wrong" in out
    assert "no finished runs under" in out


FAKE_RUN = """import os, sys, time, pathlib
running = pathlib.Path(sys.argv[sys.argv.index("--logdir") + 1]) / f"running_{os.getpid()}"
running.touch()
time.sleep(0.3)
print(len(list(running.parent.glob("running_*"))), *(os.environ[v] for v in %r))
running.unlink()
"""


def test_the_pool_runs_at_most_jobs_runs_at_once_each_on_its_share_of_the_cpus(tmp_path, monkeypatch):
    scripts, logdir = tmp_path / "scripts", tmp_path / "logs"
    scripts.mkdir()
    logdir.mkdir()
    (scripts / "baseline_numpy.py").write_text(FAKE_RUN % (THREAD_VARIABLES,))
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    jobs = [Job("numpy", Combination((("seed", str(seed)),), {})) for seed in range(5)]
    done = []
    assert (
        run_pool(
            jobs, logdir, scripts, 2, lambda job, code, s, out, stopping: done.append((code, out.split()))
        )
        == 0
    )
    assert len(done) == 5 and all(code == 0 for code, _ in done), done
    assert all(1 <= int(out[0]) <= 2 for _, out in done)  # the runs alive as each one looked
    assert all(out[1:] == [str(threads_per_job(2))] * len(THREAD_VARIABLES) for _, out in done)


def fake_run(path: Path, val_loss: list[float], val_acc: list[float]) -> Run:
    epochs = len(val_loss)
    scalars = {tag: np.zeros(epochs) for tag in METRIC_TAGS}
    scalars.update({VAL_LOSS: np.array(val_loss), VAL_ACC: np.array(val_acc)})
    return Run(path=path, hparams={}, steps=np.arange(epochs), scalars=scalars, started=0.0)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_twin_pairs_are_held_to_exact_parity_at_every_epoch_at_any_dropout(tmp_path, dropout):
    a = fake_run(tmp_path / "numpy/version_0", [0.5, 0.3], [0.9, 1.0])
    b = fake_run(tmp_path / "lightning/version_0", [0.5, 0.3], [0.9, 1.0])
    off = fake_run(tmp_path / "lightning/version_1", [0.5 + 1e-5, 0.3], [0.9, 1.0])  # one epoch, 1e-5 apart
    ok, why = verdict(Configuration({"dropout": dropout}, {"numpy": {0: a}, "lightning": {0: b}}))
    assert ok is True and why.startswith(f"exact at --dropout {dropout:g}: at every epoch of 1 of 1 seeds")
    ok, why = verdict(Configuration({"dropout": dropout}, {"numpy": {0: a}, "lightning": {0: off}}))
    assert ok is False and "1 of 1 seeds: seed 0: val/loss differs by up to 1e-05" in why
    assert "\n" not in why and "[" not in why  # one line, no arrays


def test_runs_that_are_not_twins_are_compared_by_welchs_two_sample_test(tmp_path):
    def runs(trainer: str, seeds: range, losses: list[float]) -> dict[int, Run]:
        return {
            s: fake_run(tmp_path / f"{trainer}/version_{s}", [v], [1.0])
            for s, v in zip(seeds, losses, strict=True)
        }

    lit = runs("lightning", range(3), [0.010, 0.020, 0.030])
    close = runs("numpy", range(10, 13), [0.011, 0.019, 0.031])  # other seeds: no pair is a twin pair
    shifted = runs("numpy", range(10, 13), [0.050, 0.060, 0.070])
    ok, why = verdict(Configuration({"dropout": 0.5}, {"numpy": close, "lightning": lit}))
    assert ok is True and "no seed run by both, so in distribution: Welch's t-test" in why
    assert "(3 vs 3 seeds): t = +0.04, |t| <= 3.18 allowed (3 df)" in why
    ok, why = verdict(Configuration({"dropout": 0.5}, {"numpy": shifted, "lightning": lit}))
    assert ok is False and "\n" not in why


def test_one_seed_a_side_without_a_pair_gives_no_verdict_and_one_trainer_none_either(tmp_path):
    a = fake_run(tmp_path / "numpy/version_0", [0.3], [1.0])
    b = fake_run(tmp_path / "lightning/version_0", [0.3], [1.0])
    assert verdict(Configuration({"dropout": 0.5}, {"numpy": {0: a}, "lightning": {1: b}}))[0] is None
    assert verdict(Configuration({"dropout": 0.0}, {"numpy": {0: a}}))[0] is None


def test_runs_are_grouped_by_every_stored_hyperparameter_but_the_seed(tmp_path):
    runs = []
    for i, (trainer, seed, dropout) in enumerate(
        [("numpy", 0, 0.0), ("numpy", 1, 0.0), ("lightning", 0, 0.5)]
    ):
        run_dir = tmp_path / trainer / f"version_{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "hparams.yaml").write_text(f"seed: {seed}\ndropout: {dropout}\nmax_epochs: 3\n")
        runs.append(fake_run(run_dir, [0.1], [1.0]))
    groups = configurations(runs)
    assert [sorted(g.runs["numpy"]) if "numpy" in g.runs else None for g in groups] == [[0, 1], None]
    assert [g.hparams for g in groups] == [
        {"dropout": 0.0, "max_epochs": 3},
        {"dropout": 0.5, "max_epochs": 3},
    ]
    assert labels(groups) == (["dropout=0.0", "dropout=0.5"], "max_epochs=3")
    assert labels(groups[:1]) == (["dropout=0.0 max_epochs=3"], "")


def test_the_sweep_takes_every_flag_both_trainers_take_from_their_shared_definitions():
    flags = set(sweep_flags())
    assert set(flag_names()) | {"config", "checkpoint_every_n_steps"} <= flags
    assert not ({f.name for f in dataclasses.fields(TrainerFlags)} | {"logdir", "resume"}) & flags


@pytest.mark.slow
def test_ctrl_c_stops_every_run_at_a_checkpoint_and_the_same_sweep_resumes_them(tmp_path):
    long = ("--n_per_class", "40", "--batch_size", "8", "--max_epochs", "1000")  # 8000 steps, seconds each
    argv = ["--trainers", "numpy", "--seed", "0", "1", *long, "--logdir", str(tmp_path), "--jobs", "2"]
    sweep_process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "sweep.py"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoints = [tmp_path / f"numpy/version_{v}/checkpoints/last.npz" for v in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(c.is_file() for c in checkpoints) and time.monotonic() < deadline:  # saved at step 500
        time.sleep(0.05)
    sweep_process.send_signal(signal.SIGINT)
    out, err = sweep_process.communicate(timeout=120)
    assert sweep_process.returncode == 130, err
    assert len([line for line in progress_lines(out) if "stopped, checkpoint saved" in line]) == 2, out
    assert not any((c.parent.parent / "weights.npz").exists() for c in checkpoints)

    again = run_script("sweep.py", *argv, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 finished already, 2 to resume, 0 to start" in again.stdout
    assert sorted(p.name for p in (tmp_path / "numpy").iterdir()) == ["version_0", "version_1"]
    assert all((c.parent.parent / "weights.npz").is_file() for c in checkpoints)


@pytest.mark.slow
def test_a_sweep_of_both_trainers_reports_each_configuration_and_summarize_reports_the_same(tmp_path):
    result = sweep(tmp_path, "--seed", "0", "1", "--dropout", "0", "0.5", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = progress_lines(result.stdout)
    assert sorted(line.split(":")[0].split("] ")[1] for line in lines) == sorted(
        f"{trainer} seed={seed} dropout={p} n_per_class=20 max_epochs=3"
        for trainer in ("numpy", "lightning")
        for seed in (0, 1)
        for p in ("0", "0.5")
    )
    table = result.stdout.split("\n\n", 1)[1]
    assert "dropout=0.0\n" in table and "dropout=0.5\n" in table
    assert "verdict: the twins agree: exact at --dropout 0:" in table
    assert "verdict: the twins agree: exact at --dropout 0.5:" in table
    assert (tmp_path / FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = run_script("sweep.py", "--summarize", "--logdir", str(tmp_path), timeout=120)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout == table
