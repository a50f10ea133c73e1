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
        help="evaluate on every row of this .npz (X, y) or .csv, read by the run's column names (the "
        "class column may be absent: then predictions only)",
    )
    add(
        "--predictions",
        type=Path,
        default=None,
        help="write one CSV row per point: label, predicted class, p_<class> for each class",
    )
    add(
        "--keep",
        nargs="*",
        default=None,
        metavar="COLUMN",
        help="columns of the --data .csv copied into --predictions first, as written (default: the "
        "columns the run left out with --drop, such as an id; --keep alone: none)",
    )
    add(
        "--target",
        dest="class_column",
        default=None,
        help="the class column of a --data .csv, by name (default: the run's; absent: predictions only)",
    )
    types = {**get_type_hints(HParams), "noise": float}
    fields = {f.name: f for f in dataclasses.fields(HParams)}
    for name in DATA_FLAGS:
        add(
            f"--{name}",
            type=types[name],
            default=None,
            help=f"{fields[name].metadata['help']} (default: the run's)",
        )
    args = parser.parse_args(argv)
    if args.keep is not None and (args.predictions is None or args.data is None):
        parser.error("--keep copies columns of a --data .csv into --predictions: give both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlp_lightning.analysis.evaluate import evaluate_model, evaluation_points, locate
    from mlp_lightning.analysis.predictions import carried_columns, write_predictions
    from mlp_lightning.core.errors import ConfigError, WriteFailed, fail, fail_write
    from mlp_lightning.core.report import scores_line, val_line

    given = {name: getattr(args, name) for name in DATA_FLAGS if getattr(args, name) is not None}
    try:
        model = locate(args.target)
        points = evaluation_points(model, args.data, given, args.class_column)
        result = evaluate_model(model, points)
        carried = ()
        if args.predictions is not None and args.data is not None:
            keep = None if args.keep is None else tuple(args.keep)
            carried = carried_columns(args.data, keep, model.hp, len(result.probs))
    except ConfigError as err:
        fail(PROG, str(err))
    print(f"{model.weights_file} ({model.backend}) on {result.what}")
    if result.loss is None:
        print("no labels to score: the file has no class column" + ("" if args.predictions else
              "; give --predictions OUT.csv to write what the model predicts"))  # fmt: skip
    else:  # a validation split is scored as the trainers log it; a file's rows are not that split
        print((val_line if points.validation else scores_line)(result.loss, result.acc))
    if args.predictions is not None:
        try:
            written = write_predictions(result.probs, result.y, result.class_names, args.predictions, carried)
            with_ids = f" (first {', '.join(name for name, _ in carried)}, from the file)" if carried else ""
            print(f"predictions: {written}{with_ids}")
        except WriteFailed as err:
            return fail_write(PROG, err)
        except ConfigError as err:
            fail(PROG, str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
