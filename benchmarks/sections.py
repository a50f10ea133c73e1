"""The six measurements of BENCHMARKS.md, each returning plain rows for ``report``.

Everything that trains runs in a fresh subprocess (``benchmarks.worker``) with the
same environment, less ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``: those pin
OpenBLAS to an older kernel here, and the benchmark measures the current one.
Times are medians over repeats, after a dropped warm-up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import useful_flops_per_sample
from benchmarks.progress import PROGRESS, RESULT
from mlp_lightning.core.hparams import HParams

REPO = Path(__file__).resolve().parents[1]
LARGE = dict(n_per_class=62500, dim=512, hidden_dim=2048, batch_size=512, offset=0.3)
DROPPED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Sizes:
    """How much to run: the full benchmark, or the seconds-long smoke version."""

    repeats: int  # timed repeats per measurement (a warm-up is always dropped first)
    seed_hp: dict  # the seed config
    large_hp: dict
    n_per_class_steps: tuple[int, ...]
    hidden_dim_steps: tuple[int, ...]
    hidden_n_per_class: int
    in_process: bool = False  # the smoke version runs the measurements in this process: no start-up cost
    whole_warmup: int = 1  # whole-process runs dropped before the timed ones
    table_rows: int = 1_000_000  # section 6: the rows of the table read as .csv and as .npz

    @classmethod
    def full(cls, repeats: int) -> Sizes:
        return cls(repeats, {}, LARGE, (400, 4_000, 40_000, 400_000), (32, 128, 512, 2048), 4_000)

    @classmethod
    def quick(cls) -> Sizes:
        tiny = dict(n_per_class=64, dim=8, hidden_dim=16, batch_size=32, offset=0.3)
        return cls(
            1, dict(max_epochs=2), tiny, (16, 160), (8, 32), 64, in_process=True, whole_warmup=0,
            table_rows=20_000,
        )  # fmt: skip

    def task(self, task: dict) -> dict:
        """Run one ``benchmarks.worker`` task, in a fresh process unless this is the smoke version."""
        if self.in_process:
            from benchmarks.worker import run

            return run(task)
        return worker(task)


def bench_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}


def worker(task: dict) -> dict:
    """Run one ``benchmarks.worker`` task in a fresh interpreter and return its result.

    Its ``PROGRESS`` lines are echoed as they come, so a long task (the GPU rows take
    minutes) shows where its time goes even when a timeout kills it.
    """
    result = None
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: it cannot fill and stall the worker
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(task)],
            cwd=REPO, env=bench_env(), stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        for line in proc.stdout:
            if line.startswith(PROGRESS):
                print("   ", line[len(PROGRESS) :], end="", flush=True)
            elif line.startswith(RESULT):
                result = line[len(RESULT) :]
        if proc.wait() != 0 or result is None:
            stderr.seek(0)
            raise RuntimeError(f"benchmark task {task} failed:\n{stderr.read()[-3000:]}")
    return json.loads(result)


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=bench_env(), capture_output=True, check=True)
    return time.perf_counter() - start


def whole_process(sizes: Sizes) -> list[dict]:
    """Section 1: wall time of whole commands at the seed config, warm-up run dropped."""
    with tempfile.TemporaryDirectory() as logdir:
        extra = [f"--{k}={v}" for k, v in sizes.seed_hp.items()]
        commands = {
            "python -c 'import lightning.pytorch' (floor)": ["-c", "import lightning.pytorch"],
            "python scripts/baseline_numpy.py": ["scripts/baseline_numpy.py", "--logdir", logdir, *extra],
            "python benchmarks/reference_torch_loop.py": ["benchmarks/reference_torch_loop.py", *extra],
            "python scripts/fit.py --accelerator cpu": [
                "scripts/fit.py", "--accelerator", "cpu", "--logdir", logdir, *extra,
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(sizes.whole_warmup + sizes.repeats):  # interleaved: load drifts hit all alike
            for name, args in commands.items():
                wall = _wall([sys.executable, *args])
                if i >= sizes.whole_warmup:
                    times[name].append(wall)
    return [{"command": name, "wall_s": statistics.median(t)} for name, t in times.items()]


def overhead_seed(sizes: Sizes) -> dict:
    """Section 2 at the seed config: Trainer.fit vs the hand loop, alternated in one process."""
    return sizes.task({"task": "overhead", "hp": sizes.seed_hp, "repeats": sizes.repeats})


def overhead_large(sizes: Sizes) -> dict:
    """Section 2 at the large config: training epochs of both drivers, alternated in one process.

    Timed in one process, pair by pair, so load that comes and goes on a shared machine
    falls on both sides alike (section 3 runs each implementation in its own process).
    """
    hp = {**sizes.large_hp, "max_epochs": 2}  # the first epoch of each run is warm-up
    return sizes.task({"task": "overhead", "hp": hp, "repeats": sizes.repeats, "per_epoch": True})


def epochs(sizes: Sizes, impl: str, hp: dict, repeats: int) -> dict:
    out = sizes.task({"task": "epochs", "impl": impl, "hp": {**hp, "max_epochs": 1 + repeats}})
    out["median_s"] = statistics.median(out["epoch_s"][1:])
    return out


def large(sizes: Sizes, impls: tuple[str, ...]) -> dict:
    """Section 3: training-epoch throughput of each implementation, beside both GEMM rates."""
    hp = HParams(**sizes.large_hp)
    flops = useful_flops_per_sample(hp.dim, hp.hidden_dim, hp.num_classes)
    gemm = {
        lib: sizes.task({"task": "gemm", "lib": lib, "repeats": 5 * sizes.repeats})
        for lib in ("numpy", "torch")
    }
    rows = {}
    for impl in impls:
        if impl == "sklearn" and importlib.util.find_spec("sklearn") is None:
            rows[impl] = None  # the optional `bench` extra is not installed
            continue
        out = epochs(sizes, impl, sizes.large_hp, sizes.repeats)
        out["samples_per_s"] = hp.n_train / out["median_s"]
        out["gflops"] = out["samples_per_s"] * flops / 1e9
        rows[impl] = out
    return {"gemm": {k: v["gflops"] for k, v in gemm.items()}, "rows": rows, "hp": hp.as_dict()}


def memory(sizes: Sizes) -> list[dict]:
    """Section 4: peak RSS of whole one-epoch runs at the large config, each in its own process."""
    hp = HParams(**sizes.large_hp)
    dataset_mb = hp.n_total * hp.dim * 4 / 2**20
    flags = [f"--{k}={v}" for k, v in {**sizes.large_hp, "max_epochs": 1}.items()]
    rows = []
    with tempfile.TemporaryDirectory() as logdir:
        for name, script, extra in (
            ("NumPy twin (scripts/baseline_numpy.py)", "scripts/baseline_numpy.py", []),
            ("Lightning (scripts/fit.py)", "scripts/fit.py", ["--accelerator", "cpu"]),
        ):
            argv = [sys.executable, "-m", "benchmarks.peak_rss", script, *flags, *extra, "--logdir", logdir]
            proc = subprocess.run(argv, cwd=REPO, env=bench_env(), capture_output=True, text=True, check=True)
            kb = int(proc.stdout.strip().splitlines()[-1].split()[1])
            rows.append({"run": name, "peak_rss_mb": kb / 1024, "dataset_mb": dataset_mb})
    return rows


def scaling(sizes: Sizes) -> list[dict]:
    """Section 5: time per training epoch as n_per_class grows x10, and as hidden_dim grows."""
    rows = []
    grid = [("n_per_class", {"n_per_class": n}) for n in sizes.n_per_class_steps]
    grid += [
        ("hidden_dim", {"n_per_class": sizes.hidden_n_per_class, "hidden_dim": h})
        for h in sizes.hidden_dim_steps
    ]
    for axis, cfg in grid:
        hp = HParams(**{**sizes.seed_hp, **cfg})
        for impl in ("twin", "lightning"):
            median = epochs(sizes, impl, hp.as_dict(), 1)["median_s"]  # one warm-up epoch, one timed
            rows.append({"axis": axis, "value": getattr(hp, axis), "impl": impl, "n_train": hp.n_train,
                         "epoch_s": median, "us_per_sample": median / hp.n_train * 1e6})  # fmt: skip
    return rows


def data_files(sizes: Sizes) -> dict:
    """Section 6: one epoch of the twin on a table as a .csv against the same points as an .npz.

    Whole processes (reading the file is part of the run), alternated .npz, .csv, .npz, .csv so
    that load drifts hit both alike; wall time and peak RSS, medians of the repeats after a warm-up
    round. The points are float32 normals, 20 features and 2 classes, the CSV written as
    ``np.savetxt`` writes float32 values (``%.8g``).
    """
    n, dim = sizes.table_rows, 20
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, dim), dtype=np.float32)  # (n, 20)
    y = (X[:, 0] > 0).astype(np.int64)
    rows: dict[str, dict[str, list[float]]] = {
        "npz": {"wall_s": [], "peak_mb": []},
        "csv": {"wall_s": [], "peak_mb": []},
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = {"npz": Path(tmp) / "table.npz", "csv": Path(tmp) / "table.csv"}
        np.savez(files["npz"], X=X, y=y)
        header = ",".join([*(f"x{j + 1}" for j in range(dim)), "label"])
        np.savetxt(files["csv"], np.column_stack([X, y]), fmt=["%.8g"] * dim + ["%d"], delimiter=",",
                   header=header, comments="")  # fmt: skip
        for i in range(1 + sizes.repeats):  # the first round warms the page cache: dropped
            for kind, path in files.items():
                argv = [sys.executable, "-m", "benchmarks.peak_rss", "scripts/baseline_numpy.py",
                        "--data", str(path), "--max_epochs", "1", "--batch_size", "4096",
                        "--logdir", str(Path(tmp) / "logs")]  # fmt: skip
                start = time.perf_counter()
                proc = subprocess.run(
                    argv, cwd=REPO, env=bench_env(), capture_output=True, text=True, check=True
                )
                wall = time.perf_counter() - start
                if i:
                    rows[kind]["wall_s"].append(wall)
                    rows[kind]["peak_mb"].append(int(proc.stdout.strip().splitlines()[-1].split()[1]) / 1024)
        csv_mb = files["csv"].stat().st_size / 2**20
    medians = {kind: {k: statistics.median(v) for k, v in r.items()} for kind, r in rows.items()}
    return {"rows": n, "dim": dim, "csv_mb": csv_mb, "data_mb": X.nbytes / 2**20, "runs": rows, **medians}
