"""Drive the twin and the Lightning module one optimizer step at a time; report where they part.

``python scripts/parity_steps.py --help``. Takes the trainers' hyperparameter flags (at any
``--dropout`` both sides apply the same masks) and exits 1 if the parameters differ by more
than ``--tolerance`` after some step.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import NoReturn, get_type_hints

from mlp_lightning.cli import OneLineArgumentParser, with_data_file
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.errors import fail as cli_fail
from mlp_lightning.core.hparams import SET_DEFAULTS, HParams, flag_names, validate

PROG = "parity_steps.py"


def fail(message: str) -> NoReturn:
    cli_fail(PROG, message)


def parse_args(argv: list[str] | None) -> tuple[HParams, argparse.Namespace]:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    # a given --noise, --lr or --max_epochs is a number; absent (None), the set's own
    own = {name: type(value) for name, value in SET_DEFAULTS["blobs"].items()}
    types = {**get_type_hints(HParams), **own}
    for f in dataclasses.fields(HParams):
        if f.name not in flag_names():
            continue
        default, help_text = f.default, f.metadata["help"]
        parser.add_argument(f"--{f.name}", type=types[f.name], default=default, help=help_text)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: all max_epochs)")
    parser.add_argument("--every", type=int, default=10, help="print every N-th step (and any divergence)")
    parser.add_argument("--float64", action="store_true", help="run both sides in double precision")
    parser.add_argument("--tolerance", type=float, default=None, help="default 1e-6, or 1e-12 with --float64")
    ns = parser.parse_args(argv)
    for name in ("steps", "every"):
        if getattr(ns, name) is not None and getattr(ns, name) < 1:
            fail(f"--{name} must be a positive integer, got {getattr(ns, name)}")
    if ns.tolerance is not None and not ns.tolerance > 0:
        fail(f"--tolerance must be a number > 0, got {ns.tolerance}")
    try:
        given = frozenset(a[2:].split("=", 1)[0] for a in (argv or sys.argv[1:]) if a.startswith("--"))
        hp = validate(with_data_file(HParams(**{name: getattr(ns, name) for name in flag_names()}), given))
    except ConfigError as err:
        fail(str(err))
    return hp, ns


def main(argv: list[str] | None = None) -> int:
    hp, ns = parse_args(argv)
    import numpy as np

    from mlp_lightning.analysis.compare import WEIGHT_TOLERANCE
    from mlp_lightning.analysis.parity import step_parity
    from mlp_lightning.core.data import BatchOrder

    tolerance = ns.tolerance if ns.tolerance is not None else (1e-12 if ns.float64 else WEIGHT_TOLERANCE)
    dtype = np.float64 if ns.float64 else np.float32
    report = step_parity(hp, ns.steps, dtype, tolerance, stop_at_divergence=True)
    per_epoch = len(BatchOrder(hp.n_train, hp.batch_size, hp.seed))
    print(f"{'step':>6} {'epoch':>5} {'batch':>5} {'max|dparam|':>12} {'param':>5} {'|dloss|':>10}")
    for s in range(report.steps):
        if (s + 1) % ns.every == 0 or s == 0 or s + 1 == report.first_divergence:
            epoch, batch = divmod(s, per_epoch)
            print(
                f"{s + 1:>6} {epoch + 1:>5} {batch + 1:>5} {report.max_param_diff[s]:>12.3e} "
                f"{report.worst_param[s]:>5} {report.loss_diff[s]:>10.3e}"
            )
    print(report.summary())
    return 1 if report.first_divergence is not None else 0


if __name__ == "__main__":
    sys.exit(main())
