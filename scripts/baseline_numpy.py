"""Train the same MLP in pure NumPy (the twin): ``python scripts/baseline_numpy.py --help``."""

import sys

from mlp_lightning.cli import parse_numpy_args


def main(argv: list[str] | None = None) -> int:
    args = parse_numpy_args(argv)  # validates everything before anything is written
    from mlp_lightning.numpy_twin.train import fit

    return fit(args)


if __name__ == "__main__":
    sys.exit(main())
