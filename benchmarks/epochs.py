"""Training-epoch times of each implementation, one list per run: the first epoch is warm-up.

Every function trains ``hp.max_epochs`` epochs on the shared blobs and returns the
seconds each epoch's training part took (evaluation, where an implementation has
it, is not counted; the torch ones also return each epoch's train loss). Each runs
in its own process (see ``worker``), so no thread pool or allocator state leaks
from one to the next.
"""

from __future__ import annotations

import time

from mlp_lightning.core.data import load_splits
from mlp_lightning.core.hparams import HParams


def twin(hp: HParams) -> list[float]:
    """The NumPy twin's own ``train`` loop, timed through its hooks: epoch start to its last step."""
    from mlp_lightning.numpy_twin.train import train

    starts, ends, last_step = [time.perf_counter()], [], [0.0]

    def on_step() -> None:
        last_step[0] = time.perf_counter()

    def on_epoch(epoch: int, metrics: dict[str, float], params) -> None:
        ends.append(last_step[0])
        starts.append(time.perf_counter())  # the next epoch starts after this evaluation

    train(hp, on_step=on_step, on_epoch=on_epoch)
    return [end - begin for begin, end in zip(starts[:-1], ends, strict=True)]


def twin_dropout0(hp: HParams) -> list[float]:
    """The twin at ``--dropout 0``: the notebook's model (it has no dropout), for a like-for-like ratio."""
    return twin(HParams(**{**hp.as_dict(), "dropout": 0.0}))


def lightning(hp: HParams, device: str = "cpu") -> tuple[list[float], list[float]]:
    """``Trainer.fit`` on the project's module; also each epoch's train loss, to compare with the loop."""
    from benchmarks.overhead import trainer_fit

    timing = trainer_fit(hp, device)
    return timing.train_epoch_s, timing.train_loss


def fit_py(hp: HParams, device: str = "cpu") -> tuple[list[float], list[float]]:
    """What ``scripts/fit.py`` runs (logger, checkpoints, summaries, guard), timed by one more callback."""
    import contextlib
    import io
    import tempfile

    from benchmarks.overhead import FitTiming, epoch_clock, sync_for
    from mlp_lightning.lightning.train import fit
    from mlp_lightning.runs.args import RunArgs, TrainerFlags

    timing = FitTiming(wall_s=0.0)
    flags = TrainerFlags(accelerator="cuda" if device.startswith("cuda") else "cpu", devices=1)
    # its report names a run directory deleted with the temporary logdir: not the benchmark's to print
    with tempfile.TemporaryDirectory() as logdir, contextlib.redirect_stdout(io.StringIO()):
        if fit(RunArgs(hp, flags, logdir), callbacks=[epoch_clock(timing, sync_for(device))]) != 0:
            raise RuntimeError("fit.py's train() failed")
    return timing.train_epoch_s, timing.train_loss


def fit_py_dropout0(hp: HParams) -> tuple[list[float], list[float]]:
    return fit_py(HParams(**{**hp.as_dict(), "dropout": 0.0}))


def hand_loop(hp: HParams, device: str = "cpu") -> tuple[list[float], list[float]]:
    from benchmarks.overhead import hand_loop as loop

    timing = loop(hp, device)
    return timing.train_epoch_s, timing.train_loss


def notebook(hp: HParams) -> list[float]:
    """The reference notebook's NumPy code (float64 targets, no dropout), on the same blobs."""
    from benchmarks import notebook_numpy as nb

    Xtr, ytr, _, _ = load_splits(hp)
    model = nb.TwoLayerMLP(hp.dim, hp.hidden_dim, hp.num_classes, seed=hp.seed)
    times = []
    for _ in range(hp.max_epochs):
        start = time.perf_counter()
        nb.train_epoch(model, Xtr, ytr, hp.batch_size, hp.lr, hp.weight_decay, hp.num_classes)
        times.append(time.perf_counter() - start)
    return times


def sklearn(hp: HParams) -> list[float]:
    """scikit-learn's MLPClassifier, plain SGD at the same sizes, one ``partial_fit`` per epoch."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    Xtr, ytr, _, _ = load_splits(hp)
    clf = MLPClassifier(
        hidden_layer_sizes=(hp.hidden_dim,), activation="relu", solver="sgd", alpha=hp.weight_decay,
        batch_size=hp.batch_size, learning_rate_init=hp.lr, momentum=0.0, nesterovs_momentum=False,
        shuffle=True, random_state=hp.seed,
    )  # fmt: skip
    classes = np.arange(hp.num_classes)
    times = []
    for _ in range(hp.max_epochs):
        start = time.perf_counter()
        clf.partial_fit(Xtr, ytr, classes=classes)
        times.append(time.perf_counter() - start)
    return times


IMPLEMENTATIONS = {
    "twin": twin,
    "twin_d0": twin_dropout0,
    "lightning": lightning,
    "fit_py": fit_py,
    "fit_py_d0": fit_py_dropout0,
    "hand_loop": hand_loop,
    "notebook": notebook,
    "sklearn": sklearn,
}
