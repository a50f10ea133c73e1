"""Step-level parity: both sides one optimizer step at a time, on identical batches."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mlp_lightning.analysis.compare import WEIGHT_TOLERANCE
from mlp_lightning.analysis.parity import step_parity
from mlp_lightning.core.hparams import HParams
from mlp_lightning.numpy_twin import model as twin

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 10  # 640 training points in batches of 64


def test_float32_sides_stay_within_1e6_for_the_whole_default_run():
    report = step_parity(HParams(dropout=0.0))
    assert report.steps == HParams().max_epochs * STEPS_PER_EPOCH
    assert report.first_divergence is None, report.summary()
    assert report.max_param_diff.max() <= WEIGHT_TOLERANCE
    assert report.loss_diff.max() <= 1e-6


def test_float64_sides_agree_to_rounding():
    report = step_parity(HParams(dropout=0.0), dtype=np.float64, tolerance=1e-12)
    assert report.first_divergence is None, report.summary()
    assert report.loss_diff.max() <= 1e-12


def test_reports_the_first_step_a_planted_bias_decay_bug_shows(monkeypatch):
    """Weight decay on the biases too: they start at zero, so step 1 agrees and step 2 does not."""

    def decay_everything(params, grads, lr, weight_decay, scratch=None):
        for name in ("b1", "b2"):
            grads[name] += weight_decay * params[name]
        return sgd_update(params, grads, lr, weight_decay, scratch)

    sgd_update = twin.sgd_update
    monkeypatch.setattr(twin, "sgd_update", decay_everything)
    report = step_parity(HParams(dropout=0.0), steps=20, dtype=np.float64, tolerance=1e-12)
    assert report.first_divergence == 2
    assert report.worst_param[1] in ("b1", "b2")
    assert "first divergence beyond 1e-12 at step 2" in report.summary()


def test_stops_at_the_divergence_when_asked(monkeypatch):
    monkeypatch.setattr(twin, "sgd_update", lambda p, g, lr, wd, scratch=None: None)  # never updates
    report = step_parity(HParams(dropout=0.0), steps=50, stop_at_divergence=True)
    assert report.first_divergence == report.steps == 1


@pytest.mark.parametrize("dropout", [0.5, 0.3])
def test_with_dropout_on_both_sides_apply_the_same_masks_step_by_step(dropout):
    report = step_parity(HParams(dropout=dropout))  # the whole default run, float32
    assert report.first_divergence is None, report.summary()
    assert report.max_param_diff.max() <= WEIGHT_TOLERANCE and report.loss_diff.max() <= 1e-6
    report = step_parity(HParams(dropout=dropout), steps=50, dtype=np.float64, tolerance=1e-12)
    assert report.first_divergence is None and report.loss_diff.max() <= 1e-12, report.summary()


def _script_main():
    spec = importlib.util.spec_from_file_location("parity_steps", ROOT / "scripts" / "parity_steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_script_prints_the_verdict(capsys):
    assert _script_main()(["--steps", "3", "--every", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["step", "epoch", "batch", "max|dparam|", "param", "|dloss|"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert lines[-1].startswith("no divergence beyond 1e-06 in 3 steps")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
        (["--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
        (["--tolerance", "nan"], "--tolerance must be a number > 0, got nan"),
    ],
)
def test_script_bad_flags_end_in_one_line_and_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as done:
        _script_main()(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"parity_steps.py: error: {message}") and err.count("\n") == 1
