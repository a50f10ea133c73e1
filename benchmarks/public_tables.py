"""Three classic public tables at their plain command, both trainers beside scikit-learn: a printed table.

    python benchmarks/public_tables.py            # seed 42; needs scikit-learn (pip install -e .[bench])
    python benchmarks/public_tables.py --seed 0 1 2

Each table is scikit-learn's bundled copy (no download), written as the CSV a user brings:
iris with its class names last; wine with its class (1, 2, 3) first; breast cancer as the common
download has it, an id first and the diagnosis (B/M) second. Both trainers run the plain command
with only the flags that layout needs (``--target``, ``--drop``); scikit-learn's same-size SGD
MLP (32 hidden, lr 0.1, 30 epochs, batch 64, alpha 1e-4, momentum 0.9 and 0) trains on the run's
own split, scaled as the run scales it. docs/data.md quotes the output.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/public_tables.py` from the repo root

TABLES = ("iris", "wine", "breast_cancer")


def public_table(folder: Path, name: str) -> tuple[Path, list[str]]:
    """Write scikit-learn's copy of ``name`` as its usual CSV layout; the path and the flags it needs."""
    from sklearn import datasets

    table = getattr(datasets, f"load_{name}")()
    X, y = table.data, table.target
    features = [str(f).replace(" ", "_") for f in table.feature_names]
    path = Path(folder) / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        values = [[repr(float(v)) for v in x] for x in X]
        if name == "iris":
            writer.writerow([*features, "species"])
            writer.writerows([*v, table.target_names[c]] for v, c in zip(values, y, strict=True))
            return path, []
        if name == "wine":
            writer.writerow(["class", *features])
            writer.writerows([c + 1, *v] for v, c in zip(values, y, strict=True))
            return path, ["--target", "class"]
        writer.writerow(["id", "diagnosis", *features])  # scikit-learn's class 0 is malignant
        writer.writerows([842302 + i, "MB"[c], *v] for i, (v, c) in enumerate(zip(values, y, strict=True)))
        return path, ["--target", "diagnosis", "--drop", "id"]


def scikit_learn_accuracy(hp, momentum: float) -> float:
    """scikit-learn's same-size SGD MLP on the run's own split, scaled as the run scales it."""
    from sklearn.neural_network import MLPClassifier

    from mlp_lightning.core.data import load_splits

    Xtr, ytr, Xva, yva = load_splits(hp)  # standardized by the training split, as a StandardScaler would
    reference = MLPClassifier(
        hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.1, max_iter=30, batch_size=64,
        momentum=momentum, alpha=1e-4, random_state=hp.seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 iterations: its ConvergenceWarning is expected
        return float(reference.fit(Xtr, ytr).score(Xva, yva))


def final_val_acc(script: str, argv: list[str], logdir: Path) -> float:
    from mlp_lightning.analysis.logged_run import load_run, newest_run

    trainer = "numpy" if script == "baseline_numpy.py" else "lightning"
    subprocess.run([sys.executable, f"scripts/{script}", *argv, "--logdir", str(logdir)], cwd=REPO,
                   check=True, capture_output=True)  # fmt: skip
    return float(load_run(newest_run(logdir, trainer)).scalars["val/acc"][-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, nargs="+", default=[42], help="seeds to run (default: 42)")
    args = parser.parse_args(argv)
    from mlp_lightning.cli import parse_numpy_args

    print(
        "| table | flags | seed | twin | Lightning | scikit-learn, momentum 0.9 | scikit-learn, momentum 0 |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in TABLES:
            path, flags = public_table(Path(tmp), name)
            for seed in args.seed:
                run = ["--data", str(path), *flags, "--seed", str(seed)]
                hp = parse_numpy_args([*run, "--logdir", tmp]).hp
                twin = final_val_acc("baseline_numpy.py", run, Path(tmp) / "logs")
                lightning = final_val_acc("fit.py", run, Path(tmp) / "logs")
                sk = [scikit_learn_accuracy(hp, m) for m in (0.9, 0.0)]
                cells = [
                    name,
                    f"`{' '.join(flags) or '(none)'}`",
                    seed,
                    *(f"{v:.3f}" for v in (twin, lightning, *sk)),
                ]
                print("| " + " | ".join(map(str, cells)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
