"""Mistyped flags and config keys: refused in one line that names them and the closest valid name.

An abbreviation is a mistyped flag too: ``--max_epoch 5`` must not quietly mean ``--max_epochs 5``.
"""

from __future__ import annotations

import pytest

from mlp_lightning.cli import OneLineArgumentParser, parse_fit_args, parse_numpy_args
from tests.helpers import run_script

PARSERS = [(parse_fit_args, "fit.py"), (parse_numpy_args, "baseline_numpy.py")]
BOTH = pytest.mark.parametrize(("parse", "prog"), PARSERS, ids=[prog for _, prog in PARSERS])


def error_line(parse, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@BOTH
@pytest.mark.parametrize("argv", [["--max_epoch", "5"], ["--max_epoch=5"], ["--hidden", "8"]])
def test_an_abbreviated_flag_is_refused_not_expanded(parse, prog, argv, capsys):
    typed = argv[0].split("=")[0]
    line = error_line(parse, argv, capsys)
    assert line.startswith(f"{prog}: error: unknown flag {typed} (did you mean --"), line


@BOTH
@pytest.mark.parametrize(
    "argv", [["--hiden_dim", "64"], ["--hiden_dim=64"], ["--lr", "0.1", "--hiden_dim", "64"]]
)
def test_an_unknown_flag_names_the_closest_valid_one(parse, prog, argv, capsys):
    line = error_line(parse, argv, capsys)
    assert line == f"{prog}: error: unknown flag --hiden_dim (did you mean --hidden_dim?)"


@BOTH
def test_an_unknown_flag_like_no_valid_one_points_to_help(parse, prog, capsys):
    line = error_line(parse, ["--zzzz", "1"], capsys)
    assert line == f"{prog}: error: unknown flag --zzzz (see --help for the flags)"


def test_the_twin_does_not_suggest_a_lightning_flag_it_refuses(capsys):
    line = error_line(parse_numpy_args, ["--acelerator", "cpu"], capsys)
    assert "--accelerator" not in line and "unknown flag --acelerator" in line


@BOTH
def test_an_unknown_config_key_names_the_file_and_the_closest_key(parse, prog, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("lr: 0.05\nhidden_dims: 64\n")
    line = error_line(parse, ["--config", "run.yaml"], capsys)
    assert line == f"{prog}: error: --config run.yaml: unknown key 'hidden_dims' (did you mean 'hidden_dim'?)"
    line = error_line(parse, ["--config=run.yaml"], capsys)
    assert line.endswith("unknown key 'hidden_dims' (did you mean 'hidden_dim'?)")


def test_an_unknown_config_key_like_no_valid_one_lists_the_allowed_keys(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("zzzz: 1\n")
    line = error_line(parse_fit_args, ["--config", str(config)], capsys)
    assert line.startswith(
        f"fit.py: error: --config {config}: unknown key 'zzzz' (allowed: n_per_class, dim, "
    )
    assert "hidden_dim" in line and "accelerator" in line and "print_config" not in line


def helper_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="compare.py")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--logdir", default="logs")
    return parser


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--chek"], "compare.py: error: unknown flag --chek (did you mean --check?)"),
        (["--forc"], "compare.py: error: unknown flag --forc (did you mean --force?)"),  # no abbreviations
        (["--logdi=x"], "compare.py: error: unknown flag --logdi (did you mean --logdir?)"),
        (["--zzzz"], "compare.py: error: unknown flag --zzzz (see --help for the flags)"),
    ],
)
def test_the_helper_scripts_parser_refuses_typos_and_abbreviations_with_a_suggestion(argv, line, capsys):
    assert error_line(helper_parser().parse_args, argv, capsys) == line


def test_compare_script_suggests_the_flag_it_meant():
    result = run_script("compare.py", "--chek", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "compare.py: error: unknown flag --chek (did you mean --check?)"
