"""The twin's configuration holds only what the twin uses: no Lightning flag in its --print_config, and
one in a YAML given to it is refused as a Lightning flag, not read as a request for a GPU."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.runs.args import TrainerFlags

LIGHTNING_FLAGS = {f.name for f in dataclasses.fields(TrainerFlags)}


def printed(parse, capsys, *argv: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        parse([*argv, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_the_twins_print_config_holds_no_lightning_flag_and_reads_back(tmp_path, capsys):
    twin = printed(parse_numpy_args, capsys)
    assert not LIGHTNING_FLAGS & set(twin), twin
    assert set(printed(parse_fit_args, capsys)) >= LIGHTNING_FLAGS  # fit.py's keeps them
    config = tmp_path / "twin.yaml"
    config.write_text(yaml.safe_dump(twin))
    assert printed(parse_numpy_args, capsys, "--config", str(config)) == twin


@pytest.mark.parametrize("content", ["accelerator: gpu\n", "devices: 2\nlr: 0.2\n", "precision: 64-true\n"])
def test_a_lightning_flag_in_a_yaml_given_to_the_twin_is_refused_as_a_lightning_flag(
    tmp_path, capsys, content
):
    config = tmp_path / "config.yaml"
    config.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        parse_numpy_args(["--config", str(config), "--logdir", str(tmp_path / "logs")])
    (err,) = capsys.readouterr().err.splitlines()
    name = content.split(":")[0]
    assert exit_info.value.code == 2 and f"--{name} is a Lightning flag (scripts/fit.py only)" in err, err
    assert "GPU" not in err
