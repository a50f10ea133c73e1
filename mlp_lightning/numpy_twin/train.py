"""The twin's training loop: shared data, weights and batch order in; metrics, events and weights out.

Metrics follow ``tensorboard_schema``: train loss/acc are the batch-size-weighted
means of the epoch's training batches, measured on the forward pass that produced
each gradient (dropout on, before the update); val loss/acc cover the whole
validation split in eval mode after the epoch. The sums are kept in float32, as
torchmetrics keeps them on the Lightning side.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from mlp_lightning.core.columns import Columns
from mlp_lightning.core.data import EVAL_CHUNK, BatchOrder, load_run_data, load_splits
from mlp_lightning.core.errors import (
    ConfigError,
    DivergenceError,
    RunInterrupted,
    WriteFailed,
    fail,
    fail_write,
)
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.report import (
    BAR_FORMAT,
    already_finished_line,
    bar_metrics,
    diverged_lines,
    epoch_description,
    epoch_line,
    final_report,
    progress_bar_wanted,
    resuming_line,
    should_report,
    stopped_lines,
)
from mlp_lightning.core.tensorboard_schema import (
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
    epoch_end_step,
    logs_steps,
    run_text,
)
from mlp_lightning.core.weights import init_weights
from mlp_lightning.numpy_twin.checkpoint import Checkpointer, TwinState, load_resume, resume_target
from mlp_lightning.numpy_twin.model import Params
from mlp_lightning.numpy_twin.step import RunningMean, Workspace, empty_cache, evaluate, predict, train_step
from mlp_lightning.runs.files import atomic_write_bytes, atomic_write_text, thread_write_errors_quiet
from mlp_lightning.runs.interrupt import StopRequest
from mlp_lightning.runs.layout import (
    CHECKPOINT_DIR,
    HPARAMS_FILE,
    METRICS_CSV,
    NUMPY_TRAINER,
    TWIN_CHECKPOINT,
    TWIN_WEIGHTS,
    claim_run_dir,
    run_name,
    wait_for_a_later_event_file_second,
)
from mlp_lightning.runs.lock import hold_run, unchanged_since
from mlp_lightning.runs.metrics_csv import MetricsCsv
from mlp_lightning.runs.run_id import record_run_id
from mlp_lightning.runs.slurm import requeue_line

if TYPE_CHECKING:
    from mlp_lightning.runs.args import RunArgs

PROG, PROG_PATH = "baseline_numpy.py", "scripts/baseline_numpy.py"


# An overflow to inf or nan is what the divergence check after each backward pass is for (and a
# non-finite validation loss shows in the summary line): numpy's RuntimeWarnings about it would
# only print ahead of the run's own message. Other warnings are untouched.
@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def train(
    hp: HParams,
    on_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int, dict[str, float], Params], None] | None = None,
    resume: TwinState | None = None,
    on_boundary: Callable[[int, int | None, Callable[[], TwinState]], None] | None = None,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    on_loss: Callable[[int, int, np.float32], None] | None = None,
) -> Params:
    """Train from the shared initial weights; ``on_epoch(epoch, metrics, params)`` after each (0-based) epoch.

    ``resume`` continues a saved state exactly. ``on_boundary(step, finished_epoch, snapshot)``
    runs between steps (``finished_epoch`` is None inside an epoch) and may save ``snapshot()``.
    ``splits`` are ``hp``'s own (``load_splits``), where the caller has them already.
    ``on_loss(epoch, step, loss)``: each training batch's loss, at its optimizer step's 0-based index.
    """
    Xtr, ytr, Xva, yva = splits if splits is not None else load_splits(hp)
    params = init_weights(hp.dim, hp.hidden_dim, hp.num_classes, hp.seed)
    order = BatchOrder(len(Xtr), hp.batch_size, hp.seed)
    mean, step, first_epoch = RunningMean(), 0, 0
    if resume is not None:
        params = {name: value.copy() for name, value in resume.params.items()}
        order.load_state_dict(resume.order)
        mean = RunningMean(resume.sums["loss_sum"], resume.sums["weight"], **resume.counts)
        step, first_epoch = resume.step, resume.epochs_done
    train_ws = Workspace.allocate(hp.batch_size, params)
    eval_cache = empty_cache(min(len(Xva), EVAL_CHUNK), *params["W1"].shape, grad=False)

    def snapshot() -> TwinState:
        sums = {"loss_sum": mean.loss_sum, "weight": mean.weight}
        counts = {"correct": mean.correct, "seen": mean.seen}
        return TwinState(hp, params, order.state_dict(), sums, counts, step)

    for epoch in range(first_epoch, hp.max_epochs):
        order.set_epoch(epoch)
        if resume is None or epoch != resume.order["epoch"]:  # else: the interrupted epoch's sums go on
            mean = RunningMean()
        n_batches = len(order)
        for idx in order:
            B = len(idx)
            xb = np.take(Xtr, idx, axis=0, out=train_ws.xb[:B])
            yb = np.take(ytr, idx, out=train_ws.yb[:B])
            try:
                loss, correct = train_step(params, xb, yb, hp, train_ws, epoch, idx)
            except DivergenceError as err:
                raise DivergenceError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1}: {err}; stopped before "
                    f"the update (try a smaller --lr, now {hp.lr:g})"
                ) from None
            mean.update(loss, correct, B)
            if on_loss is not None:
                on_loss(epoch, step, loss)
            step += 1
            if on_step is not None:
                on_step()
            if on_boundary is not None and order.batches_done < n_batches:
                on_boundary(step, None, snapshot)
        train_loss, train_acc = mean.compute()
        val_loss, val_acc = evaluate(params, Xva, yva, eval_cache)
        if on_epoch is not None:
            metrics = {TRAIN_LOSS: train_loss, TRAIN_ACC: train_acc, VAL_LOSS: val_loss, VAL_ACC: val_acc}
            on_epoch(epoch, metrics, params)
        if on_boundary is not None:
            on_boundary(step, epoch, snapshot)
    return params


def save_weights(params: Params, columns: Columns, path: Path) -> None:
    """W1, b1, W2, b2 as float32 arrays in an ``.npz``, with the run's ``Columns`` (no pickles)."""
    buffer = io.BytesIO()
    np.savez(buffer, **_weights_file_arrays(params, columns))
    atomic_write_bytes(buffer.getvalue(), path)


def weights_saved(params: Params, columns: Columns, path: Path) -> bool:
    """Whether ``path`` holds exactly ``params`` and ``columns``: False if missing, cut short or different."""
    arrays = _weights_file_arrays(params, columns)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return set(npz.files) == set(arrays) and all(np.array_equal(npz[k], arrays[k]) for k in arrays)
    except Exception:  # any way a file can be unreadable: it is written again
        return False


def _weights_file_arrays(params: Params, columns: Columns) -> dict[str, np.ndarray]:
    weights = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}
    return {**weights, **columns.as_arrays()}


def fit(args: RunArgs) -> int:
    """Train one run under ``<logdir>/numpy/version_N``: events, hparams.yaml, weights.npz, console report.

    Exit codes as fit.py's: 0, 1 diverged, 2 bad --resume or a run in use, 130/143 interrupted,
    74 (``WRITE_FAILED_EXIT``) a file the disk refused.
    """
    with contextlib.ExitStack() as held:  # the run's lock and the quiet event-writer thread, to the end
        try:
            held.enter_context(thread_write_errors_quiet())
            return _fit(args, held)
        except WriteFailed as err:
            return fail_write(PROG, err)


def _open_run(args: RunArgs, held: contextlib.ExitStack) -> tuple | None:
    """The run to train, held: ``(hp, resume, run_dir, version, logdir)``; None for a resume of a run
    that has finished (its final weights written if a kill lost them)."""
    if args.resume is None:
        run_dir, version = claim_run_dir(args.logdir, NUMPY_TRAINER)
        held.enter_context(hold_run(run_dir))
        record_run_id(run_dir, args.run_id)  # a rerun of this command finds the run by it
        return args.hp, None, run_dir, version, args.logdir
    try:
        target = resume_target(args, NUMPY_TRAINER)
        read = unchanged_since(target.checkpoint)
        resume = load_resume(args, target)  # checked before the lock: a refusal writes nothing
        held.enter_context(hold_run(target.run_dir))
        if not read():  # its holder saved it again and ended while this process read it
            resume = load_resume(args, target)
    except ConfigError as err:
        fail(PROG, str(err))
    hp, run_dir = resume.hp, target.run_dir
    if resume.epochs_done >= hp.max_epochs:
        columns = load_run_data(hp)[4]
        if not weights_saved(resume.params, columns, run_dir / TWIN_WEIGHTS):  # killed after its final save
            save_weights(resume.params, columns, run_dir / TWIN_WEIGHTS)
            print(f"wrote its final weights, missing or incomplete, to {run_dir / TWIN_WEIGHTS}")
        print(already_finished_line(run_dir, resume.epochs_done))
        return None
    print(resuming_line(run_dir, target.checkpoint, resume.epochs_done, resume.step), flush=True)
    return hp, resume, run_dir, target.version, target.logdir


def _progress_bar(hp: HParams, steps_per_epoch: int, resume: TwinState | None):
    """As Lightning's: the steps of the epoch it names (a resumed one goes on from its steps done).

    Off a terminal no bar: its carriage-return redraws would garble a log.
    """
    from tqdm import tqdm

    epochs_done, steps_done = (resume.epochs_done, resume.step) if resume else (0, 0)
    return tqdm(
        total=steps_per_epoch, dynamic_ncols=True, leave=False, bar_format=BAR_FORMAT,
        disable=not progress_bar_wanted(), initial=steps_done - epochs_done * steps_per_epoch,
        desc=epoch_description(epochs_done + 1, hp.max_epochs),
    )  # fmt: skip


def _fit(args: RunArgs, held: contextlib.ExitStack) -> int:
    from mlp_lightning.core.boundary_image import BoundaryImage
    from mlp_lightning.numpy_twin.events import EventWriter

    opened = _open_run(args, held)
    if opened is None:
        return 0
    hp, resume, run_dir, version, logdir = opened
    atomic_write_text(yaml.safe_dump(hp.as_dict()), run_dir / HPARAMS_FILE)  # as Lightning writes it
    if resume is not None:
        wait_for_a_later_event_file_second(run_dir)  # TensorBoard reads the files in name order
    text, first_step = run_text(args.command, args.config_yaml, hp.classes), resume.step if resume else 0
    purge_step = resume.step if resume else None  # the steps it replays, logged again
    every_n = args.log_every_n_steps
    events = EventWriter(
        run_dir, hp.as_dict(), run_name(NUMPY_TRAINER, version), text, first_step, purge_step, every_n > 0
    )
    table = MetricsCsv(run_dir / METRICS_CSV, first_epoch=resume.epochs_done if resume else 0)
    steps_per_epoch = len(BatchOrder(hp.n_train, hp.batch_size, hp.seed))
    *splits, columns = load_run_data(hp)  # read once: the file may be large
    # the decision boundary's picture: 2-D data only
    boundary_image = BoundaryImage(*splits[2:]) if hp.dim == 2 else None
    eval_buffers = empty_cache(EVAL_CHUNK, hp.dim, hp.hidden_dim, grad=False)
    bar = _progress_bar(hp, steps_per_epoch, resume)
    checkpoint = run_dir / CHECKPOINT_DIR / TWIN_CHECKPOINT
    stop = StopRequest().install()  # Ctrl-C/SIGTERM/SIGUSR1: stop at the next step boundary
    saver = Checkpointer(checkpoint, args.checkpoint_every_n_steps, hp.max_epochs, stop, resume)
    last: dict[str, float] = {}

    def on_epoch(epoch: int, metrics: dict[str, float], params: Params) -> None:
        events.epoch_scalars(epoch, steps_per_epoch, metrics)
        table.append(epoch, epoch_end_step(epoch, steps_per_epoch), metrics)
        if boundary_image is not None and should_report(epoch + 1, hp.max_epochs):
            png = boundary_image.png(lambda points: predict(params, points, eval_buffers))
            events.boundary_image(png, epoch_end_step(epoch, steps_per_epoch))
        last.update(metrics)
        bar.set_postfix(bar_metrics(metrics), refresh=False)
        if epoch + 1 < hp.max_epochs:  # the bar names the epoch it counts the steps of
            bar.set_description(epoch_description(epoch + 2, hp.max_epochs), refresh=False)
            bar.reset(total=steps_per_epoch)
        if should_report(epoch + 1, hp.max_epochs):
            bar.write(epoch_line(epoch + 1, metrics))  # from the line's first column, the bar redrawn below
            sys.stdout.flush()  # whole, before anything the run writes to stderr

    def on_loss(epoch: int, step: int, loss: np.float32) -> None:
        if logs_steps(every_n, step):
            events.step_loss(epoch, step, loss)

    start = time.perf_counter()
    try:
        params = train(
            hp, on_step=bar.update, on_epoch=on_epoch, resume=resume, on_boundary=saver, splits=tuple(splits),
            on_loss=on_loss if every_n > 0 else None,  # nothing per step unless asked
        )  # fmt: skip
    except RunInterrupted:
        # not over: no session end, as Lightning writes none; TensorBoard keeps the first end a run's
        # files hold, so one written now would outlast the one its resume writes
        events.close_after_failure(None)
        bar.close()  # clears its line: the message starts on a line of its own
        sys.stdout.flush()  # the summaries before it, in a log that takes both streams
        print(stopped_lines(PROG, PROG_PATH, stop.name, saver.saved_at, checkpoint, run_dir), file=sys.stderr)
        if requeued := requeue_line(PROG, stop.name, args.requeue):
            print(requeued, file=sys.stderr)
        return stop.exit_code
    except DivergenceError as err:
        events.close_after_failure("STATUS_FAILURE")
        bar.close()
        sys.stdout.flush()
        print(diverged_lines(PROG, err, saver.saved_at, checkpoint), file=sys.stderr)
        return 1
    except BaseException:  # WriteFailed among them: fit reports it
        events.close_after_failure("STATUS_FAILURE")
        raise
    finally:
        bar.close()
        stop.restore()
    save_weights(params, columns, run_dir / TWIN_WEIGHTS)
    events.close()
    print(final_report(last, run_dir, logdir, time.perf_counter() - start))
    return 0
