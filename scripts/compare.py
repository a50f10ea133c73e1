"""Compare two runs (by default the newest NumPy and Lightning runs): ``python scripts/compare.py --help``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlp_lightning.cli import OneLineArgumentParser

PROG = "compare.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split(":")[0] + ".")
    add = parser.add_argument
    add("runs", nargs="*", type=Path, help="two run directories (default: the newest "
        "<logdir>/numpy/version_N and <logdir>/lightning/version_N)")  # fmt: skip
    add("--logdir", type=Path, default=Path("logs"), help="where the default runs are found")
    add("--out", type=Path, default=None, help="directory for the PNG (default: the newer run's)")
    add("--force", action="store_true", help="compare even if the hyperparameters differ")
    add("--check", action="store_true", help="exit 1 unless the pair holds to what is guaranteed for it "
        "(exact at --dropout 0; with dropout on, final val/acc within one validation point)")  # fmt: skip
    args = parser.parse_args(argv)
    if len(args.runs) not in (0, 2):
        parser.error(
            f"give two run directories, or none for the newest numpy and lightning runs; got {len(args.runs)}"
        )
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a directory, got the file {str(args.out)!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlp_lightning.analysis.compare import compare_runs
    from mlp_lightning.core.errors import ConfigError, WriteFailed, error_line, fail_write

    try:
        return compare_runs(*args.runs, logdir=args.logdir, out=args.out, force=args.force, check=args.check)
    except ConfigError as err:  # a run that cannot be read or compared, or is in use
        print(error_line(PROG, err), file=sys.stderr)
        return 2
    except WriteFailed as err:
        return fail_write(PROG, err)


if __name__ == "__main__":
    sys.exit(main())
