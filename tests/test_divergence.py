"""A diverging run stops before the poisoned optimizer step and keeps its last good checkpoint."""

from __future__ import annotations

import functools
import math

import lightning as L
import pytest
import torch

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.report import done_words
from mlp_lightning.lightning import train as train_module
from mlp_lightning.lightning.callbacks import DivergenceGuard
from mlp_lightning.lightning.train import fit
from tests.helpers import read_scalars, run_script

SMALL = ("--accelerator", "cpu", "--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3")
STEPS_PER_EPOCH = 4


class Record(L.Callback):
    """Keeps every weight the optimizer produced and every checkpoint step, to check after the run."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


class PoisonGradient(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_after_backward(self, trainer, pl_module) -> None:
        if trainer.global_step + 1 == self.step:
            pl_module.model.W2.grad[0, 0] = float("inf")


@pytest.fixture(params=["immediate", "deferred"])
def guard_mode(request, monkeypatch) -> str:
    """Each test runs with the CPU's immediate guard and with the GPU's deferred one, forced on the CPU."""
    if request.param == "deferred":
        monkeypatch.setattr(
            train_module, "DivergenceGuard", functools.partial(DivergenceGuard, deferred=True)
        )
    return request.param


def run(logdir, *flags, callbacks=()) -> int:
    return fit(parse_fit_args(["--logdir", str(logdir), *SMALL, *flags]), callbacks=callbacks)


def last_checkpoint(logdir) -> dict:
    path = logdir / "lightning" / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(path, weights_only=True)


def test_huge_learning_rate_stops_before_the_step_with_epoch_and_step_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, guard_mode
):
    record = Record()
    assert run(tmp_path, "--lr", "1e6", "--checkpoint_every_n_steps", "1", callbacks=[record]) == 1
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "diverged" in line)
    steps_done = len(record.weights)
    epoch = steps_done // STEPS_PER_EPOCH + 1
    assert f"training diverged at epoch {epoch}, step {steps_done + 1}: non-finite loss" in line
    outcome = "stopped before the optimizer step" if guard_mode == "immediate" else "its update was undone"
    assert outcome in line and "--lr" in line
    assert f"the last good checkpoint ({done_words(steps_done // STEPS_PER_EPOCH, steps_done)})" in err
    assert "Traceback" not in err
    ckpt = last_checkpoint(tmp_path)
    assert ckpt["global_step"] == steps_done  # saved after the last step that was taken
    for name, value in ckpt["state_dict"].items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, record.weights[-1][name]), name
    # the epochs that finished are logged, the one that diverged is not
    assert len(read_scalars(tmp_path / "lightning" / "version_0").get("val/loss", [])) == epoch - 1


def test_a_non_finite_gradient_with_a_finite_loss_is_caught_and_names_the_parameter(
    tmp_path, capsys, guard_mode
):
    record = Record()
    assert run(tmp_path, "--checkpoint_every_n_steps", "2", callbacks=[record, PoisonGradient(step=6)]) == 1
    err = capsys.readouterr().err
    assert "training diverged at epoch 2, step 6: non-finite gradient of model.W2" in err
    assert "non-finite loss" not in err
    assert len(record.weights) == 5  # step 6 was never taken
    ckpt = last_checkpoint(tmp_path)
    assert ckpt["global_step"] == 4  # the periodic save before, kept
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_weights_poisoned_by_a_step_never_reach_a_checkpoint(tmp_path, capsys, monkeypatch, guard_mode):
    """An update that overflows the weights with finite gradients: the save refuses them."""
    steps = []
    original_step = torch.optim.SGD.step

    def poisoning_step(self, *args, **kwargs):
        result = original_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 3:
            with torch.no_grad():
                self.param_groups[1]["params"][0][0] = math.nan  # b1
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", poisoning_step)
    assert run(tmp_path, "--checkpoint_every_n_steps", "1") == 1
    err = capsys.readouterr().err
    if guard_mode == "immediate":  # the save refuses them
        assert "training diverged by epoch 1, step 3: non-finite model.b1" in err
        assert "not saved over the last good checkpoint" in err
    else:  # the guard undid the step before the save
        assert "training diverged at epoch 1, step 3: non-finite model.b1 after the step" in err
        assert "its update was undone on the device" in err
    ckpt = last_checkpoint(tmp_path)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_the_deferred_guard_undoes_a_bad_step_and_every_later_one_and_names_the_first(
    tmp_path, capsys, monkeypatch
):
    """With no save due before it, the verdict waits for the epoch's validation; the weights stay put."""
    monkeypatch.setattr(train_module, "DivergenceGuard", functools.partial(DivergenceGuard, deferred=True))
    record = Record()
    assert run(tmp_path, "--checkpoint_every_n_steps", "4", callbacks=[record, PoisonGradient(step=6)]) == 1
    err = capsys.readouterr().err
    assert (
        "training diverged at epoch 2, step 6: non-finite gradient of model.W2; "
        "its update was undone on the device, as were the 2 after it" in err
    )
    assert len(record.weights) == 8  # steps 6, 7 and 8 ran on the device ...
    for later in record.weights[5:]:  # ... and left the weights as step 5 did
        for name, value in later.items():
            assert torch.equal(value, record.weights[4][name]), name
    ckpt = last_checkpoint(tmp_path)
    assert ckpt["global_step"] == 4  # epoch 1's end; epoch 2 never saved
    assert len(read_scalars(tmp_path / "lightning" / "version_0").get("val/loss", [])) == 1


@pytest.mark.parametrize(
    ("script", "flags"),
    # fit.py in a fresh interpreter that imports Lightning: the slow suite; in-process tests above
    [pytest.param("fit.py", SMALL, marks=pytest.mark.slow), ("baseline_numpy.py", SMALL[2:])],
    ids=["fit", "twin"],
)
def test_a_diverging_run_prints_the_projects_message_first_and_no_library_warning(tmp_path, script, flags):
    """torchmetrics warned of the NaN loss, numpy of the overflow, ahead of the message that explains it."""
    done = run_script(script, *flags, "--lr", "1e6", "--logdir", str(tmp_path), timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Warning" not in done.stderr and "warn" not in done.stderr
    first, kept = done.stderr.splitlines()
    assert first.startswith(f"{script}: training diverged at epoch ")
    assert kept.startswith(("no checkpoint", "the last good checkpoint"))


def test_the_twin_quiets_numpys_overflow_warnings_only_inside_its_training_loop():
    import numpy as np

    from mlp_lightning.core.errors import DivergenceError
    from mlp_lightning.core.hparams import HParams
    from mlp_lightning.numpy_twin.train import train

    before = np.geterr()
    with pytest.raises(DivergenceError, match="training diverged"):
        train(HParams(n_per_class=40, batch_size=16, max_epochs=3, lr=1e6))
    assert np.geterr() == before
    with pytest.warns(RuntimeWarning, match="overflow"):  # outside it, numpy warns as before
        np.float32(3e38) * np.float32(10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None], ids=["nan", "inf", "-inf", "finite"])
def test_the_guards_finiteness_check_sees_any_nan_or_infinity_anywhere(dtype, bad):
    from mlp_lightning.lightning.callbacks import all_finite

    for shape, where in (((), ()), ((7,), (6,)), ((3, 5), (2, 0)), ((512, 2048), (300, 1999))):
        t = torch.randn(shape).to(dtype) * 1e3
        if bad is not None:
            t[where] = bad
        assert bool(all_finite(t)) is (bad is None), (shape, bad)
    assert bool(all_finite(torch.full((4,), torch.finfo(dtype).max, dtype=dtype)))  # large, not infinite
