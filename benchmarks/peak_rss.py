"""Run a script and report its peak resident memory: ``python -m benchmarks.peak_rss SCRIPT ARGS...``.

The script runs in this process (``runpy``), so ``ru_maxrss`` at exit is its peak;
the last line on stdout is ``PEAK_RSS_KB <n>``.
"""

from __future__ import annotations

import resource
import runpy
import sys

if __name__ == "__main__":
    script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    print(f"PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)
    sys.exit(code)
