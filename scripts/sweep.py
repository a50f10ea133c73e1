"""Train every combination of fit.py flag values with both trainers, then report: ``sweep.py --help``."""

import sys
from pathlib import Path

from mlp_lightning.cli import parse_sweep_args


def main(argv: list[str] | None = None) -> int:
    args = parse_sweep_args(argv)  # every combination validated before anything runs or is written
    from mlp_lightning.analysis.sweep import print_commands, run_sweep, summarize

    scripts = Path(__file__).resolve().parent
    if args.print_commands:
        return print_commands(args, scripts)
    from mlp_lightning.core.errors import WriteFailed, fail_write

    try:
        return summarize(args) if args.summarize else run_sweep(args, scripts)
    except WriteFailed as err:  # the figure; each run reports its own files
        return fail_write("sweep.py", err)
    except KeyboardInterrupt:  # outside the pool (which stops its runs itself): reading runs, the report
        print(
            "sweep.py: stopped by SIGINT; the same command goes on where the sweep stopped", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
