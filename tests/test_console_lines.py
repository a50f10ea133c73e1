"""What a run prints stays short and reads the same from both trainers: at most 30 summary lines however
long the run, the same progress bar, one wording for how far a stopped or resumed run got."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import tqdm

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.report import BAR_FORMAT, SUMMARY_LINES, done_words, report_every, should_report
from mlp_lightning.core.tensorboard_schema import METRIC_TAGS
from mlp_lightning.numpy_twin import train as twin_train

SMALL = ("--n_per_class", "40", "--batch_size", "16")  # 64 training points: 4 steps an epoch
STEPS_PER_EPOCH = 4


@pytest.mark.parametrize("max_epochs", [1, 30, 140, 141, 200, 400, 3000, 100_000])
def test_a_run_prints_at_most_30_summary_lines_however_long_and_every_5_epochs_up_to_140(max_epochs):
    reported = [epoch for epoch in range(1, max_epochs + 1) if should_report(epoch, max_epochs)]
    assert len(reported) <= SUMMARY_LINES == 30
    assert reported[0] == 1 and reported[-1] == max_epochs
    if max_epochs <= 140:  # the reference notebook's spacing
        assert reported == sorted({1, *range(5, max_epochs + 1, 5), max_epochs})
    else:  # a multiple of 5, evenly spaced
        assert report_every(max_epochs) % 5 == 0 and reported[1] == report_every(max_epochs)


def test_a_600_epoch_twin_run_prints_at_most_30_summary_lines(tmp_path, capsys):
    argv = ["--n_per_class", "8", "--batch_size", "16", "--max_epochs", "600", "--logdir", str(tmp_path)]
    assert twin_train.fit(parse_numpy_args(argv)) == 0
    summaries = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert 20 <= len(summaries) <= 30, summaries
    assert summaries[0].startswith("epoch 01 |") and summaries[-1].startswith("epoch 600 |")


class _LightningBar(L.Callback):
    """What Lightning's bar shows at each epoch's end: its description, total and metrics."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, list[str]]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        callback = trainer.progress_bar_callback
        bar = callback.train_progress_bar
        names = list(callback.get_metrics(trainer, pl_module))
        self.seen.append((bar.desc.removesuffix(": "), bar.total, names))
        assert callback.BAR_FORMAT == BAR_FORMAT


def _twin_bar(monkeypatch) -> list:
    """What the twin's bar shows after each epoch's metrics: its description, total and metrics."""
    seen = []

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs) -> None:
            assert kwargs["bar_format"] == BAR_FORMAT and kwargs["total"] == STEPS_PER_EPOCH
            self.shown = kwargs["desc"]  # a disabled bar keeps no desc of its own
            super().__init__(*args, **kwargs)

        def set_description(self, desc=None, refresh=True) -> None:
            self.shown = desc
            super().set_description(desc, refresh)

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs) -> None:
            seen.append((self.shown, self.total, list(ordered_dict or kwargs)))
            super().set_postfix(ordered_dict, refresh, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    return seen


def test_both_bars_show_the_epoch_of_max_epochs_its_steps_and_the_four_metrics_without_v_num(
    tmp_path, monkeypatch, capsys
):
    from mlp_lightning.lightning.train import fit

    lightning = _LightningBar()
    argv = ["--accelerator", "cpu", *SMALL, "--max_epochs", "2", "--logdir", str(tmp_path)]
    assert fit(parse_fit_args(argv), callbacks=[lightning]) == 0
    twin = _twin_bar(monkeypatch)
    assert twin_train.fit(parse_numpy_args([*SMALL, "--max_epochs", "2", "--logdir", str(tmp_path)])) == 0
    # the metrics of epoch 1 appear in the bar of epoch 1, before it moves on to epoch 2
    expected = [(f"Epoch {e}/2", STEPS_PER_EPOCH, list(METRIC_TAGS)) for e in (1, 2)]
    assert lightning.seen == twin == expected


class _StopAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the run stops after this step


def _stop_then_resume(trainer: str, logdir: Path, monkeypatch, capsys) -> tuple[str, str]:
    """(the stop line, the resume line) of a 3-epoch run stopped after step 6, the 2nd of epoch 2."""
    if trainer == "lightning":
        from mlp_lightning.lightning.train import fit

        argv = ["--accelerator", "cpu", *SMALL, "--logdir", str(logdir)]
        assert fit(parse_fit_args([*argv, "--max_epochs", "3"]), callbacks=[_StopAt(6)]) == 130
        stop = capsys.readouterr().err.splitlines()[0]
        assert fit(parse_fit_args([*argv, "--resume"])) == 0
    else:
        calls, original = [], twin_train.train_step

        def train_step(*args, **kwargs):
            calls.append(1)
            if len(calls) == 6:
                os.kill(os.getpid(), signal.SIGINT)
            return original(*args, **kwargs)

        argv = [*SMALL, "--logdir", str(logdir)]
        with monkeypatch.context() as patch:
            patch.setattr(twin_train, "train_step", train_step)
            assert twin_train.fit(parse_numpy_args([*argv, "--max_epochs", "3"])) == 130
        stop = capsys.readouterr().err.splitlines()[0]
        assert twin_train.fit(parse_numpy_args([*argv, "--resume"])) == 0
    return stop, capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("trainer", ["numpy", "lightning"])
def test_the_stop_and_resume_lines_say_how_far_the_run_got_in_the_same_words(
    trainer, tmp_path, monkeypatch, capsys
):
    stop, resume = _stop_then_resume(trainer, tmp_path, monkeypatch, capsys)
    assert done_words(1, 6) == "1 epoch and 6 steps done"
    script = {"numpy": "baseline_numpy.py", "lightning": "fit.py"}[trainer]
    assert stop.startswith(f"{script}: stopped by SIGINT with 1 epoch and 6 steps done; checkpoint saved"), (
        stop
    )
    assert resume.startswith("resuming ") and resume.endswith("(1 epoch and 6 steps done)"), resume
