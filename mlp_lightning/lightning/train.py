"""Builds the Lightning Trainer for a parsed command line and runs it (``scripts/fit.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlp_lightning.core.errors import ConfigError, RunInterrupted, fail
from mlp_lightning.core.report import final_report, progress_bar_wanted, resuming_line
from mlp_lightning.lightning.flags import resumed_trainer_flags
from mlp_lightning.runs.args import RunArgs, TrainerFlags
from mlp_lightning.runs.interrupt import StopRequest, resume_hint
from mlp_lightning.runs.layout import (
    CHECKPOINT_DIR,
    LIGHTNING_CHECKPOINT,
    LIGHTNING_TRAINER,
    RUN_VERSION_ENV,
    claim_run_dir,
    run_name,
    wait_for_a_later_event_file_second,
)
from mlp_lightning.runs.resume import resolve_resume

if TYPE_CHECKING:  # importing it needs torch, which the command line must not wait for
    from mlp_lightning.lightning.checkpoint_io import Resumed

PROG, PROG_PATH = "fit.py", "scripts/fit.py"
PROGRESS_EVERY_N_STEPS = 10


def quiet_lightning() -> None:
    """Silence the start-up chatter a user cannot act on (device tables, tips, summaries)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.fabric.utilities.distributed"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)
    # our loaders are in-memory iterables: worker processes would only add overhead
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
    # the epoch metrics are torchmetrics objects, already summed over the ranks at compute()
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")
    # raised inside Lightning 2.6 by newer torch; nothing a user can change
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def launched_as_nonzero_rank() -> bool:
    """Whether an outside launcher started this process as a rank other than global rank 0.

    torchrun sets RANK, srun SLURM_PROCID; on the second and later machines of a
    multi-node run Lightning's own launcher sees NODE_RANK (torchrun: GROUP_RANK).
    """
    return any(os.environ.get(key, "0") != "0" for key in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"))


def run_version(args: RunArgs) -> int | None:
    """Rank 0 claims a new run directory; processes it launches inherit its number.

    ``None`` for the other ranks of an outside launch (torchrun, srun): they cannot
    know rank 0's number before the processes connect, and they need none, since
    only rank 0 writes and Lightning broadcasts rank 0's checkpoint directory.
    """
    # Lightning's launcher gives the processes it starts LOCAL_RANK >= 1; the launching
    # process (and a second run in the same interpreter) must claim a fresh directory
    inherited = os.environ.get(RUN_VERSION_ENV)
    if inherited is not None and os.environ.get("LOCAL_RANK", "0") != "0":
        return int(inherited)
    if launched_as_nonzero_rank():
        return None
    _, version = claim_run_dir(args.logdir, LIGHTNING_TRAINER)
    os.environ[RUN_VERSION_ENV] = str(version)
    return version


def fit(args: RunArgs, callbacks: Sequence = ()) -> int:
    """Train (or resume) one run; exit code 0, 1 diverged, 2 bad --resume, 130/143 interrupted.

    ``callbacks`` are added to the project's (tests use them to inject faults).
    """
    quiet_lightning()
    stop = StopRequest().install()  # from here on Ctrl-C/SIGTERM stop at the next batch boundary
    try:
        return _fit(args, stop, callbacks)
    finally:
        stop.restore()


def _fit(args: RunArgs, stop: StopRequest, extra_callbacks: Sequence) -> int:
    resumed, flags = None, args.trainer
    if args.resume is not None:
        try:
            target = resolve_resume(
                args.resume, args.logdir, LIGHTNING_TRAINER, LIGHTNING_CHECKPOINT
            )  # before paying for torch
            from mlp_lightning.lightning.checkpoint_io import load_resume

            resumed = load_resume(target, args.hp, args.given)
            flags = resumed_trainer_flags(resumed.trainer_flags, args.trainer, args.given)
        except ConfigError as err:
            fail(PROG, str(err))
        if resumed.epochs_done >= resumed.hp.max_epochs:
            print(
                f"run {resumed.target.run_dir} already finished its {resumed.epochs_done} epochs: nothing to "
                "resume (pass --max_epochs with more epochs to train it further)"
            )
            return 0

    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlp_lightning.core.errors import DivergenceError
    from mlp_lightning.lightning.callbacks import (
        DivergenceGuard,
        EpochProgressBar,
        EpochSummary,
        HParamsSession,
        TorchThreads,
        epoch_metrics,
        torch_threads,
    )
    from mlp_lightning.lightning.datamodule import BlobDataModule, check_world_size
    from mlp_lightning.lightning.lit_module import MLPClassifier
    from mlp_lightning.lightning.rank_state import check_process_count
    from mlp_lightning.lightning.run_checkpoint import RunCheckpoint, SafeCheckpointIO

    hp = resumed.hp if resumed else args.hp
    # a new run's directory (and any parent it creates) goes again if the launch is refused
    new_dirs = [] if resumed else _missing_dirs(Path(args.logdir) / LIGHTNING_TRAINER)
    version = resumed.target.version if resumed else run_version(args)
    logdir = resumed.target.logdir if resumed else args.logdir
    # a resumed run writes a new event file into its own directory: the same TensorBoard run
    logger = TensorBoardLogger(
        save_dir=logdir, name=LIGHTNING_TRAINER, version=version, default_hp_metric=False
    )
    run_dir = logger.log_dir

    L.seed_everything(hp.seed, verbose=False)  # dropout draws from torch's global RNG
    datamodule = BlobDataModule.from_hparams(hp)
    model = MLPClassifier.from_hparams(hp)
    checkpoint_path = os.path.join(run_dir, CHECKPOINT_DIR, LIGHTNING_CHECKPOINT)
    checkpoint = RunCheckpoint(
        checkpoint_path, hp.as_dict(), args.checkpoint_every_n_steps, stop, dataclasses.asdict(flags)
    )
    threads = torch_threads(hp)
    trainer = L.Trainer(
        accelerator=flags.accelerator,
        devices=flags.devices,
        strategy=flags.strategy,
        precision=flags.precision,
        num_nodes=flags.num_nodes,
        max_epochs=hp.max_epochs,
        logger=logger,
        plugins=[SafeCheckpointIO()],
        callbacks=[
            checkpoint,
            # every 10 steps and at each epoch's end: redrawing the bar every step costs
            # ~0.15 ms, a tenth of a seed-config step. Off a terminal, no bar: its
            # carriage-return redraws would garble a log.
            EpochProgressBar(refresh_rate=PROGRESS_EVERY_N_STEPS, enabled=progress_bar_wanted()),
            DivergenceGuard(),
            EpochSummary(),
            HParamsSession(hp.as_dict(), run_name=run_name(LIGHTNING_TRAINER, version)),
            *([TorchThreads(threads)] if threads else []),
            *extra_callbacks,
        ],
        enable_checkpointing=False,  # RunCheckpoint is the one writer of the run's checkpoint
        enable_model_summary=False,
        num_sanity_val_steps=0,  # in-memory data: nothing for a sanity pass to catch
        log_every_n_steps=1,  # nothing is logged per step; this only silences a warning
    )
    try:  # the process count is known once the Trainer exists; refuse before anything is written
        check_world_size(hp.n_train, hp.n_val, trainer.world_size)
        if resumed:
            check_process_count(resumed.processes, trainer.world_size)
    except ConfigError as err:
        if not resumed and version is not None:  # this process claimed the run's directory
            for path in (Path(run_dir), *new_dirs):
                with contextlib.suppress(OSError):  # rmdir only ever removes an empty directory
                    path.rmdir()
        if trainer.is_global_zero:
            fail(PROG, str(err))
        sys.exit(2)
    if trainer.is_global_zero and (processes := processes_line(trainer)):
        print(processes, flush=True)
    if resumed and trainer.is_global_zero:
        target = resumed.target
        print(resuming_line(target.run_dir, target.checkpoint, resumed.epochs_done, resumed.step), flush=True)
        for change in resume_changes(resumed, flags, trainer.strategy.root_device.type):
            print(f"{PROG}: note: {change}", file=sys.stderr)
        wait_for_a_later_event_file_second(Path(run_dir))  # TensorBoard reads the files in name order
    start = time.perf_counter()
    try:
        trainer.fit(
            model, datamodule=datamodule, ckpt_path=resumed.target.checkpoint if resumed else None,
            weights_only=True,
        )  # fmt: skip
    except DivergenceError as err:
        if trainer.is_global_zero:
            sys.stdout.flush()  # the summaries before it, in a log that takes both streams
            print(f"{PROG}: {err}\n{_kept(checkpoint, run_dir)}", file=sys.stderr)
        return 1
    except RunInterrupted:
        if trainer.is_global_zero:
            sys.stdout.flush()
            epoch, step = checkpoint.saved_at
            print(
                f"{PROG}: stopped by {stop.name} in epoch {epoch + 1} after step {step}; "
                f"checkpoint saved to {checkpoint_path}\n{resume_hint(PROG_PATH, run_dir)}",
                file=sys.stderr,
            )
        return stop.exit_code
    wall = time.perf_counter() - start
    if trainer.is_global_zero:
        print(final_report(epoch_metrics(trainer), run_dir, logdir, wall))
    return 0


def processes_line(trainer) -> str | None:
    """``fit.py: training on 2 processes (strategy ddp, accelerator cpu)``; None for one process."""
    if trainer.world_size <= 1:
        return None
    strategy, accelerator = _strategy_name(trainer.strategy), trainer.strategy.root_device.type
    nodes = f", {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    how = f"strategy {strategy}, accelerator {accelerator}{nodes}"
    return f"{PROG}: training on {trainer.world_size} processes ({how})"


def _strategy_name(strategy) -> str:
    """The name ``--strategy`` takes for the strategy Lightning picked: ddp, ddp_spawn, fsdp, ..."""
    if name := getattr(strategy, "strategy_name", None):  # FSDP and DeepSpeed name themselves
        return name
    base = type(strategy).__name__.removesuffix("Strategy").lower()  # DDPStrategy: ddp
    start = getattr(strategy, "_start_method", "popen")  # ddp starts its processes with popen
    return base if start == "popen" else f"{base}_{start}"


def resume_changes(resumed: Resumed, flags: TrainerFlags, device: str) -> list[str]:
    """What a resume changes about how the run computes; each change ends its bit-for-bit match."""
    changes = []
    if resumed.device is not None and resumed.device != device:
        changes.append(f"the run trained on {resumed.device} and continues on {device}")
    saved_precision = (resumed.trainer_flags or {}).get("precision")
    if saved_precision is not None and saved_precision != flags.precision:
        changes.append(f"the run trained in precision {saved_precision} and continues in {flags.precision}")
    return [f"{change}: from here its numbers will differ from an uninterrupted run's" for change in changes]


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    return [p for p in (path, *path.parents) if not p.exists()]


def _kept(checkpoint, run_dir: str) -> str:
    if checkpoint.saved_at is None:
        return "no checkpoint had been saved yet; nothing to resume"
    epoch, step = checkpoint.saved_at
    # resuming would replay the same steps into the same divergence
    return (
        f"the last good checkpoint (epoch {epoch + 1}, step {step}) is kept: {checkpoint.path}; "
        "to go on, start a new run with a smaller --lr"
    )
