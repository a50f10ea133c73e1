"""How a worker process talks to the benchmark: ``PROGRESS`` lines as it goes, one ``RESULT`` line at the end.

Its own module so that the measurements (``overhead``, ``gpu``) can report progress without
importing ``worker``, which imports them: the benchmarks' imports go one way.
"""

from __future__ import annotations

import time

RESULT, PROGRESS = "RESULT ", "PROGRESS "


def progress(message: str) -> None:
    """One line the parent echoes at once (``benchmarks.sections.worker``)."""
    print(f"{PROGRESS}[{time.strftime('%H:%M:%S')}] {message}", flush=True)
