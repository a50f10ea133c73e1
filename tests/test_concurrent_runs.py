"""Runs started together on one --logdir each get their own version directory and their own points."""

from __future__ import annotations

import multiprocessing as mp
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlp_lightning.runs.layout import claim_run_dir
from tests.helpers import REPO, read_scalars


def _claim_after_barrier(args) -> str:
    logdir, barrier = args
    barrier.wait()  # every process calls mkdir at the same moment
    return str(claim_run_dir(Path(logdir), "lightning")[0])


def test_processes_claiming_at_the_same_instant_get_distinct_versions(tmp_path):
    n = 8
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            claimed = pool.map(_claim_after_barrier, [(str(tmp_path), barrier)] * n)
    assert sorted(claimed) == sorted(str(tmp_path / "lightning" / f"version_{v}") for v in range(n))


@pytest.mark.slow
def test_two_fit_and_two_numpy_runs_started_together_never_share_a_run(tmp_path):
    epochs = 2
    common = ["--n_per_class", "20", "--max_epochs", str(epochs), "--logdir", str(tmp_path)]
    jobs = [
        ("fit.py", 11, ["--accelerator", "cpu"]),
        ("fit.py", 12, ["--accelerator", "cpu"]),
        ("baseline_numpy.py", 13, []),
        ("baseline_numpy.py", 14, []),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / script), *common, "--seed", str(seed), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for script, seed, extra in jobs
    ]
    run_dirs = {}
    for (_, seed, _), proc in zip(jobs, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        run_dirs[seed] = Path(re.search(r"run directory: (\S+)", out).group(1))

    assert len(set(run_dirs.values())) == 4
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/version_*")) == [
        "lightning/version_0",
        "lightning/version_1",
        "numpy/version_0",
        "numpy/version_1",
    ]
    for seed, run_dir in run_dirs.items():
        assert yaml.safe_load((run_dir / "hparams.yaml").read_text())["seed"] == seed
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
        scalars = read_scalars(run_dir)
        assert all(len(points) == epochs for points in scalars.values()), scalars  # its own, once each
    # different seeds: no two runs hold the same curve, so no run wrote into another's file
    curves = [tuple(v for _, v in read_scalars(d)["val/loss"]) for d in run_dirs.values()]
    assert len(set(curves)) == 4
