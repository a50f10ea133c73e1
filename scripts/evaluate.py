"""Evaluate a saved model: ``python scripts/evaluate.py --help``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import get_type_hints

from mlp_lightning.analysis.evaluate import DATA_FLAGS
from mlp_lightning.cli import OneLineArgumentParser
from mlp_lightning.core.hparams import HParams

PROG = "evaluate.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Loss and accuracy of a saved model (Lightning with Lightning, the twin's with NumPy "
        "alone) on its run's own validation split, a --data file, or a generated set's validation split.",
    )
    add = parser.add_argument
    add("target", help="a run directory (either trainer's), a Lightning .ckpt or a twin weights .npz")
    add(
        "--data",
        default=None,
        help="evaluate on every point of this .npz (X, y) or .csv (header, label last)",
    )
    add(
        "--target",
        dest="class_column",
        default=None,
        help="the class column of a --data .csv (default: the run's)",
    )
    add("--drop", nargs="*", default=None, metavar="NAME", help="columns of a --data .csv to leave out "
        "(default: the run's)")  # fmt: skip
    add("--predictions", type=Path, default=None, help="write one CSV row per point: label, predicted, p0..")
    types = {**get_type_hints(HParams), "noise": float}
    fields = {f.name: f for f in dataclasses.fields(HParams)}
    for name in DATA_FLAGS:
        add(
            f"--{name}",
            type=types[name],
            default=None,
            help=f"{fields[name].metadata['help']} (default: the run's)",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlp_lightning.analysis.evaluate import evaluate_model, evaluation_points, locate, write_predictions
    from mlp_lightning.core.errors import ConfigError, WriteFailed, fail, fail_write
    from mlp_lightning.core.report import val_line

    given = {name: getattr(args, name) for name in DATA_FLAGS if getattr(args, name) is not None}
    try:
        model = locate(args.target)
        columns = {"target": args.class_column, "drop": args.drop}  # args.target is the model
        columns = {k: v for k, v in columns.items() if v is not None}
        X, y, what = evaluation_points(model, args.data, given, columns)
        result = evaluate_model(model, X, y, what)
    except ConfigError as err:
        fail(PROG, str(err))
    print(f"{model.weights_file} ({model.backend}) on {result.what}")
    print(val_line(result.loss, result.acc))
    if args.predictions is not None:
        try:
            print(f"predictions: {write_predictions(result, args.predictions)}")
        except WriteFailed as err:
            return fail_write(PROG, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
