"""Bad invocations of both scripts: exit 2, one line naming the flag or key, no traceback, nothing written.

The table runs in-process (the parsing is what decides); a handful also run as real
subprocesses to pin the exit code, the absent traceback and the untouched logs/.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import DATASETS, HParams, flag_names, validate
from tests.helpers import run_script

CONFIGS = {
    "not_yaml.yaml": "lr: [1, 2\n",
    "unknown_key.yaml": "lrr: 0.1\n",
    "wrong_type.yaml": "batch_size: abc\n",
    "out_of_range.yaml": "dropout: 1.5\n",
    "a_list.yaml": "- lr\n- 0.1\n",
    "plain_text.yaml": "just text\n",
}

# (argv, what the one line must name)
COMMON = [
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "fast"], "--lr"),
    (["--lr"], "--lr"),
    (["--dropout", "1"], "--dropout"),
    (["--dropout", "-0.5"], "--dropout"),
    (["--dropout", "nan"], "--dropout"),
    (["--batch_size", "0"], "--batch_size"),
    (["--batch_size", "-8"], "--batch_size"),
    (["--batch_size", "2.5"], "--batch_size"),
    (["--hidden_dim", "0"], "--hidden_dim"),
    (["--max_epochs", "0"], "--max_epochs"),
    (["--max_epochs", "1e3"], "--max_epochs"),
    (["--n_per_class", "-1"], "--n_per_class"),
    (["--num_classes", "1"], "--num_classes"),
    (["--dim", "0"], "--dim"),
    (["--seed", "-1"], "--seed"),
    (["--offset", "inf"], "--offset"),
    (["--val_fraction", "0"], "--val_fraction"),
    (["--val_fraction", "1.5"], "--val_fraction"),
    (["--n_per_class", "1", "--val_fraction", "0.1"], "--val_fraction"),
    (["--weight_decay", "-1e-4"], "--weight_decay"),
    (["--weight_decay", "nan"], "--weight_decay"),
    (["--checkpoint_every_n_steps", "-1"], "--checkpoint_every_n_steps"),
    (["--checkpoint_every_n_steps", "often"], "--checkpoint_every_n_steps"),
    (["--log_every_n_steps", "-1"], "--log_every_n_steps"),
    (["--learning_rate", "0.1"], "--learning_rate"),
    (["--resume", "--lr", "nan"], "--lr"),
    (["--resume", "--config", "{cfg}/out_of_range.yaml"], "--dropout"),
    (["--config", "{cfg}/missing.yaml"], "--config"),
    (["--config", "{cfg}/not_yaml.yaml"], "error: --config: "),
    (["--config", "{cfg}/unknown_key.yaml"], "lrr"),
    (["--config", "{cfg}/wrong_type.yaml"], "--batch_size"),
    (["--config", "{cfg}/out_of_range.yaml"], "--dropout"),
    (["--config", "{cfg}/a_list.yaml"], "error: --config: "),
    (["--config", "{cfg}/plain_text.yaml"], "error: --config: "),
]
FIT_ONLY = [
    (["--accelerator", "tpu"], "--accelerator"),
    (["--devices", "0"], "--devices"),
    (["--devices", "many"], "--devices"),
    (["--strategy", "horovod"], "--strategy"),
    (["--precision", "8"], "--precision"),
    (["--num_nodes", "0"], "--num_nodes"),
]
NUMPY_ONLY = [
    (["--accelerator", "cpu"], "--accelerator"),
    (["--devices", "2"], "--devices"),
    (["--strategy", "ddp"], "--strategy"),
]


def _ids(value) -> str:
    return " ".join(value) if isinstance(value, list) else ""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    for name, text in CONFIGS.items():
        (root / name).write_text(text)
    return root


def error_line(parse, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize(("argv", "names"), COMMON + FIT_ONLY, ids=_ids)
def test_fit_refuses_bad_input_with_one_line_naming_it(argv, names, cfg, tmp_path, capsys, tree_snapshot):
    argv = [a.format(cfg=cfg) for a in argv]
    logdir = tmp_path / "logs"
    line = error_line(parse_fit_args, ["--logdir", str(logdir), *argv], capsys)
    assert line.startswith("fit.py: error: ") and names in line, line
    assert not logdir.exists()


@pytest.mark.parametrize(("argv", "names"), COMMON + NUMPY_ONLY, ids=_ids)
def test_numpy_twin_refuses_bad_input_with_one_line_naming_it(argv, names, cfg, tmp_path, capsys):
    argv = [a.format(cfg=cfg) for a in argv]
    logdir = tmp_path / "logs"
    line = error_line(parse_numpy_args, ["--logdir", str(logdir), *argv], capsys)
    assert line.startswith("baseline_numpy.py: error: ") and names in line, line
    assert not logdir.exists()


@pytest.mark.parametrize(
    ("script", "argv", "names"),
    [
        ("fit.py", ["--lr", "nan"], "--lr"),
        ("fit.py", ["--accelerator", "tpu"], "--accelerator"),
        ("fit.py", ["--resume", "runs/nowhere"], "--resume"),
        ("baseline_numpy.py", ["--batch_size", "0"], "--batch_size"),
        ("baseline_numpy.py", ["--config", "bad.yaml"], "config"),
        ("baseline_numpy.py", ["--resume"], "--resume"),
    ],
)
def test_scripts_exit_2_without_traceback_and_leave_logs_byte_for_byte(
    script, argv, names, tmp_path, tree_snapshot
):
    logs = tmp_path / "logs"
    (logs / "lightning" / "version_0").mkdir(parents=True)
    (logs / "lightning" / "version_0" / "events.out.tfevents.1").write_bytes(b"\x00\x01 earlier run")
    (tmp_path / "bad.yaml").write_text(CONFIGS["not_yaml.yaml"])
    before = tree_snapshot(logs)
    result = run_script(script, *argv, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert names in result.stderr
    assert tree_snapshot(logs) == before


def test_the_scripts_answer_bad_input_without_importing_torch(tmp_path):
    probe = (
        "import sys\nfrom mlp_lightning.cli import parse_fit_args\n"
        "try:\n    parse_fit_args(['--lr', 'nan'])\nexcept SystemExit:\n    print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.stdout.strip() == "False", out.stderr


finite = st.floats(allow_nan=True, allow_infinity=True)
hparams = st.builds(
    HParams,
    n_per_class=st.integers(-5, 50),
    dim=st.integers(-2, 5),
    offset=finite,
    num_classes=st.integers(-1, 5),
    val_fraction=finite,
    batch_size=st.integers(-3, 70),
    hidden_dim=st.integers(-3, 40),
    dropout=finite,
    lr=finite,
    weight_decay=finite,
    max_epochs=st.integers(-2, 5),
    seed=st.integers(-3, 2**32),
    dataset=st.sampled_from([*DATASETS, "file", "nope"]),
    noise=finite,
)


def allowed(hp: HParams) -> bool:
    """The rules, restated independently of validate()."""
    ints_ok = min(hp.n_per_class, hp.dim, hp.batch_size, hp.hidden_dim, hp.max_epochs) >= 1
    n = hp.n_per_class * hp.num_classes
    splits_ok = 0 < hp.val_fraction < 1 and 1 <= round(n * (1 - hp.val_fraction)) <= n - 1
    return (
        ints_ok
        and hp.num_classes >= 2
        and hp.seed >= 0
        and math.isfinite(hp.offset)
        and 0 <= hp.dropout < 1
        and math.isfinite(hp.lr)
        and hp.lr > 0
        and math.isfinite(hp.weight_decay)
        and hp.weight_decay >= 0
        and splits_ok
        and hp.dataset in ("blobs", "moons", "circles", "spirals")
        and math.isfinite(hp.noise)
        and hp.noise >= 0
        and (hp.dataset == "blobs" or hp.dim == 2)
        and (hp.dataset != "moons" or hp.num_classes == 2)
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hparams)
def test_validate_accepts_exactly_the_allowed_hyperparameters_and_names_the_culprit(hp):
    if allowed(hp):
        assert validate(hp) is hp
    else:
        with pytest.raises(ConfigError) as err:
            validate(hp)
        message = str(err.value)
        assert message.startswith("--") and "\n" not in message
        name = message[2:].split(" ", 1)[0]
        assert name in hp.as_dict()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hp=hparams)
def test_command_line_agrees_with_validate_on_every_hyperparameter_set(hp, capsys, tmp_path):
    argv = [f"--{name}={getattr(hp, name)}" for name in flag_names()]
    try:
        validate(hp)
        ok = True
    except ConfigError:
        ok = False
    if ok:
        assert parse_fit_args(["--logdir", str(tmp_path / "logs"), *argv]).hp == hp
    else:
        with pytest.raises(SystemExit) as exit_info:
            parse_fit_args(["--logdir", str(tmp_path / "logs"), *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("fit.py: error: --")
