"""fit.py, plus a SIGTERM that global rank 0 sends itself during optimizer step $STOP_AT_STEP (1-based).

A real signal at an exact point of a multi-process run: Lightning's ``ddp`` relaunches
this script for the other ranks, which inherit the variable but do not send.
"""

from __future__ import annotations

import os
import signal
import sys

import lightning as L

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.lightning.train import fit


class SignalRankZeroAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.is_global_zero and trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), signal.SIGTERM)  # mid-batch: the step must still complete


if __name__ == "__main__":
    sys.exit(fit(parse_fit_args(sys.argv[1:]), callbacks=[SignalRankZeroAt(int(os.environ["STOP_AT_STEP"]))]))
