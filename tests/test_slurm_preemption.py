"""A preempted SLURM job, simulated on this machine: signalled, requeued, the same command rerun.

The environment is what ``srun`` sets for a task (SLURM_JOB_ID, SLURM_NTASKS, SLURM_PROCID, ...;
a job name other than 'bash' or 'interactive', which Lightning would take for a shell), and a fake
``scontrol`` on PATH records the arguments it is called with. SIGUSR1 (``--signal=SIGUSR1@90``) or
SIGTERM (preemption, the time limit) lands at a random moment after the first epoch; the same
command then runs again with SLURM_RESTART_COUNT=1, as the requeued job would run it.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.runs.interrupt import StopRequest
from mlp_lightning.runs.run_id import RUN_ID_FILE, recorded_run_id
from mlp_lightning.runs.slurm import requeue_line, slurm_job
from tests.helpers import REPO, metrics_csv_scalars, read_scalars, signal_during_step

JOB = "4242"
SCRIPTS = {"numpy": "baseline_numpy.py", "lightning": "fit.py"}
# long enough that a signal up to MAX_DELAY_S after the first epoch's line lands mid-run
FLAGS = {"numpy": ["--max_epochs", "600"], "lightning": ["--max_epochs", "120", "--accelerator", "cpu"]}
MAX_DELAY_S = 1.0
TINY = ["--n_per_class", "20", "--batch_size", "16", "--max_epochs", "3"]


def srun_env(tmp_path: Path, procid: int = 0, ntasks: int = 1, job: str = JOB, **more: str) -> dict[str, str]:
    """This process's environment plus what srun sets for task ``procid``, and the fake scontrol."""
    fake = tmp_path / "bin"
    if not fake.is_dir():
        fake.mkdir()
        (fake / "scontrol").write_text('#!/bin/sh\necho "$@" >> "$SCONTROL_LOG"\n')
        (fake / "scontrol").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.pop("MLP_LIGHTNING_RUN_VERSION", None)
    return {
        **env,
        "PATH": f"{fake}{os.pathsep}{env['PATH']}",
        "SCONTROL_LOG": str(tmp_path / "scontrol.log"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        "SLURM_JOB_ID": job,
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": str(ntasks),
        "SLURM_NTASKS_PER_NODE": str(ntasks),
        "SLURM_PROCID": str(procid),
        "SLURM_LOCALID": str(procid),
        "SLURM_NODEID": "0",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "localhost",
        **more,
    }


def scontrol_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "scontrol.log"
    return log.read_text().splitlines() if log.exists() else []


def command(trainer: str, logdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "scripts" / SCRIPTS[trainer]),
        *FLAGS[trainer],
        "--logdir",
        str(logdir),
        *extra,
    ]


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def signalled(procs: list[subprocess.Popen], signum: int, delay: float) -> list[tuple[int, str, str]]:
    """Signal every process ``delay`` seconds after the first one's first epoch line; their endings."""
    try:
        for line in procs[0].stdout:
            if line.startswith("epoch 01"):
                break
        # SLURM signals every task of the job's steps; srun's tasks get it a moment apart
        with contextlib.suppress(subprocess.TimeoutExpired):
            procs[0].wait(timeout=delay)
        for proc in procs:
            proc.send_signal(signum)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    return ended(procs)


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def final_state(trainer: str, run_dir: Path) -> dict[str, np.ndarray]:
    """The run's final weights, as arrays."""
    if trainer == "numpy":
        from mlp_lightning.analysis.export import load_npz

        return load_npz(run_dir / "weights.npz")
    import torch

    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return {name: tensor.numpy() for name, tensor in saved["state_dict"].items()}


def assert_same_run(trainer: str, a: Path, b: Path) -> None:
    """Weights, every logged scalar and metrics.csv equal, bit for bit."""
    wa, wb = final_state(trainer, a), final_state(trainer, b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name], wb[name]) and wa[name].dtype == wb[name].dtype, name
    assert read_scalars(a) == read_scalars(b)
    assert metrics_csv_scalars(a) == metrics_csv_scalars(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each trainer's run of the same command, never signalled (under SLURM too, another job)."""
    runs = {}
    for trainer in SCRIPTS:
        tmp = tmp_path_factory.mktemp(f"uninterrupted_{trainer}")
        done = run(command(trainer, tmp / "logs"), srun_env(tmp, job="777"), tmp)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[trainer] = tmp / "logs" / trainer / "version_0"
    return runs


@pytest.mark.slow  # three processes per case: ~10-20 s each on 2 cores
@pytest.mark.parametrize("trainer", ["numpy", "lightning"])
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM], ids=["SIGUSR1", "SIGTERM"])
def test_a_signalled_slurm_job_rerun_by_its_requeue_ends_as_an_uninterrupted_run(
    tmp_path, uninterrupted, trainer, signum
):
    logdir, cwd = tmp_path / "logs", tmp_path / "cwd"
    cwd.mkdir()
    # a stray checkpoint of Lightning's own SLURM handler, left by an earlier job: never restored
    shutil.copy(uninterrupted["lightning"] / "checkpoints" / "last.ckpt", cwd / "hpc_ckpt_1.ckpt")
    delay = random.uniform(0, MAX_DELAY_S)
    env = srun_env(tmp_path)
    [(code, out, err)] = signalled([start(command(trainer, logdir), env, cwd)], signum, delay)
    name = signal.Signals(signum).name
    assert code == 128 + signum, f"delay {delay:.3f} s: {err[-3000:]}"
    assert f"stopped by {name}" in err
    if signum == signal.SIGUSR1:
        assert f"requeued SLURM job {JOB} (scontrol requeue {JOB})" in err
        assert scontrol_calls(tmp_path) == [f"requeue {JOB}"]
    else:
        assert f"SLURM job {JOB} is not requeued on SIGTERM" in err
        assert scontrol_calls(tmp_path) == []
    run_dir = logdir / trainer / "version_0"
    assert recorded_run_id(run_dir).startswith(f"slurm-{JOB}-")

    again = run(command(trainer, logdir), {**env, "SLURM_RESTART_COUNT": "1"}, cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run_dir}" in again.stdout
    assert sorted(p.name for p in (logdir / trainer).iterdir()) == ["version_0"]
    assert scontrol_calls(tmp_path) == ([f"requeue {JOB}"] if signum == signal.SIGUSR1 else [])
    assert_same_run(trainer, uninterrupted[trainer], run_dir)
    # nothing was written outside the run: the working directory holds the stray file alone
    assert sorted(p.name for p in cwd.iterdir()) == ["hpc_ckpt_1.ckpt"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP = ["--n_per_class", "50", "--val_fraction", "0.23", "--batch_size", "16", "--max_epochs", "20"]


def ddp_tasks(tmp_path: Path, logdir: Path, job: str, **more: str) -> list[subprocess.Popen]:
    """Two srun tasks of a 2-task DDP job, one process each (gloo on the CPU)."""
    port = str(free_port())
    cmd = [sys.executable, str(REPO / "scripts" / "fit.py"), *DDP, "--logdir", str(logdir)]
    cmd += ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    return [
        start(cmd, srun_env(tmp_path, procid=rank, ntasks=2, job=job, MASTER_PORT=port, **more), tmp_path)
        for rank in (0, 1)
    ]


def ended(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Each process's exit code and the rest of its output, once it has ended (killed after 300 s)."""
    try:
        outputs = [proc.communicate(timeout=300) for proc in procs]
        return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def ddp_uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_uninterrupted")
    reference = ended(ddp_tasks(tmp, tmp / "logs", job="778"))
    assert [code for code, _, _ in reference] == [0, 0], reference[0][2][-3000:] + reference[1][2][-3000:]
    return tmp / "logs" / "lightning" / "version_0"


@pytest.mark.slow  # two 2-process launches per signal, one more for the reference: ~15 s each on 2 cores
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM], ids=["SIGUSR1", "SIGTERM"])
def test_a_two_task_slurm_ddp_job_stops_at_one_batch_saves_once_and_its_requeue_is_exact(
    tmp_path, ddp_uninterrupted, signum
):
    logdir = tmp_path / "logs"
    delay = random.uniform(0, MAX_DELAY_S)
    stopped = signalled(ddp_tasks(tmp_path, logdir, job=JOB), signum, delay)
    code = 128 + signum
    assert [code for code, _, _ in stopped] == [code, code], f"delay {delay:.3f} s: {stopped[0][2][-3000:]}"
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in stopped[0][2] and "stopped by" not in stopped[1][2]  # rank 0 says it
    requeued = [f"requeue {JOB}"] if signum == signal.SIGUSR1 else []
    assert scontrol_calls(tmp_path) == requeued  # rank 0 alone asks
    run_dir = logdir / "lightning" / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    again = ended(ddp_tasks(tmp_path, logdir, job=JOB, SLURM_RESTART_COUNT="1"))
    assert [code for code, _, _ in again] == [0, 0], again[0][2][-3000:] + again[1][2][-3000:]
    assert f"resuming {run_dir}" in again[0][1]
    assert sorted(p.name for p in (logdir / "lightning").iterdir()) == ["version_0"]
    assert scontrol_calls(tmp_path) == requeued
    assert_same_run("lightning", ddp_uninterrupted, run_dir)
    assert not list(tmp_path.glob("hpc_ckpt_*"))


# --- in this process, fast ---


def test_requeue_is_asked_after_sigusr1_only_under_slurm_and_not_on_sigterm_or_when_refused():
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    array = {"SLURM_JOB_ID": "91", "SLURM_ARRAY_JOB_ID": "90", "SLURM_ARRAY_TASK_ID": "3"}
    assert slurm_job(array) == "90_3" and slurm_job({"SLURM_JOB_ID": "91"}) == "91" and slurm_job({}) is None
    line = requeue_line("fit.py", "SIGUSR1", True, array, fake_run)
    assert (
        line == "fit.py: requeued SLURM job 90_3 (scontrol requeue 90_3): the same command continues this run"
    )
    assert calls == [["scontrol", "requeue", "90_3"]]
    assert requeue_line("fit.py", "SIGUSR1", False, array, fake_run) == (
        "fit.py: --requeue false: SLURM job 90_3 is not requeued"
    )
    assert "is not requeued on SIGTERM" in requeue_line("fit.py", "SIGTERM", True, array, fake_run)
    assert requeue_line("fit.py", "SIGINT", True, array, fake_run) is None
    assert "not running under SLURM" in requeue_line("fit.py", "SIGUSR1", True, {}, fake_run)
    assert requeue_line("fit.py", "SIGTERM", True, {}, fake_run) is None
    assert calls == [["scontrol", "requeue", "90_3"]]  # once, for the one SIGUSR1 under SLURM that asked

    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "scontrol: error: Invalid job id specified\n")

    assert requeue_line("fit.py", "SIGUSR1", True, array, failing) == (
        "fit.py: could not requeue SLURM job 90_3: scontrol requeue 90_3 exited 1: "
        "scontrol: error: Invalid job id specified"
    )


def twin(argv: list[str]) -> tuple[int, str]:
    from mlp_lightning.numpy_twin.train import fit

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = fit(parse_numpy_args(argv))
    return code, err.getvalue()


def test_a_run_id_start_continues_its_run_and_sigusr1_outside_slurm_just_saves(tmp_path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    argv = [*TINY, "--logdir", str(tmp_path / "logs"), "--run_id", "job-7"]
    with monkeypatch.context() as patch:
        signal_during_step(patch, 5, signal.SIGUSR1)
        code, err = twin(argv)
    assert code == 138 and "not running under SLURM (no SLURM_JOB_ID): no job to requeue" in err
    run_dir = tmp_path / "logs" / "numpy" / "version_0"
    assert (run_dir / RUN_ID_FILE).read_text() == "job-7\n"
    assert parse_numpy_args(argv).resume == str(run_dir)  # the same command continues it
    assert twin(argv)[0] == 0
    assert twin(argv)[0] == 0  # finished: a third start trains nothing
    assert sorted(p.name for p in (tmp_path / "logs" / "numpy").iterdir()) == ["version_0"]
    assert twin([*TINY, "--logdir", str(tmp_path / "whole")])[0] == 0
    assert_same_run("numpy", tmp_path / "whole" / "numpy" / "version_0", run_dir)


@pytest.mark.slow  # trains in this process twice or more: a second each
def test_a_restarted_job_of_several_commands_continues_each_in_its_own_run(tmp_path, monkeypatch):
    """A batch script that trains two configurations one after the other, stopped in each."""
    for name, value in srun_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    logdir = tmp_path / "logs"
    first, second = ([*TINY, "--logdir", str(logdir), "--seed", seed] for seed in ("1", "2"))
    for argv in (first, second):
        with monkeypatch.context() as patch:
            signal_during_step(patch, 4, signal.SIGTERM)
            assert twin(argv)[0] == 143
    runs = [logdir / "numpy" / f"version_{n}" for n in (0, 1)]
    assert recorded_run_id(runs[0]) != recorded_run_id(runs[1])
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert [parse_numpy_args(argv).resume for argv in (first, second)] == [str(r) for r in runs]
    assert twin(first)[0] == twin(second)[0] == 0
    assert sorted(p.name for p in (logdir / "numpy").iterdir()) == ["version_0", "version_1"]
    for seed, run_dir in zip(("1", "2"), runs, strict=True):
        whole = tmp_path / f"whole{seed}"
        assert twin([*TINY, "--logdir", str(whole), "--seed", seed])[0] == 0
        assert_same_run("numpy", whole / "numpy" / "version_0", run_dir)


@pytest.mark.slow  # trains in this process twice or more: a second each
def test_a_job_array_line_from_print_commands_interrupted_and_rerun_continues_its_run(
    tmp_path, monkeypatch, capsys
):
    from mlp_lightning.analysis.sweep import print_commands
    from mlp_lightning.cli import parse_sweep_args

    logdir = tmp_path / "logs"
    print_commands(
        parse_sweep_args(["--trainers", "numpy", "--seed", "3", *TINY, "--logdir", str(logdir)]), REPO
    )
    [line] = capsys.readouterr().out.splitlines()
    argv = line.split()[2:]
    assert "--run_id" in argv
    with monkeypatch.context() as patch:
        signal_during_step(patch, 3, signal.SIGTERM)
        assert twin(argv)[0] == 143
    assert twin(argv)[0] == 0
    assert [p.name for p in (logdir / "numpy").iterdir()] == ["version_0"]
    assert twin([*TINY, "--seed", "3", "--logdir", str(tmp_path / "whole")])[0] == 0
    assert_same_run("numpy", tmp_path / "whole" / "numpy" / "version_0", logdir / "numpy" / "version_0")


@pytest.mark.parametrize(
    ("variables", "named"),
    [({"SLURM_PROCID": "1"}, "SLURM_PROCID=1"), ({"RANK": "1", "WORLD_SIZE": "1"}, "RANK=1")],
)
def test_a_lone_process_told_it_is_a_nonzero_rank_is_refused_in_one_line(
    monkeypatch, capsys, variables, named
):
    for name in ("SLURM_PROCID", "SLURM_NTASKS", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        parse_fit_args(["--logdir", "unused"])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fit.py: error: {named} makes this process rank 1 of a multi-process launch")
    assert parse_numpy_args(["--logdir", "unused"]).logdir.name == "unused"  # the twin is one process anyway


def test_under_slurm_lightning_leaves_sigusr1_and_sigterm_to_the_run_and_restores_no_stray_checkpoint(
    tmp_path, monkeypatch
):
    import lightning as L

    from mlp_lightning.lightning.train import fit

    for name, value in srun_env(tmp_path).items():
        if name.startswith("SLURM_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"not a checkpoint: restoring it would fail")
    seen = []

    class Handlers(L.Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            env = trainer._accelerator_connector.cluster_environment
            handlers = [signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM)]
            seen.append((type(env).__name__, env.auto_requeue, [getattr(h, "__self__", h) for h in handlers]))

    argv = [*TINY, "--logdir", str(tmp_path / "logs"), "--accelerator", "cpu"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert fit(parse_fit_args(argv), callbacks=[Handlers()]) == 0
    assert seen
    for environment, auto_requeue, owners in seen:
        assert (environment, auto_requeue) == ("SLURMEnvironment", False)
        assert all(isinstance(owner, StopRequest) for owner in owners), owners
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "hpc_ckpt_1.ckpt", "logs"]
    assert recorded_run_id(tmp_path / "logs" / "lightning" / "version_0").startswith(f"slurm-{JOB}-")


def test_a_sweep_under_slurm_stopped_by_sigusr1_requeues_its_job_once_and_its_runs_ask_for_none(
    tmp_path, monkeypatch, capsys
):
    from mlp_lightning.analysis import sweep as analysis_sweep
    from mlp_lightning.cli import parse_sweep_args
    from mlp_lightning.runs.sweep import Job

    for name, value in srun_env(tmp_path).items():
        if name.startswith("SLURM_") or name in ("PATH", "SCONTROL_LOG"):
            monkeypatch.setenv(name, value)
    args = parse_sweep_args(
        ["--trainers", "numpy", "--seed", "0", "1", *TINY, "--logdir", str(tmp_path / "logs")]
    )
    argv = Job("numpy", args.combinations[0]).argv(tmp_path / "logs", REPO / "scripts", requeue=False)
    assert argv[2:4] == ["--requeue", "false"] and parse_numpy_args(argv[2:]).requeue is False

    def stopped_pool(jobs, logdir, scripts, processes, on_done, on_progress=None) -> int:
        return 138  # SIGUSR1 passed on to the runs, each saved and asked for no requeue

    monkeypatch.setattr(analysis_sweep, "run_pool", stopped_pool)
    assert analysis_sweep.run_sweep(args, REPO / "scripts") == 138
    assert f"sweep: requeued SLURM job {JOB} (scontrol requeue {JOB})" in capsys.readouterr().out
    assert scontrol_calls(tmp_path) == [f"requeue {JOB}"]
