"""fit.py under two-process DDP on the CPU (gloo), through a subprocess: Lightning's ``ddp``
relaunches ``sys.argv``, so it cannot run inside pytest's own process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlp_lightning.core.data import BatchOrder, load_splits, shard
from mlp_lightning.core.hparams import HParams, flag_names
from mlp_lightning.core.tensorboard_schema import VAL_ACC, VAL_LOSS, epoch_end_step
from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.lightning.model import TwoLayerMLP
from tests.ddp_launch import fit_cmd, launch
from tests.helpers import metrics_csv_scalars, read_scalars

pytestmark = pytest.mark.slow  # two fresh interpreters that import lightning: ~15 s each on 2 cores

# 3 classes x 25 = 75 points: 64 train (two global batches of 2 x 16, equal shards, so the
# DDP step is the single-process step on the global batch) and 11 val, split 5 / 6 between
# the ranks, so a mean of per-rank means would differ from the true mean over all 11.
HP = HParams(num_classes=3, n_per_class=25, val_fraction=0.15, batch_size=16, dropout=0.0, max_epochs=2)
# every flag as this config sets it (but the columns and the data file, which a generated set leaves empty)
FLAGS = [
    f"--{k}={getattr(HP, k)}" for k in flag_names() if k != "batch_size" and getattr(HP, k) not in ((), "")
]


def only_run_dir(logdir: Path) -> Path:
    runs = sorted((logdir / "lightning").iterdir())
    assert [p.name for p in runs] == ["version_0"], "only rank 0 may claim a run directory"
    return runs[0]


def checkpoint_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {name: ckpt["state_dict"][f"model.{name}"] for name in PARAM_NAMES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """One 2-process DDP run and its single-process twin on the global batch, both in float64."""
    out = {}
    for name, extra in {
        "ddp": ["--devices=2", "--strategy=ddp", f"--batch_size={HP.batch_size}"],
        "single": ["--devices=1", f"--batch_size={2 * HP.batch_size}"],
    }.items():
        logdir = tmp_path_factory.mktemp(name)
        cmd = fit_cmd(*FLAGS, *extra, "--precision=64-true", f"--logdir={logdir}")
        code, stdout, stderr, survivors = launch(cmd, timeout=180)
        assert code == 0, stderr[-3000:]
        assert survivors == [], f"processes outlived the run: {survivors}"
        out[name] = (stdout, logdir)
    return out


def test_ddp_run_writes_one_run_directory_and_prints_each_line_once(runs):
    stdout, logdir = runs["ddp"]
    run_dir = only_run_dir(logdir)
    lines = stdout.splitlines()
    assert [line[:8] for line in lines if line.startswith(("epoch", "final"))] == [
        "epoch 01",
        "epoch 02",
        "final   ",
    ]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert (run_dir / "hparams.yaml").is_file()
    # said once, by global rank 0; a one-process run says nothing of the kind
    assert lines.count("fit.py: training on 2 processes (strategy ddp, accelerator cpu)") == 1
    assert "training on" not in runs["single"][0]


def test_ddp_step_axis_counts_global_batches(runs):
    _, logdir = runs["ddp"]
    steps_per_epoch = len(BatchOrder(HP.n_train, HP.batch_size, HP.seed, rank=0, world_size=2))
    assert steps_per_epoch == 2
    scalars = read_scalars(only_run_dir(logdir))
    assert [step for step, _ in scalars[VAL_LOSS]] == [epoch_end_step(e, steps_per_epoch) for e in range(2)]


def test_ddp_metrics_csv_has_one_row_per_epoch_with_the_event_files_float32_values(runs):
    """Written by global rank 0 alone; the 64-true run's float64 metrics as the event file rounds them."""
    run_dir = only_run_dir(runs["ddp"][1])
    assert metrics_csv_scalars(run_dir) == read_scalars(run_dir)


def test_ddp_on_equal_shards_trains_the_same_weights_as_one_process_on_the_global_batch(runs):
    ddp = checkpoint_weights(only_run_dir(runs["ddp"][1]))
    single = checkpoint_weights(only_run_dir(runs["single"][1]))
    for name in PARAM_NAMES:
        assert ddp[name].dtype == torch.float64
        # float64: only the order of the gradient sum differs (all-reduce of two halves)
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-12, atol=1e-14)


def test_ddp_logged_val_metrics_are_those_of_the_whole_split(runs):
    _, logdir = runs["ddp"]
    run_dir = only_run_dir(logdir)
    weights = {k: v.numpy() for k, v in checkpoint_weights(run_dir).items()}
    model = TwoLayerMLP(weights, dropout=0.0).eval()
    _, _, Xva, yva = load_splits(HP)
    with torch.no_grad():
        logits = model(torch.from_numpy(Xva).double())
        losses = F.cross_entropy(logits, torch.from_numpy(yva), reduction="none").numpy()  # (N_val,)
        correct = (logits.argmax(1).numpy() == yva).sum()
    scalars = read_scalars(run_dir)
    logged_loss, logged_acc = scalars[VAL_LOSS][-1][1], scalars[VAL_ACC][-1][1]
    assert logged_acc == np.float32(correct / len(yva))
    # float32 metric states: the sum over the two shards rounds differently than one sum
    assert logged_loss == pytest.approx(losses.mean(), rel=1e-6)
    # the test can tell: averaging the two ranks' means (a per-rank mean, unweighted) is off
    parts = [losses[shard(0, len(losses), r, 2)] for r in range(2)]
    assert [len(p) for p in parts] == [5, 6]
    assert np.mean([p.mean() for p in parts]) != pytest.approx(losses.mean(), rel=1e-6)


@pytest.fixture(scope="module")
def dropout_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The default run (dropout 0.5, float32, 5 epochs) as DDP 2 x 64 and as the twin at 128."""
    from tests.helpers import run_numpy

    flags = ["--max_epochs=5"]
    logdir = tmp_path_factory.mktemp("dropout")
    cmd = fit_cmd(*flags, "--devices=2", "--strategy=ddp", "--batch_size=64", f"--logdir={logdir}")
    code, _, stderr, survivors = launch(cmd, timeout=240)
    assert code == 0 and survivors == [], stderr[-3000:]
    return run_numpy([*flags, "--batch_size=128"], logdir), only_run_dir(logdir)


def test_ddp_with_dropout_on_equals_the_twin_on_the_global_batch(dropout_runs):
    """Each rank draws exactly its rows of the global batch's masks (they follow the point, not the rank)."""
    from mlp_lightning.analysis.compare import WEIGHT_TOLERANCE, check_pair, hparam_differences
    from mlp_lightning.analysis.export import load_npz
    from mlp_lightning.analysis.logged_run import load_run

    twin_dir, ddp_dir = dropout_runs
    twin, ddp = load_run(twin_dir), load_run(ddp_dir)
    assert twin.typed_hparams().dropout == 0.5
    assert hparam_differences(twin, ddp) == ["batch_size: 128 vs 64"]  # per process: 2 x 64 = 128
    ddp_as_global = dataclasses.replace(ddp, hparams=twin.hparams)
    assert check_pair(twin, ddp_as_global) == []  # losses within 1e-6 at every epoch, accuracies equal
    twin_w, ddp_w = load_npz(twin_dir / "weights.npz"), checkpoint_weights(ddp_dir)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(
            ddp_w[name].numpy(), twin_w[name], rtol=0, atol=WEIGHT_TOLERANCE, err_msg=name
        )


def test_compare_understands_a_ddp_run_against_the_twin_at_its_global_batch(dropout_runs, capsys):
    from mlp_lightning.analysis.compare import compare_runs

    twin_dir, ddp_dir = dropout_runs
    assert compare_runs(twin_dir, ddp_dir, check=True) == 0  # no --force: 2 x 64 is the twin's 128
    out = capsys.readouterr().out
    assert "note: the same global batch: 2 processes x --batch_size 64 = 128" in out
    assert "check passed" in out
