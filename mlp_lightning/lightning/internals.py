"""The places the project reads Lightning state that Lightning does not document as public, in one file.

Each is pinned by tests/test_lightning_contract.py against the installed Lightning (2.6), so an
upgrade that changes one fails there first rather than quietly in a user's run. The third reach,
the loader's ``sampler`` attribute through which Lightning sets each epoch
(``lightning.fabric.utilities.data._set_sampler_epoch``), is an attribute of ``TensorBatches``.
"""

from __future__ import annotations

import subprocess

import lightning as L


def batches_done_in_resumed_epoch(trainer: L.Trainer) -> int:
    """Batches of the current epoch a resumed run had trained before its checkpoint (0 for a fresh epoch).

    Lightning calls no ``on_train_epoch_start`` in an epoch resumed part-way: the progress bar
    starts its count from here.
    """
    loop = trainer.fit_loop
    part_done = loop.restarted_mid_epoch or loop.restarted_on_epoch_end
    return loop.epoch_loop.batch_progress.current.processed if part_done else 0


def launched_processes(trainer: L.Trainer) -> list[subprocess.Popen]:
    """The other processes of a run that Lightning's own launcher started from this one (rank 0's).

    [] in those processes, for one process, and under an outside launcher (torchrun, srun).
    """
    launcher = trainer.strategy.launcher
    if launcher is None or trainer.world_size == 1:
        return []
    return list(launcher.procs) if hasattr(launcher, "procs") else []
