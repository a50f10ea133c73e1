"""A resume that changes what may change (a longer --max_epochs) is on record: hparams.yaml, a second
TEXT entry for the resume, and what --resume --print_config prints."""

from __future__ import annotations

import pytest
import yaml
from tensorboard.backend.event_processing import event_accumulator as ea

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.tensorboard_schema import RUN_TEXT
from mlp_lightning.numpy_twin import train as twin_train

SMALL = ["--n_per_class", "20", "--batch_size", "16"]  # 32 training points: 2 steps an epoch


def train(trainer: str, logdir, *flags: str) -> int:
    if trainer == "lightning":
        from mlp_lightning.lightning.train import fit

        return fit(parse_fit_args(["--accelerator", "cpu", "--logdir", str(logdir), *flags]))
    return twin_train.fit(parse_numpy_args(["--logdir", str(logdir), *flags]))


def texts(run_dir) -> list[tuple[int, str]]:
    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(RUN_TEXT)]


@pytest.mark.parametrize("trainer", ["numpy", "lightning"])
def test_a_resume_to_more_epochs_is_recorded_in_hparams_yaml_a_second_text_entry_and_print_config(
    trainer, tmp_path, capsys
):
    assert train(trainer, tmp_path, *SMALL, "--max_epochs", "2") == 0
    assert train(trainer, tmp_path, "--resume", "--max_epochs", "4") == 0
    run_dir = tmp_path / trainer / "version_0"
    stored = yaml.safe_load((run_dir / "hparams.yaml").read_text())
    assert stored["max_epochs"] == 4 and stored["n_per_class"] == 20
    (first_step, first), (resume_step, resumed) = texts(run_dir)
    assert (first_step, resume_step) == (0, 4)  # the resume's entry at the step it went on from
    assert "    max_epochs: 2" in first and "    n_per_class: 20" in first
    assert "--resume --max_epochs 4" in resumed
    assert "    max_epochs: 4" in resumed and "    n_per_class: 20" in resumed  # the run's, not the defaults
    capsys.readouterr()
    parse = parse_fit_args if trainer == "lightning" else parse_numpy_args
    for flags, epochs in ((["--max_epochs", "9"], 9), ([], 4)):
        with pytest.raises(SystemExit):
            parse(["--resume", *flags, "--print_config", "--logdir", str(tmp_path)])
        printed = yaml.safe_load(capsys.readouterr().out)
        assert (
            printed["max_epochs"] == epochs and printed["n_per_class"] == 20 and printed["batch_size"] == 16
        )
