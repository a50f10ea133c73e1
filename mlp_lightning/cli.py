"""The command line of both scripts: flags, ``--config``, ``--print_config``, validation.

Built on jsonargparse (what LightningCLI uses). It imports neither torch nor
lightning, so ``--help``, ``--print_config`` and bad input answer at once and
nothing is built or written before every value has been checked. Bad input ends
with one line on stderr naming the flag and what is allowed, and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, Optional, get_type_hints

import yaml
from jsonargparse import (
    ActionConfigFile,
    ArgumentError,
    ArgumentParser,
    DefaultHelpFormatter,
    get_loader,
    set_loader,
)

from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.errors import ConfigError, fail
from mlp_lightning.core.hparams import (
    DATA_FILE,
    SET_DEFAULTS,
    HParams,
    flag_names,
    generated_set_names,
    sets_own,
    validate,
)
from mlp_lightning.core.quoted import quoted, short_text
from mlp_lightning.lightning.flags import ACCELERATORS, PRECISIONS, STRATEGIES, validate_trainer
from mlp_lightning.runs.args import CHECKPOINT_EVERY_N_STEPS, LOG_EVERY_N_STEPS, RunArgs, TrainerFlags
from mlp_lightning.runs.config_file import (
    checked_yaml,
    config_paths,
    config_table,
    config_value_problem,
    refuse_expanding_values,
)
from mlp_lightning.runs.files import read_hparams_file
from mlp_lightning.runs.layout import (
    HPARAMS_FILE,
    LIGHTNING_CHECKPOINT,
    LIGHTNING_TRAINER,
    NUMPY_TRAINER,
    TWIN_CHECKPOINT,
    check_logdir,
)
from mlp_lightning.runs.resume import RESUME_MAY_CHANGE, RESUME_NEWEST, resolve_resume
from mlp_lightning.runs.run_id import check_run_id, run_id_to_continue, run_id_to_record, run_to_continue
from mlp_lightning.runs.sweep import TRAINERS, Combination, SweepArgs, default_jobs, hparams_key

_TRAINER_HELP = {
    "accelerator": f"one of {', '.join(ACCELERATORS)}",
    "devices": "processes (one per device) to train on: a count >= 1, -1 for all, or 'auto'",
    "strategy": f"one of {', '.join(STRATEGIES)}",
    "precision": f"one of {', '.join(PRECISIONS)}",
    "num_nodes": "machines taking part (multi-node runs)",
}


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, but a flag whose default is the set's own lists them, not ``default: null``."""

    def _get_help_string(self, action) -> str:
        text = super()._get_help_string(action)
        if action.dest in SET_DEFAULTS["blobs"]:
            text = text.replace("default: %(default)s", f"default: the set's own: {sets_own(action.dest)}")
        return text


PARSER_MODE = "mlp_lightning_yaml"  # jsonargparse's YAML, refusing values no flag takes before it shows them
set_loader(
    PARSER_MODE, checked_yaml(get_loader("yaml")), exceptions=(yaml.YAMLError, ValueError, RecursionError)
)


def build_parser(prog: str, description: str, lightning: bool = True) -> ArgumentParser:
    """The flags of a run; ``lightning``: with Lightning's (fit.py), without them for the twin."""
    # no abbreviations: --max_epoch must not quietly mean --max_epochs
    parser = ArgumentParser(
        prog=prog, description=description, exit_on_error=False, allow_abbrev=False,
        formatter_class=_HelpFormatter, parser_mode=PARSER_MODE,
    )  # fmt: skip
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of flag: value")
    hp_types = get_type_hints(HParams)
    for f in dataclasses.fields(HParams):
        if f.metadata["derived"]:
            continue
        if hp_types[f.name] == tuple[str, ...]:  # --drop id name: several values after one flag
            parser.add_argument(
                f"--{f.name}", type=str, nargs="*", default=f.default, help=f.metadata["help"]
            )
            continue
        parser.add_argument(f"--{f.name}", type=hp_types[f.name], default=f.default, help=f.metadata["help"])
    parser.add_argument("--logdir", type=str, default="logs", help="where runs are written")
    parser.add_argument(
        "--resume", type=Optional[str], nargs="?", const=RESUME_NEWEST, default=None,  # noqa: UP045
        help=f"continue an interrupted run: alone (or '{RESUME_NEWEST}') the newest run under --logdir, "
        "or a run directory, or a checkpoint file",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint_every_n_steps", type=int, default=CHECKPOINT_EVERY_N_STEPS,
        help="also save the run's checkpoint every this many optimizer steps (0: only at the end "
        "and when interrupted); bounds what a hard kill can lose",
    )  # fmt: skip
    parser.add_argument(
        "--run_id", type=Optional[str], default=None,  # noqa: UP045
        help="continue the run under --logdir that recorded this id if it holds a checkpoint, start one "
        "recording it otherwise: the same command, rerun by a scheduler, continues its run "
        "(under SLURM a restarted job does this with its job id unasked)",
    )  # fmt: skip
    parser.add_argument(
        "--requeue", type=bool, default=True,
        help="under SLURM, after SIGUSR1 has stopped and saved the run: scontrol requeue the job",
    )  # fmt: skip
    parser.add_argument(
        "--log_every_n_steps", type=int, default=LOG_EVERY_N_STEPS,
        help="also write the training batch's loss (train/loss_step) every this many optimizer steps "
        "(0: per-epoch scalars only)",
    )  # fmt: skip
    if not lightning:
        return parser
    group = parser.add_argument_group("Lightning (fit.py only)")
    trainer_types = get_type_hints(TrainerFlags)
    for f in dataclasses.fields(TrainerFlags):
        group.add_argument(
            f"--{f.name}", type=trainer_types[f.name], default=f.default, help=_TRAINER_HELP[f.name]
        )
    return parser


def parse_fit_args(argv: Sequence[str] | None = None, prog: str = "fit.py") -> RunArgs:
    return _parse(argv, prog, "Train the two-layer MLP with PyTorch Lightning.", numpy_only=False)


def parse_numpy_args(argv: Sequence[str] | None = None, prog: str = "baseline_numpy.py") -> RunArgs:
    return _parse(argv, prog, "Train the same MLP in pure NumPy (the twin).", numpy_only=True)


def _parse(
    argv: Sequence[str] | None, prog: str, description: str, numpy_only: bool, a_run: bool = True
) -> RunArgs:
    """``a_run``: the command line of a run about to start (not a sweep's combination, checked only)."""
    script = sys.argv[0] if argv is None else f"scripts/{prog}"
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, description, lightning=not numpy_only)
    try:
        # --print_config is answered below, once the set's own defaults are resolved, not by jsonargparse
        argv, print_config = _take_print_config(argv)
        if numpy_only:
            _refuse_trainer_flags(argv, prog)
        _refuse_unknown_config_keys(argv, parser, numpy_only)
        refuse_expanding_values(argv)
        try:
            ns = parser.parse_args(argv)
        except ArgumentError as err:
            suggestion = _unknown_flag(str(err), argv, _flag_names(parser, numpy_only))
            if suggestion is None:
                raise
            raise ConfigError(suggestion) from None
        # a resume compares the hyperparameters given here with the ones its checkpoint stores
        given = given_flags(argv, ns)
        hp = validate(with_data_file(HParams(**{name: ns[name] for name in flag_names()}), given))
        trainer = TrainerFlags() if numpy_only else validate_trainer(
            TrainerFlags(**{f.name: ns[f.name] for f in dataclasses.fields(TrainerFlags)})
        )  # fmt: skip
        logdir = Path(ns.logdir)
        trainer_name = NUMPY_TRAINER if numpy_only else LIGHTNING_TRAINER
        if a_run and not numpy_only:  # the twin is one process whatever the variables say
            check_single_process_rank(os.environ)
        if ns.run_id is not None:
            check_run_id(ns.run_id)
            if ns.resume is not None:
                raise ConfigError("--run_id and --resume exclude each other: --run_id continues its own run")
        continued = (
            run_to_continue_now(ns, argv, logdir, trainer_name) if a_run and ns.resume is None else None
        )
        if continued is not None:  # a rerun of the command that started it: continue, as --resume would
            ns = ns.clone()
            ns.resume = str(continued)
        # a resumed run writes into its own run directory, wherever that is: only a new run's logdir
        # must be creatable here
        check_logdir(logdir, create=ns.resume is None)
        for name in ("checkpoint_every_n_steps", "log_every_n_steps"):
            if ns[name] < 0:
                raise ConfigError(f"--{name} must be an integer >= 0, got {quoted(ns[name])}")
        ns = with_resolved_defaults(ns, hp)
        if ns.resume is not None:  # --print_config and the run's TEXT entry: what the resumed run trains with
            ns = with_resumed_run(ns, hp, given, trainer_name)
        if print_config is not None:
            sys.stdout.write(printed_config(parser, ns, print_config))
            raise SystemExit(0)
    except ConfigError as err:
        fail(prog, str(err))
    except ArgumentError as err:
        fail(prog, one_line(str(err)))
    return RunArgs(
        hp=hp, trainer=trainer, logdir=logdir, resume=ns.resume,
        checkpoint_every_n_steps=ns.checkpoint_every_n_steps, log_every_n_steps=ns.log_every_n_steps,
        given=given,
        command=shlex.join(["python", script, *argv]), config_yaml=printed_config(parser, ns),
        run_id=run_id_to_record(ns.run_id, argv), requeue=ns.requeue,
    )  # fmt: skip


def run_to_continue_now(ns, argv: list[str], logdir: Path, trainer: str) -> Path | None:
    """The run this start continues: the one that recorded ``--run_id`` (or a restarted SLURM job's id)."""
    run_id = run_id_to_continue(ns.run_id, argv)
    if run_id is None:
        return None
    filename = TWIN_CHECKPOINT if trainer == NUMPY_TRAINER else LIGHTNING_CHECKPOINT
    return run_to_continue(logdir, trainer, run_id, filename)


def check_single_process_rank(env) -> None:
    """Refuse a process that a launcher variable calls a rank other than 0 of a launch it is alone in.

    srun sets SLURM_PROCID with SLURM_NTASKS, torchrun RANK with WORLD_SIZE; one without the other
    (a variable left in a shell, a copied environment) would train as a rank whose rank 0 never comes.
    """
    for rank, size in (("SLURM_PROCID", "SLURM_NTASKS"), ("RANK", "WORLD_SIZE")):
        value, count = env.get(rank, "0").strip(), env.get(size, "1").strip()
        if value in ("", "0"):
            continue
        if not count.isdigit() or int(count) <= 1:
            shown = f"{size}={count}" if size in env else f"{size} is not set"
            raise ConfigError(
                f"{rank}={value} makes this process rank {value} of a multi-process launch, but {shown}: "
                f"unset {rank} to train in one process, or start every process with the launcher"
            )


def with_data_file(hp: HParams, given: frozenset[str]) -> HParams:
    """``hp`` with what ``--data`` gives: the file read and checked, its dim, classes, size and sha256.

    The file decides --dim and --num_classes: a different value given for either is refused, as is
    a flag that only shapes a generated set.
    """
    if not hp.data:
        return hp
    points = read_data_file(hp.data, hp.target, hp.drop)
    for name in generated_set_names():
        if name in given:
            raise ConfigError(f"--{name} shapes a generated set; --data {hp.data} brings its own points")
    for name, value in (("dim", points.X.shape[1]), ("num_classes", points.num_classes)):
        if name in given and getattr(hp, name) != value:
            raise ConfigError(f"--{name} {getattr(hp, name)} contradicts --data {hp.data}, which has {value}")
    # the flags not given take the file's own defaults, not the blobs' they were resolved to
    own = {name: None for name in SET_DEFAULTS[DATA_FILE] if name not in given}  # a given noise was refused
    # the class column by name, as the run records it (an .npz has no columns to name)
    target = points.target_name if points.path.suffix.lower() == ".csv" else ""
    return dataclasses.replace(
        hp, **own, dataset=DATA_FILE, data=str(points.path), data_sha256=points.sha256,
        data_points=len(points.X), dim=points.X.shape[1], num_classes=points.num_classes,
        class_names=points.class_names, target=target,
    )  # fmt: skip


def with_resolved_defaults(ns, hp: HParams):
    """``ns`` with the set's own defaults ``hp`` resolved in place of None, so the YAML says what runs.

    A --data run keeps the generated set's flags as given: fed back, a file's noise would be refused.
    """
    ns = ns.clone()
    for name in SET_DEFAULTS[hp.dataset]:
        if not (hp.data and name in generated_set_names()):
            ns[name] = getattr(hp, name)
    if hp.data:  # the file's own size, as the run records it
        ns["dim"], ns["num_classes"] = hp.dim, hp.num_classes
    return ns


def with_resumed_run(ns, hp: HParams, given: frozenset[str], trainer: str):
    """``ns`` with the hyperparameters of the run ``--resume`` continues, a given ``--max_epochs`` (what may
    change) in place of its own; ``ns`` as it is when the run's hparams.yaml cannot be read (the trainer
    reads its checkpoint and says why). A ``--resume`` that names no run is refused here, before torch."""
    filename = TWIN_CHECKPOINT if trainer == NUMPY_TRAINER else LIGHTNING_CHECKPOINT
    target = resolve_resume(ns.resume, Path(ns.logdir), trainer, filename, note=False)
    try:
        stored = read_hparams_file(target.run_dir / HPARAMS_FILE)
    except ConfigError:
        return ns
    changed = {name: getattr(hp, name) for name in RESUME_MAY_CHANGE if name in given}
    resumed = dataclasses.replace(stored, **changed)
    ns = ns.clone()
    for name in flag_names():
        if name in resumed.as_dict():
            ns[name] = getattr(resumed, name)
    return with_resolved_defaults(ns, resumed)


def printed_config(parser: ArgumentParser, ns, options: str = "") -> str:
    """The YAML ``--print_config`` prints for ``ns``: every flag (``options``: skip_default, ...)."""
    flags = {"skip_unset": False, **{name: True for name in options.split(",") if name}}
    return parser.dump(ns, **flags)


PRINT_CONFIG_OPTIONS = ("skip_default", "skip_unset")


def _take_print_config(argv: list[str]) -> tuple[list[str], str | None]:
    """``argv`` without ``--print_config[=options]``, and its options ("" bare; None if not given)."""
    rest, options = [], None
    for i, arg in enumerate(argv):
        if arg == "--":
            return [*rest, *argv[i:]], options
        if arg == "--print_config" or arg.startswith("--print_config="):
            options = arg.partition("=")[2]
            bad = set(options.split(",")) - {"", *PRINT_CONFIG_OPTIONS}
            if bad:
                allowed = ", ".join(PRINT_CONFIG_OPTIONS)
                raise ConfigError(f"--print_config takes {allowed}, comma-separated; got {options!r}")
        else:
            rest.append(arg)
    return rest, options


def given_flags(argv: Sequence[str], ns) -> frozenset[str]:
    """Names of the flags set explicitly, on the command line or as keys of a --config file."""
    names = {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    for config in ns.get("config") or []:
        if config is not None:  # a file the parser has read: its keys, read as bounded as before it
            names |= set(config_table(str(config)) or {})
    return frozenset(names - {"config"})


def _flag_names(parser: ArgumentParser, numpy_only: bool) -> list[str]:
    """The names a flag or a config key may have (without ``--``), in the order ``--help`` shows them."""
    skip = {"help", "print_config", "config"}
    if numpy_only:  # the twin refuses these on its command line: never suggest one
        skip |= {f.name for f in dataclasses.fields(TrainerFlags)}
    return [a.dest for a in parser._actions if a.dest not in skip and a.option_strings]


def _unknown_flag(message: str, argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The one line for argparse's "unrecognized arguments", naming the first unknown flag."""
    if not message.startswith("unrecognized arguments:"):
        return None
    known = {*names, "help", "print_config", "config"}
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name.startswith("--") and name[2:] not in known:
            return unknown_flag_message(name, [f"--{n}" for n in names])
    return None  # a stray value, not a flag: argparse's own words say it


def unknown_flag_message(flag: str, options: Sequence[str]) -> str:
    """``unknown flag --hiden_dim (did you mean --hidden_dim?)``: the closest valid name, if one is close."""
    close = difflib.get_close_matches(flag.lstrip("-"), [o.lstrip("-") for o in options], n=1)
    hint = f"did you mean --{close[0]}?" if close else "see --help for the flags"
    return f"unknown flag {flag} ({hint})"


def _refuse_unknown_config_keys(argv: Sequence[str], parser: ArgumentParser, numpy_only: bool) -> None:
    """Name the file and the closest valid key for a key no flag has (jsonargparse names neither); the
    twin's name a Lightning flag as such. Every value is checked for its type here, before jsonargparse
    sees it: its messages show a value whole, and a few hundred bytes of YAML anchors expand to gigabytes."""
    known = _flag_names(parser, numpy_only)
    for path in config_paths(argv):
        table = config_table(path)  # None: not a readable YAML table, which the parser says, naming --config
        for key, value in (table or {}).items():
            if not isinstance(key, str):
                raise ConfigError(f"--config {path}: a key must be a flag's name, got {quoted(key)}")
            if numpy_only and key in TRAINER_FLAG_NAMES:
                raise ConfigError(f"--config {path}: {lightning_flag(key)}")
            if key not in known and key != "config":
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(known)}"
                raise ConfigError(f"--config {path}: unknown key {quoted(key)} ({hint})")
            if key == "drop" and not isinstance(value, list | None):  # jsonargparse's words name nothing
                raise ConfigError(
                    f"--config {path}: drop must be a list of column names ([a, b]), got {quoted(value)}"
                )
            problem = config_value_problem(key, value, many=key == "drop")
            if problem is not None:
                raise ConfigError(f"--config {path}: {problem}")


TRAINER_FLAG_NAMES = frozenset(f.name for f in dataclasses.fields(TrainerFlags))


def lightning_flag(name: str) -> str:
    """What the twin answers a Lightning flag, given on its command line or in its --config."""
    return f"--{name} is a Lightning flag (scripts/fit.py only); the twin trains in NumPy on the CPU"


def _refuse_trainer_flags(argv: list[str], prog: str) -> None:
    for arg in argv:
        name = arg.split("=", 1)[0].removeprefix("--")
        if arg.startswith("--") and name in TRAINER_FLAG_NAMES:
            raise ConfigError(lightning_flag(name))


_TYPE_ERROR = re.compile(r'Parser key "(\w+)":\s*Expected a <class \'(\w+)\'>\. Got value: (.*)', re.S)


def one_line(message: str) -> str:
    """jsonargparse's multi-line error as one line that names the flag."""
    m = _TYPE_ERROR.search(message)
    if m:
        key, type_name, value = m.groups()
        kind = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false"}
        kind = kind.get(type_name, type_name)
        return f"--{key} must be {kind}, got {quoted(value.strip())}"
    if message.startswith(("Problems parsing config", "Unexpected config")):  # the file is not flag: value
        return f"--config: {short_text(message, 300)} (allowed: a YAML file of flag: value lines)"
    m = re.match(r'Parser key "(\w+)":\s*(.*)', message, re.S)
    if m:
        return f"--{m.group(1)}: {short_text(m.group(2), 300)}"
    return short_text(message, 300)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for the helper scripts, failing the trainers' way: one line, exit 2.

    No abbreviations, and an unknown flag is answered with the closest valid one.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            options = [o for o in self._option_string_actions if o.startswith("--") and o != "--help"]
            unknown = [a for a in message.split(":", 1)[1].split() if a.startswith("--")]
            if unknown:
                message = unknown_flag_message(unknown[0].split("=", 1)[0], options)
        fail(self.prog, message)


# the flags a sweep sets for each run itself; the Lightning flags are refused (one CPU process per run)
SWEEP_SETS = ("logdir", "resume", "run_id", "requeue")


def sweep_flags() -> list[str]:
    """fit.py's flags that a sweep passes on to every run, each with one or more values."""
    names = _flag_names(build_parser("fit.py", ""), numpy_only=True)  # the ones both trainers take
    return ["config", *(name for name in names if name not in SWEEP_SETS)]


def parse_sweep_args(argv: Sequence[str] | None = None, prog: str = "sweep.py") -> SweepArgs:
    """Every combination of the values given, each validated as the trainers validate it, before any run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = sweep_flags()
    parser = OneLineArgumentParser(
        prog=prog, description="Train every combination of fit.py flag values with both trainers; "
        "report each configuration over seeds."
    )  # fmt: skip
    for name in names:
        parser.add_argument(f"--{name}", nargs="+", metavar="VALUE", help=f"values of fit.py's --{name}")
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS), help="which "
                        "trainers train every combination (default: both)")  # fmt: skip
    parser.add_argument("--logdir", default="logs", help="where every run is written (default: logs)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="runs at a time (default: "
                        "the usable CPUs, at most 8)")  # fmt: skip
    parser.add_argument("--print_commands", action="store_true", help="print one command line per run "
                        "still to train (for a job array), run nothing")  # fmt: skip
    parser.add_argument("--summarize", action="store_true", help="report the finished runs, train nothing")
    try:
        for arg in argv:
            name = arg.split("=", 1)[0].removeprefix("--")
            if arg.startswith("--") and name in {f.name for f in dataclasses.fields(TrainerFlags)}:
                raise ConfigError(
                    f"--{name} is a Lightning flag; a sweep trains every Lightning run in one CPU process"
                )
        ns = parser.parse_args(argv)
        if ns.jobs < 1:
            raise ConfigError(f"--jobs must be an integer >= 1, got {ns.jobs}")
        if ns.print_commands and ns.summarize:
            raise ConfigError("--print_commands and --summarize exclude each other: give one")
        flags = (arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--"))
        given = list(dict.fromkeys(name for name in flags if name in names))
        combinations = _combinations(given, ns, prog)
    except ConfigError as err:
        fail(prog, str(err))
    return SweepArgs(
        combinations=combinations, trainers=tuple(dict.fromkeys(ns.trainers)), logdir=Path(ns.logdir),
        jobs=ns.jobs, given=tuple(given), print_commands=ns.print_commands, summarize=ns.summarize,
    )  # fmt: skip


def _combinations(given: list[str], ns: argparse.Namespace, prog: str) -> tuple[Combination, ...]:
    """Each combination parsed by the trainers' own parser (a bad value exits 2 naming the flag)."""
    seen: dict[tuple, Combination] = {}
    for values in itertools.product(*(getattr(ns, name) for name in given)):
        flags = tuple(zip(given, values, strict=True))
        argv = [arg for name, value in flags for arg in (f"--{name}", value)]
        hparams = _parse([*argv, "--logdir", ns.logdir], prog, "", numpy_only=True, a_run=False).hp.as_dict()
        combination = Combination(flags, hparams)
        key = hparams_key(hparams)
        if key in seen:
            raise ConfigError(
                f"{seen[key].label} and {combination.label} are the same run (the same hyperparameters): "
                "give each value once"
            )
        seen[key] = combination
    return tuple(seen.values())
