"""Train (or resume) one run with Lightning: ``scripts/fit.py``.

``fit`` first settles what this process trains (``plan_run``: a new run directory, or
the run ``--resume`` names, read and checked), then ``train`` builds it the way
Lightning's own templates do: data module, model, callbacks, logger, trainer, and
``trainer.fit(..., ckpt_path=...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from mlp_lightning.core.boundary_image import BoundaryImage
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.errors import (
    WRITE_FAILED_EXIT,
    ConfigError,
    DivergenceError,
    RunInterrupted,
    WriteFailed,
    fail,
    fail_write,
)
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.quoted import quoted_text
from mlp_lightning.core.report import (
    already_finished_line,
    diverged_lines,
    final_report,
    progress_bar_wanted,
    rank_died_lines,
    resuming_line,
    stopped_lines,
)
from mlp_lightning.core.tensorboard_schema import run_text
from mlp_lightning.lightning.callbacks import (
    DivergenceGuard,
    EpochProgressBar,
    EpochSummary,
    HParamsSession,
    TorchThreads,
    epoch_metrics,
    torch_threads,
)
from mlp_lightning.lightning.checkpoint_io import Resumed, SafeCheckpointIO, load_resume
from mlp_lightning.lightning.datamodule import BlobDataModule, check_world_size
from mlp_lightning.lightning.flags import resumed_trainer_flags
from mlp_lightning.lightning.launch import (
    PROG,
    RankWatch,
    holds_the_run,
    processes_line,
    quiet_lightning,
    run_version,
    slurm_plugins,
    unused_devices_line,
    visible_gpus,
)
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.lightning.rank_state import check_process_count
from mlp_lightning.lightning.run_checkpoint import RunCheckpoint
from mlp_lightning.lightning.run_logger import RunLogger
from mlp_lightning.lightning.run_record import RunRecord
from mlp_lightning.runs.args import RunArgs, TrainerFlags
from mlp_lightning.runs.files import thread_write_errors_quiet
from mlp_lightning.runs.interrupt import StopRequest
from mlp_lightning.runs.layout import (
    CHECKPOINT_DIR,
    LIGHTNING_CHECKPOINT,
    LIGHTNING_TRAINER,
    LOCK_FILE,
    METRICS_CSV,
    run_name,
    wait_for_a_later_event_file_second,
)
from mlp_lightning.runs.lock import hold_run, unchanged_since
from mlp_lightning.runs.resume import resolve_resume
from mlp_lightning.runs.run_id import RUN_ID_FILE, record_run_id
from mlp_lightning.runs.slurm import requeue_line

PROG_PATH = "scripts/fit.py"
PROGRESS_EVERY_N_STEPS = 10


@dataclass(frozen=True)
class Plan:
    """What this process trains: the run's hyperparameters and flags, and where it writes."""

    hp: HParams
    flags: TrainerFlags
    logdir: Path
    version: int | None  # None: another rank of an outside launch, which writes nothing
    resumed: Resumed | None = None
    new_dirs: tuple[Path, ...] = ()  # created for a new run: removed again if the launch is refused
    requeue: bool = True  # --requeue: under SLURM, after a SIGUSR1 stop


def fit(args: RunArgs, callbacks: Sequence = ()) -> int:
    """Train (or resume) one run; exit code 0, 1 diverged, 2 bad --resume or a run in use,
    130/143 interrupted, 74 (``WRITE_FAILED_EXIT``) a file the disk refused.

    ``callbacks`` are added to the project's: a user's ModelCheckpoint, EarlyStopping, ...
    (tests also use them to inject faults).
    """
    stop = StopRequest().install()  # from here on Ctrl-C/SIGTERM/SIGUSR1 stop at the next batch boundary
    # held until the process ends its run: the run's lock, the quiet event-writer thread and
    # Lightning's quieted chatter (the caller's warning filters and log levels come back after)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(quiet_lightning())
            held.enter_context(thread_write_errors_quiet())
            try:
                plan = plan_run(args, held)
            except ConfigError as err:
                fail(PROG, str(err))
            if plan is None:
                return 0
            text = run_text(args.command, args.config_yaml, plan.hp.classes)
            return train(plan, args.checkpoint_every_n_steps, stop, callbacks, text, args.log_every_n_steps)
        except WriteFailed as err:
            return fail_write(PROG, err)
        finally:
            stop.restore()


def plan_run(args: RunArgs, held: contextlib.ExitStack) -> Plan | None:
    """A new run, or the run ``--resume`` names (None when it has finished its epochs).

    The process that claims or resumes the run (global rank 0) holds its lock in ``held``.
    """
    if args.resume is None:
        new_dirs = tuple(
            _missing_dirs(Path(args.logdir) / LIGHTNING_TRAINER)
        )  # before the claim creates them
        version = run_version(args)
        if version is not None and holds_the_run():
            run_dir = Path(args.logdir) / run_name(LIGHTNING_TRAINER, version)
            held.enter_context(hold_run(run_dir))
            record_run_id(run_dir, args.run_id)  # a rerun of this command finds the run by it
        logdir = Path(args.logdir)
        return Plan(args.hp, args.trainer, logdir, version, new_dirs=new_dirs, requeue=args.requeue)
    target = resolve_resume(args.resume, args.logdir, LIGHTNING_TRAINER, LIGHTNING_CHECKPOINT)
    read = unchanged_since(target.checkpoint)
    resumed = load_resume(target, args.hp, args.given)  # checked before the lock: a refusal writes nothing
    if holds_the_run():
        held.enter_context(hold_run(target.run_dir))
        if not read():  # its holder saved it again and ended while this process read it
            resumed = load_resume(target, args.hp, args.given)
    if resumed.epochs_done >= resumed.hp.max_epochs:
        print(already_finished_line(target.run_dir, resumed.epochs_done))
        return None
    flags = resumed_trainer_flags(resumed.trainer_flags, args.trainer, args.given)
    return Plan(resumed.hp, flags, target.logdir, target.version, resumed, requeue=args.requeue)


def train(
    plan: Plan,
    checkpoint_every_n_steps: int,
    stop: StopRequest,
    extra_callbacks: Sequence = (),
    text: str = "",
    log_every_n_steps: int = 0,
) -> int:
    hp, flags, resumed = plan.hp, plan.flags, plan.resumed
    # the dropout bits come with the batches (core.dropout); seeded for anything else that draws
    L.seed_everything(hp.seed, verbose=False)
    datamodule = BlobDataModule.from_hparams(hp)
    model = MLPClassifier.from_hparams(hp)
    # a resumed run writes a new event file into its own directory: the same TensorBoard run. It
    # replays the steps since its checkpoint; purge_step (SummaryWriter's) hides the earlier files'
    # events from there on, or a point logged just before a kill and logged again would show twice
    logger = RunLogger(
        plan.logdir, name=LIGHTNING_TRAINER, version=plan.version, default_hp_metric=False,
        purge_step=resumed.step if resumed else None,
    )  # fmt: skip
    run_dir = logger.log_dir
    checkpoint = RunCheckpoint(
        os.path.join(run_dir, CHECKPOINT_DIR, LIGHTNING_CHECKPOINT), hp.as_dict(), checkpoint_every_n_steps,
        stop, dataclasses.asdict(flags),
    )  # fmt: skip
    callbacks = [*project_callbacks(plan, run_dir, checkpoint, text, log_every_n_steps > 0), *extra_callbacks]
    trainer = L.Trainer(
        accelerator=flags.accelerator,
        devices=flags.devices,
        strategy=flags.strategy,
        precision=flags.precision,
        num_nodes=flags.num_nodes,
        max_epochs=hp.max_epochs,
        logger=logger,
        callbacks=callbacks,
        # the checkpoint a resume has read and checked already is handed over, not read again
        plugins=[SafeCheckpointIO(preloaded=resumed.contents if resumed else None), *slurm_plugins()],
        # Lightning looks here for an hpc_ckpt_*.ckpt to restore under SLURM: the run's own directory
        # (another rank's, not yet known, does not exist), never the working directory
        default_root_dir=run_dir,
        # RunCheckpoint writes the resumable last.ckpt; a user's ModelCheckpoint writes beside it
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in extra_callbacks),
        enable_model_summary=False,
        num_sanity_val_steps=0,  # in-memory data: nothing for a sanity pass to catch
        log_every_n_steps=log_every_n_steps,  # 0: no per-step logging at all, not even its self.log
    )
    check_launch(trainer, plan, run_dir)
    announce(trainer, plan)
    start = time.perf_counter()
    try:
        ckpt_path = resumed.target.checkpoint if resumed else None
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except DivergenceError as err:
        if trainer.is_global_zero:
            sys.stdout.flush()  # the summaries before it, in a log that takes both streams
            print(diverged_lines(PROG, err, checkpoint.saved_at, checkpoint.path), file=sys.stderr)
        return 1
    except RunInterrupted:
        if trainer.is_global_zero:
            sys.stdout.flush()
            message = stopped_lines(PROG, PROG_PATH, stop.name, checkpoint.saved_at, checkpoint.path, run_dir)
            print(message, file=sys.stderr, flush=True)
            if requeued := requeue_line(PROG, stop.name, plan.requeue):
                print(requeued, file=sys.stderr)
        return stop.exit_code
    except RuntimeError:  # gloo's "Connection closed by peer" when another process died
        watch = next((c for c in trainer.callbacks if isinstance(c, RankWatch)), None)
        if watch is None or (what := watch.died()) is None:
            raise
        return watch.end(what)
    except WriteFailed as err:  # the last checkpoint written stays whole, for --resume once there is room
        if not trainer.is_global_zero:
            return WRITE_FAILED_EXIT
        sys.stdout.flush()
        return fail_write(PROG, err)
    if trainer.is_global_zero:
        print(final_report(epoch_metrics(trainer), run_dir, plan.logdir, time.perf_counter() - start))
    return 0


def project_callbacks(
    plan: Plan, run_dir: str, checkpoint: RunCheckpoint, text: str, per_step: bool = False
) -> list[L.Callback]:
    """The project's callbacks, in the order their hooks must run."""
    hp, resumed = plan.hp, plan.resumed
    threads = torch_threads(hp)
    first_epoch = resumed.epochs_done if resumed else 0
    boundary_image = BoundaryImage(*load_splits(hp)[2:]) if hp.dim == 2 else None  # 2-D data only
    return [
        # first: on a GPU its checks stay on the device (see DivergenceGuard), so it must undo a
        # bad step before any other callback reads the weights, and give its verdict before a save
        DivergenceGuard(),
        # the epoch's metrics.csv row before its checkpoint: a run resumed from that has the row
        RunRecord(text, Path(run_dir) / METRICS_CSV, first_epoch, boundary_image, per_step),
        checkpoint,
        # redrawn every 10 steps and at epoch ends (every step costs a tenth of a seed-config
        # step); off a terminal no bar at all: its carriage-return redraws would garble a log
        EpochProgressBar(refresh_rate=PROGRESS_EVERY_N_STEPS, enabled=progress_bar_wanted()),
        EpochSummary(),
        HParamsSession(hp.as_dict(), run_name=run_name(LIGHTNING_TRAINER, plan.version)),
        *([TorchThreads(threads)] if threads else []),
        # a process of a multi-process run that dies ends the others at once, in a few lines
        RankWatch(
            lambda what: rank_died_lines(PROG, PROG_PATH, what, checkpoint.saved_at, checkpoint.path, run_dir)
        ),
    ]


def check_launch(trainer: L.Trainer, plan: Plan, run_dir: str) -> None:
    """Refuse a process count that cannot work, once the Trainer knows it, before anything is written."""
    try:
        check_world_size(plan.hp.n_train, plan.hp.n_val, trainer.world_size)
        if plan.resumed:
            check_process_count(plan.resumed.processes, trainer.world_size)
    except ConfigError as err:
        if not plan.resumed and plan.version is not None:  # this process claimed the run's directory
            for name in (LOCK_FILE, RUN_ID_FILE):  # the lock is held until this process ends
                with contextlib.suppress(OSError):
                    (Path(run_dir) / name).unlink()
            for path in (Path(run_dir), *plan.new_dirs):
                with contextlib.suppress(OSError):  # rmdir only ever removes an empty directory
                    path.rmdir()
        if trainer.is_global_zero:
            fail(PROG, str(err))
        sys.exit(2)


def announce(trainer: L.Trainer, plan: Plan) -> None:
    """Global rank 0 says how many processes train, and what a resume continues and changes."""
    if not trainer.is_global_zero:
        return
    if processes := processes_line(trainer):
        print(processes, flush=True)
    if unused := unused_devices_line(trainer, visible_gpus()):
        print(unused, file=sys.stderr)
    if resumed := plan.resumed:
        target = resumed.target
        print(resuming_line(target.run_dir, target.checkpoint, resumed.epochs_done, resumed.step), flush=True)
        for change in resume_changes(resumed, plan.flags, trainer.strategy.root_device.type):
            print(f"{PROG}: note: {change}", file=sys.stderr)
        wait_for_a_later_event_file_second(target.run_dir)  # TensorBoard reads the files in name order


def resume_changes(resumed: Resumed, flags: TrainerFlags, device: str) -> list[str]:
    """What a resume changes about how the run computes; each change ends its bit-for-bit match."""
    changes = []
    if resumed.device is not None and resumed.device != device:
        changes.append(f"the run trained on {quoted_text(resumed.device)} and continues on {device}")
    saved_precision = (resumed.trainer_flags or {}).get("precision")
    if saved_precision is not None and saved_precision != flags.precision:
        changes.append(f"the run trained in precision {saved_precision} and continues in {flags.precision}")
    return [f"{change}: from here its numbers will differ from an uninterrupted run's" for change in changes]


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    return [p for p in (path, *path.parents) if not p.exists()]
