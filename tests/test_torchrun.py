"""fit.py started by torchrun: Lightning reads the launch from the environment (TorchElasticEnvironment)."""

from __future__ import annotations

import sys

import pytest

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.data import BatchOrder
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.tensorboard_schema import VAL_LOSS, epoch_end_step
from mlp_lightning.lightning.launch import run_version
from mlp_lightning.runs.layout import RUN_VERSION_ENV
from tests.ddp_launch import FIT, launch
from tests.helpers import read_scalars

LAUNCH_ENV = (
    "RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "SLURM_NTASKS",
    RUN_VERSION_ENV,
)  # fmt: skip
# a rank's launcher also says how many processes there are (a lone rank 1 is refused: test_slurm_preemption)
WORLD = {"RANK": "WORLD_SIZE", "SLURM_PROCID": "SLURM_NTASKS"}


@pytest.fixture
def clean_env(monkeypatch):
    for key in LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize("key", ["RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"])
def test_a_nonzero_rank_of_an_outside_launch_claims_no_run_directory(clean_env, tmp_path, key):
    clean_env.setenv(key, "1")
    if key in WORLD:
        clean_env.setenv(WORLD[key], "2")
    assert run_version(parse_fit_args([f"--logdir={tmp_path}"])) is None
    assert list(tmp_path.iterdir()) == []


def test_rank_zero_of_an_outside_launch_claims_the_run_directory(clean_env, tmp_path):
    clean_env.setenv("RANK", "0")
    clean_env.setenv("LOCAL_RANK", "0")
    assert run_version(parse_fit_args([f"--logdir={tmp_path}"])) == 0
    assert (tmp_path / "lightning" / "version_0").is_dir()


@pytest.mark.slow  # torchrun and two workers that import lightning: ~20 s on 2 cores
def test_torchrun_two_workers_train_one_run_with_one_summary(tmp_path):
    hp = HParams(n_per_class=80, max_epochs=2)  # 128 train points: one global batch of 2 x 64 per epoch
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", FIT,
        "--accelerator=cpu", "--devices=2", "--strategy=ddp",
        f"--n_per_class={hp.n_per_class}", f"--max_epochs={hp.max_epochs}", f"--logdir={tmp_path}",
    ]  # fmt: skip
    code, stdout, stderr, survivors = launch(cmd, timeout=240, env={"OMP_NUM_THREADS": "1"})
    assert code == 0, stderr[-3000:]
    assert survivors == [], f"processes outlived torchrun: {survivors}"
    runs = sorted(p.name for p in (tmp_path / "lightning").iterdir())
    assert runs == ["version_0"], "only global rank 0 may claim a run directory"
    assert [line[:8] for line in stdout.splitlines() if line.startswith(("epoch", "final"))] == [
        "epoch 01",
        "epoch 02",
        "final   ",
    ]
    # the step axis proves a world of 2: a single process would take 1 step more per epoch
    steps = len(BatchOrder(hp.n_train, hp.batch_size, hp.seed, rank=0, world_size=2))
    assert steps == 1 != len(BatchOrder(hp.n_train, hp.batch_size, hp.seed))
    scalars = read_scalars(tmp_path / "lightning" / "version_0")
    assert [step for step, _ in scalars[VAL_LOSS]] == [epoch_end_step(e, steps) for e in range(hp.max_epochs)]
