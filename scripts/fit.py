"""Train the two-layer MLP with PyTorch Lightning: ``python scripts/fit.py --help``."""

import sys

from mlp_lightning.cli import parse_fit_args


def main(argv: list[str] | None = None) -> int:
    args = parse_fit_args(argv)  # validates everything before torch is imported
    from mlp_lightning.lightning.train import fit

    return fit(args)


if __name__ == "__main__":
    sys.exit(main())
