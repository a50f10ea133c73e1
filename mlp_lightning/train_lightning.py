"""Builds the Lightning Trainer for a parsed command line and runs it (``scripts/fit.py``)."""

from __future__ import annotations

import logging
import os
import time
import warnings

from mlp_lightning.cli import RunArgs
from mlp_lightning.report import final_report
from mlp_lightning.runs import RUN_VERSION_ENV, claim_run_dir

TRAINER_NAME = "lightning"


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
    _, version = claim_run_dir(args.logdir, TRAINER_NAME)
    os.environ[RUN_VERSION_ENV] = str(version)
    return version


def fit(args: RunArgs) -> int:
    quiet_lightning()
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlp_lightning.callbacks import EpochSummary, HParamsSession, epoch_metrics
    from mlp_lightning.datamodule import BlobDataModule
    from mlp_lightning.lit_module import MLPClassifier

    hp, flags = args.hp, args.trainer
    version = run_version(args)
    logger = TensorBoardLogger(
        save_dir=args.logdir, name=TRAINER_NAME, version=version, default_hp_metric=False
    )
    run_dir = logger.log_dir

    L.seed_everything(hp.seed, verbose=False)  # dropout draws from torch's global RNG
    datamodule = BlobDataModule(
        n_per_class=hp.n_per_class, dim=hp.dim, offset=hp.offset, num_classes=hp.num_classes,
        val_fraction=hp.val_fraction, batch_size=hp.batch_size, seed=hp.seed,
    )  # fmt: skip
    model = MLPClassifier(
        dim=hp.dim, hidden_dim=hp.hidden_dim, num_classes=hp.num_classes, dropout=hp.dropout,
        lr=hp.lr, weight_decay=hp.weight_decay, seed=hp.seed,
    )  # fmt: skip
    trainer = L.Trainer(
        accelerator=flags.accelerator,
        devices=flags.devices,
        strategy=flags.strategy,
        precision=flags.precision,
        num_nodes=flags.num_nodes,
        max_epochs=hp.max_epochs,
        logger=logger,
        callbacks=[
            ModelCheckpoint(dirpath=os.path.join(run_dir, "checkpoints"), save_last=True),
            EpochSummary(),
            HParamsSession(hp.as_dict(), run_name=f"{TRAINER_NAME}/version_{version}"),
        ],
        enable_model_summary=False,
        num_sanity_val_steps=0,  # in-memory data: nothing for a sanity pass to catch
        log_every_n_steps=1,  # nothing is logged per step; this only silences a warning
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    wall = time.perf_counter() - start
    if trainer.is_global_zero:
        print(final_report(epoch_metrics(trainer), run_dir, args.logdir, wall))
    return 0
