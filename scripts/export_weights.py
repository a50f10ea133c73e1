"""Move weights between the trainers: ``python scripts/export_weights.py SRC DST``.

SRC ``.ckpt`` (or a Lightning run directory: its ``checkpoints/last.ckpt``) and DST
``.npz`` export a Lightning checkpoint to the NumPy twin's format; SRC ``.npz`` and
DST ``.ckpt`` write a checkpoint that ``MLPClassifier.load_from_checkpoint`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlp_lightning.cli import OneLineArgumentParser
from mlp_lightning.runs.layout import CHECKPOINT_DIR, LIGHTNING_CHECKPOINT

PROG = "export_weights.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split(":")[0] + ".")
    parser.add_argument("src", type=Path, help="a .ckpt, a Lightning run directory, or a .npz")
    parser.add_argument("dst", type=Path, help=".npz for a checkpoint source, .ckpt for a .npz source")
    args = parser.parse_args(argv)
    if args.src.is_dir():
        args.src = args.src / CHECKPOINT_DIR / LIGHTNING_CHECKPOINT
    pair = (args.src.suffix, args.dst.suffix)
    if pair not in ((".ckpt", ".npz"), (".npz", ".ckpt")):
        parser.error(
            f"SRC and DST must be .ckpt -> .npz or .npz -> .ckpt, got {pair[0] or '?'} -> {pair[1] or '?'}"
        )
    if not args.src.is_file():
        parser.error(f"SRC {str(args.src)!r} is not a file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlp_lightning.analysis.export import checkpoint_to_npz, load_model_npz, save_checkpoint
    from mlp_lightning.core.errors import ConfigError, WriteFailed, error_line, fail_write
    from mlp_lightning.runs.lock import hold_run_of

    try:
        with hold_run_of(args.dst):  # refused while a trainer holds the run DST lies in
            if args.src.suffix == ".ckpt":
                checkpoint_to_npz(args.src, args.dst)
            else:
                weights, columns = load_model_npz(args.src)
                save_checkpoint(weights, args.dst, columns)
    except ConfigError as err:  # unusable weights (WeightsError), or a run in use
        print(error_line(PROG, err), file=sys.stderr)
        return 2
    except WriteFailed as err:
        return fail_write(PROG, err)
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
