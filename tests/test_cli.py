"""The command line: flags, config files, and bad input refused before anything is built."""

import pytest
import yaml

from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.errors import ResumeError
from mlp_lightning.core.hparams import HParams, flag_names
from mlp_lightning.lightning.flags import nvidia_gpu_present, resumed_trainer_flags
from mlp_lightning.runs.args import TrainerFlags
from tests.helpers import run_script


def run_python(code: str, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd)


BAD_INPUTS = [
    (["--n_per_class", "0"], "--n_per_class"),
    (["--dim", "-3"], "--dim"),
    (["--hidden_dim", "0"], "--hidden_dim"),
    (["--batch_size", "-1"], "--batch_size"),
    (["--max_epochs", "0"], "--max_epochs"),
    (["--num_classes", "1"], "--num_classes"),
    (["--dropout", "1.0"], "--dropout"),
    (["--dropout", "-0.1"], "--dropout"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--weight_decay", "-1e-4"], "--weight_decay"),
    (["--weight_decay", "inf"], "--weight_decay"),
    (["--val_fraction", "0"], "--val_fraction"),
    (["--val_fraction", "1"], "--val_fraction"),
    (["--val_fraction", "0.01", "--n_per_class", "10"], "--val_fraction"),
    (["--accelerator", "tpu9"], "--accelerator"),
    (["--devices", "0"], "--devices"),
    (["--batch_size", "abc"], "--batch_size"),
]


@pytest.mark.parametrize("argv, flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_fit_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err


@pytest.mark.skipif(nvidia_gpu_present(), reason="this machine has an NVIDIA GPU")
def test_accelerator_gpu_without_a_gpu_is_refused_not_ignored(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_fit_args(["--accelerator", "gpu"])
    assert exit_info.value.code == 2
    assert "--accelerator gpu needs an NVIDIA GPU" in capsys.readouterr().err


def test_bad_input_from_the_script_leaves_logs_untouched(tmp_path, tree_snapshot):
    logdir = tmp_path / "logs"
    (logdir / "lightning" / "version_0").mkdir(parents=True)
    (logdir / "lightning" / "version_0" / "events.out.tfevents.x").write_bytes(b"earlier run")
    before = tree_snapshot(logdir)
    result = run_script("fit.py", "--dropout", "1.5", "--logdir", str(logdir))
    assert result.returncode == 2
    assert result.stderr.strip() == "fit.py: error: --dropout must be in [0, 1), got 1.5"
    assert result.stdout == ""
    assert tree_snapshot(logdir) == before


def test_defaults_are_the_notebooks_pytorch_settings():
    args = parse_fit_args([])
    assert args.hp == HParams(
        n_per_class=400, dim=2, offset=2.0, num_classes=2, val_fraction=0.2, batch_size=64,
        hidden_dim=32, dropout=0.5, lr=0.1, weight_decay=1e-4, max_epochs=30, seed=42,
    )  # fmt: skip
    assert str(args.logdir) == "logs" and args.trainer.accelerator == "auto"


def test_the_twins_print_config_output_drives_both_scripts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # fit.py's holds Lightning's flags too: for fit.py only
        parse_numpy_args(["--print_config", "--hidden_dim", "7", "--lr", "0.05"])
    assert exit_info.value.code == 0
    config = tmp_path / "run.yaml"
    config.write_text(capsys.readouterr().out)
    assert yaml.safe_load(config.read_text())["hidden_dim"] == 7
    fit_args = parse_fit_args(["--config", str(config)])
    numpy_args = parse_numpy_args(["--config", str(config)])
    assert fit_args.hp == numpy_args.hp
    assert fit_args.hp.hidden_dim == 7 and fit_args.hp.lr == 0.05


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"dataset": "blobs", "noise": 1.0, "lr": 0.1, "max_epochs": 30, "dropout": 0.5}),
        (["--dataset", "moons"], {"dataset": "moons", "noise": 0.1, "lr": 1.0, "max_epochs": 100}),
        (["--dataset", "moons", "--lr", "0.5"], {"noise": 0.1, "lr": 0.5, "max_epochs": 100}),
    ],
)
def test_print_config_shows_the_sets_own_defaults_resolved_not_null(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_numpy_args([*argv, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert {name: printed[name] for name in expected} == expected
    assert all(printed[name] is not None for name in flag_names())


def test_help_lists_each_sets_own_default(tmp_path):
    result = run_script("baseline_numpy.py", "--help")
    text = " ".join(result.stdout.split())
    assert "default: the set's own: blobs 0.1, moons 1.0, circles 0.3, spirals 1.0" in text
    assert "default: the set's own: blobs 30, moons 100" in text
    assert "default: the set's own: blobs 1.0, moons 0.1" in text  # --noise


def test_flags_after_config_override_it(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("hidden_dim: 7\nseed: 3\n")
    args = parse_fit_args(["--config", str(config), "--seed", "5"])
    assert args.hp.hidden_dim == 7 and args.hp.seed == 5


def test_help_lists_every_flag_with_its_default():
    result = run_script("fit.py", "--help")
    assert result.returncode == 0
    for flag in [*flag_names(), "logdir", "accelerator", "devices", "strategy", "precision", "config"]:
        assert f"--{flag}" in result.stdout


@pytest.fixture
def logdir_with_runs(tmp_path) -> str:
    """A --logdir with a run of each trainer holding a checkpoint (an empty one: the CLI never reads it)."""
    for run in ("lightning/version_0/checkpoints/last.ckpt", "numpy/version_0/checkpoints/last.npz"):
        (tmp_path / "logs" / run).parent.mkdir(parents=True)
        (tmp_path / "logs" / run).write_bytes(b"")
    return str(tmp_path / "logs")


@pytest.mark.parametrize("parse", [parse_fit_args, parse_numpy_args])
def test_hyperparameter_flags_beside_resume_are_kept_for_the_run_to_compare_not_refused(
    parse, logdir_with_runs
):
    """``--max_epochs 200 --n_per_class 4000 --resume``: the resume compares them with the run's own."""
    args = parse(["--max_epochs", "200", "--n_per_class", "4000", "--resume", "--logdir", logdir_with_runs])
    assert args.resume == "newest" and {"max_epochs", "n_per_class"} <= args.given
    assert args.hp.n_per_class == 4000 and args.hp.max_epochs == 200


def test_help_and_print_config_answer_without_importing_torch(tmp_path):
    probe = (
        "import sys, contextlib, io\nfrom mlp_lightning.cli import parse_fit_args, parse_numpy_args\n"
        "for parse in (parse_fit_args, parse_numpy_args):\n"
        "    for argv in (['--help'], ['--print_config', '--lr', '0.05']):\n"
        "        out = io.StringIO()\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            try:\n                parse(argv)\n            except SystemExit as end:\n"
        "                assert end.code == 0, argv\n"
        "        assert ('lr: 0.05' if '--print_config' in argv else '--hidden_dim') in out.getvalue()\n"
        "print('torch' in sys.modules)"
    )
    out = run_python(probe, tmp_path)
    assert out.stdout.strip() == "False", out.stderr


SAVED_FLAGS = {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "precision": "64-true", "num_nodes": 1}


def test_a_resume_takes_the_runs_own_lightning_flags_where_none_is_given():
    flags = resumed_trainer_flags(SAVED_FLAGS, TrainerFlags(), given=frozenset({"resume"}))
    assert flags == TrainerFlags(**SAVED_FLAGS)


def test_a_lightning_flag_given_beside_resume_wins_over_the_runs_own(logdir_with_runs):
    requested = parse_fit_args(
        ["--resume", "--precision", "bf16-mixed", "--devices", "1", "--logdir", logdir_with_runs]
    )
    flags = resumed_trainer_flags(SAVED_FLAGS, requested.trainer, requested.given)
    assert flags == TrainerFlags(**{**SAVED_FLAGS, "precision": "bf16-mixed", "devices": 1})


def test_a_checkpoint_without_stored_flags_resumes_with_the_command_lines(logdir_with_runs):
    requested = parse_fit_args(["--resume", "--accelerator", "cpu", "--logdir", logdir_with_runs])
    assert resumed_trainer_flags(None, requested.trainer, requested.given) == requested.trainer


def test_a_resume_that_names_no_run_is_refused_before_torch_is_imported(tmp_path):
    probe = (
        "import sys\nfrom mlp_lightning.cli import parse_fit_args\n"
        f"try:\n    parse_fit_args(['--resume', {str(tmp_path / 'nowhere')!r}])\n"
        "except SystemExit as end:\n    print(end.code, 'torch' in sys.modules)"
    )
    result = run_python(probe, tmp_path)
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "is neither a run directory nor a checkpoint file" in result.stderr


def test_resuming_a_gpu_run_on_a_machine_without_one_says_which_flag_to_give(monkeypatch):
    monkeypatch.setattr("mlp_lightning.lightning.flags.nvidia_gpu_present", lambda: False)
    with pytest.raises(ResumeError) as err:
        resumed_trainer_flags({**SAVED_FLAGS, "accelerator": "gpu"}, TrainerFlags(), frozenset({"resume"}))
    message = str(err.value)
    assert message.startswith("--resume: --accelerator gpu needs an NVIDIA GPU")
    assert "the run was started with --accelerator gpu" in message
    assert "give the flag beside --resume" in message and "\n" not in message


@pytest.mark.parametrize(("short", "full"), [("64", "64-true"), ("32", "32-true"), ("bf16", "bf16-mixed")])
def test_a_short_precision_name_becomes_the_full_one_lightning_reads_it_as(short, full):
    assert parse_fit_args(["--precision", short, "--accelerator", "cpu"]).trainer.precision == full


def test_a_run_records_its_command_line_shell_quoted_and_the_yaml_print_config_prints(monkeypatch, capsys):
    argv = ["--lr", "0.05", "--logdir", "runs with space"]
    monkeypatch.setattr("sys.argv", ["scripts/fit.py", *argv])
    args = parse_fit_args()
    assert args.command == "python scripts/fit.py --lr 0.05 --logdir 'runs with space'"
    with pytest.raises(SystemExit):
        parse_fit_args([*argv, "--print_config"])
    assert args.config_yaml == capsys.readouterr().out
    assert yaml.safe_load(args.config_yaml)["lr"] == 0.05
