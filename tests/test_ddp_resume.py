"""An interrupted two-process DDP run, resumed, ends exactly where the uninterrupted one does."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mlp_lightning.core.errors import ResumeError
from mlp_lightning.lightning.checkpoint_io import PROJECT_KEY
from mlp_lightning.lightning.launch import RANK_DIED_EXIT
from mlp_lightning.lightning.rank_state import own_rank_state
from tests.ddp_launch import FIT, REPO, fit_cmd, launch
from tests.helpers import read_scalars

# 100 points -> 77 train: per epoch 2 global batches of 2 x 16 and a last one of 13 (6 / 7),
# so the ranks draw different numbers of dropout bits and hold different metric sums
DDP = ["--accelerator=cpu", "--devices=2", "--strategy=ddp"]
HP = ["--n_per_class=50", "--val_fraction=0.23", "--batch_size=16", "--max_epochs=3"]
STOP_AT_STEP = 5  # mid-epoch 2: a resume must restore each rank's RNG and metric sums


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def checked_launch(cmd: list[str], expected_code: int, **env: str) -> str:
    code, stdout, stderr, survivors = launch(cmd, timeout=180, env=env)
    assert code == expected_code, stderr[-3000:]
    assert survivors == [], f"processes outlived the run: {survivors}"
    return stdout


def test_each_rank_takes_back_its_own_state():
    saved = {"ranks": [{"torch_rng": "rng of rank 0"}, {"torch_rng": "rng of rank 1"}]}
    trainer = SimpleNamespace(world_size=2, global_rank=1)
    assert own_rank_state(saved, trainer) == {"torch_rng": "rng of rank 1"}


def test_a_checkpoint_without_ranks_is_one_process_state():
    saved = {"torch_rng": "rng", "metrics": {}}
    assert own_rank_state(saved, SimpleNamespace(world_size=1, global_rank=0)) is saved


def test_resume_on_another_number_of_processes_is_refused():
    saved = {"ranks": [{}, {}]}
    with pytest.raises(ResumeError, match=r"trained by 2 process\(es\) and this launch has 1"):
        own_rank_state(saved, SimpleNamespace(world_size=1, global_rank=0))


@pytest.mark.slow  # three 2-process launches: ~15 s each on 2 cores
def test_interrupted_ddp_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    checked_launch(fit_cmd(*DDP[1:], *HP, f"--logdir={whole}"), 0)
    driver = [sys.executable, str(REPO / "tests" / "ddp_stop_at_step.py")]
    checked_launch([*driver, *DDP, *HP, f"--logdir={parts}"], 143, STOP_AT_STEP=str(STOP_AT_STEP))
    run_dir = parts / "lightning" / "version_0"
    assert last_checkpoint(run_dir)["global_step"] == STOP_AT_STEP
    # a bare --resume: the checkpoint's own flags relaunch the two processes on the CPU
    checked_launch([sys.executable, FIT, f"--resume={run_dir}"], 0)

    a, b = last_checkpoint(whole / "lightning" / "version_0"), last_checkpoint(run_dir)
    assert a["global_step"] == b["global_step"] == 9
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    assert len(a[PROJECT_KEY]["ranks"]) == len(b[PROJECT_KEY]["ranks"]) == 2
    for rank_a, rank_b in zip(a[PROJECT_KEY]["ranks"], b[PROJECT_KEY]["ranks"], strict=True):
        assert same_metric_sums(rank_a["metrics"], rank_b["metrics"])  # (no RNG: masks are the stream's)
    # every logged value, the interrupted epoch's training metrics included
    assert read_scalars(whole / "lightning" / "version_0") == read_scalars(run_dir)


@pytest.mark.slow  # three 2-process launches: ~15 s each on 2 cores
def test_a_killed_rank_ends_the_run_in_a_few_lines_and_its_resume_is_exact(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    checked_launch(fit_cmd(*DDP[1:], *HP, f"--logdir={whole}"), 0)
    driver = [sys.executable, str(REPO / "tests" / "ddp_kill_rank_at_step.py")]
    cmd = [*driver, *DDP, *HP, "--checkpoint_every_n_steps=2", f"--logdir={parts}"]
    start = time.monotonic()
    code, _, stderr, survivors = launch(cmd, timeout=180, env={"KILL_AT_STEP": str(STOP_AT_STEP + 1)})
    assert (code, survivors) == (RANK_DIED_EXIT, [])
    assert time.monotonic() - start < 60
    run_dir = parts / "lightning" / "version_0"
    message = stderr.strip().splitlines()[-3:]
    assert message[0].startswith("fit.py: process 1 of 2 ended unexpectedly (killed by SIGKILL)"), stderr[
        -2000:
    ]
    assert message[1].startswith("its checkpoint (epoch 2, step 4) is kept")
    assert message[2] == f"resume with: python scripts/fit.py --resume {run_dir}"
    assert "Traceback" not in stderr and "gloo" not in stderr
    assert last_checkpoint(run_dir)["global_step"] == 4
    checked_launch([sys.executable, FIT, f"--resume={run_dir}"], 0)

    a, b = last_checkpoint(whole / "lightning" / "version_0"), last_checkpoint(run_dir)
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    for rank_a, rank_b in zip(a[PROJECT_KEY]["ranks"], b[PROJECT_KEY]["ranks"], strict=True):
        assert same_metric_sums(rank_a["metrics"], rank_b["metrics"])  # (no RNG: masks are the stream's)
    assert read_scalars(whole / "lightning" / "version_0") == read_scalars(run_dir)


def same_metric_sums(a: dict, b: dict) -> bool:
    """Whether two ranks' saved torchmetrics states hold the same tensors, metric by metric."""
    if a.keys() != b.keys():
        return False
    for name in a:
        sa, sb = a[name]["states"], b[name]["states"]
        if sa.keys() != sb.keys():
            return False
        for key in sa:
            x, y = sa[key], sb[key]
            pairs = zip(x, y, strict=True) if isinstance(x, list) else [(x, y)]
            if not all(torch.equal(u, v) for u, v in pairs):
                return False
    return True
