"""fit.py, plus a SIGKILL that global rank 1 sends itself during optimizer step $KILL_AT_STEP (1-based).

A rank that dies without a word (the out-of-memory killer, a lost node): Lightning's ``ddp``
relaunches this script for rank 1, which inherits the variable; rank 0 does not send.
"""

from __future__ import annotations

import os
import signal
import sys

import lightning as L

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.lightning.train import fit


class KillRankOneAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_rank == 1 and trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(fit(parse_fit_args(sys.argv[1:]), callbacks=[KillRankOneAt(int(os.environ["KILL_AT_STEP"]))]))
