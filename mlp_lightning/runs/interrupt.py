"""Ctrl-C, SIGTERM and SIGUSR1 as a request to stop at the next batch boundary, not an exception.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread
happens to be, which can be halfway through an optimizer step; Lightning 2.6 then
saves a checkpoint that, resumed, skips a batch. Here the handler only records the
signal. The training loop looks at the record between batches, saves a checkpoint
and stops; the script then exits with the shell's code for the signal. A second
signal means "now": the previous handler runs (Ctrl-C twice raises KeyboardInterrupt).
SIGUSR1 is what SLURM sends ahead of a job's end when asked (``#SBATCH --signal=SIGUSR1@90``):
the same stop, after which the job asks to be requeued (``runs/slurm.py``).
No torch here, so the NumPy twin uses the same handlers.
"""

from __future__ import annotations

import signal
from types import FrameType

# the shell's convention: 128 + signal number
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR1: 138}


class StopRequest:
    """Records SIGINT/SIGTERM/SIGUSR1 while installed; ``signum`` is the first one received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 1)

    def install(self) -> StopRequest:
        """Take over SIGINT, SIGTERM and SIGUSR1 (again, if something else replaced the handlers since)."""
        for signum in EXIT_CODES:
            current = signal.getsignal(signum)
            if current != self._handle:
                self._previous.setdefault(signum, current)
                signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def request(self, signum: int) -> None:
        """What a signal does; tests call it to interrupt at an exact step."""
        if self.signum is None:
            self.signum = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._second_signal(signum, frame)
        self.request(signum)

    def _second_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.restore()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signum)

    def __enter__(self) -> StopRequest:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
