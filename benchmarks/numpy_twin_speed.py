"""How fast the NumPy twin trains, against numpy's own float32 GEMM on this machine.

    python benchmarks/numpy_twin_speed.py [--epochs 3]

Prints numpy's 2048^3 float32 GEMM rate and the twin's useful training FLOP/s at the
large config (useful FLOPs per training sample: 4*D*H + 6*H*C, the two big and four
small matmuls of one step), the GEMM sampled between steps so both see the same load,
and the peak RSS of loading the data and of training. Not a test: timings vary.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mlp_lightning.core.data import BatchOrder, load_splits
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import init_weights
from mlp_lightning.numpy_twin.step import Workspace, train_step

LARGE = HParams(n_per_class=62500, dim=512, hidden_dim=2048, batch_size=512, offset=0.3, max_epochs=1)


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets VmHWM
        f.write("5")


class Gemm:
    """numpy's float32 n^3 matmul, timed one call at a time."""

    def __init__(self, n: int = 2048) -> None:
        self.n = n
        self.a = np.random.default_rng(0).random((n, n), dtype=np.float32)
        self.b, self.c = self.a.copy(), np.empty_like(self.a)

    def gflops(self) -> float:
        start = time.perf_counter()
        np.matmul(self.a, self.b, out=self.c)
        return 2 * self.n**3 / (time.perf_counter() - start) / 1e9


def epoch(hp: HParams, Xtr: np.ndarray, ytr: np.ndarray, gemm: Gemm, every: int) -> tuple[float, list[float]]:
    """One training epoch as the twin's loop runs it: useful GFLOP/s of its steps, and GEMM
    rates sampled every ``every`` steps in between (untimed by the epoch), so that both
    see the same machine load."""
    params = init_weights(hp.dim, hp.hidden_dim, hp.num_classes, hp.seed)
    order = BatchOrder(len(Xtr), hp.batch_size, hp.seed)
    ws = Workspace.allocate(hp.batch_size, params)
    seconds, gemm_rates = 0.0, []
    for i, idx in enumerate(order):
        if i % every == 0:
            gemm_rates.append(gemm.gflops())
        start = time.perf_counter()
        B = len(idx)
        xb = np.take(Xtr, idx, axis=0, out=ws.xb[:B])
        yb = np.take(ytr, idx, out=ws.yb[:B])
        train_step(params, xb, yb, hp, ws, order.epoch, idx)
        seconds += time.perf_counter() - start
    useful = len(Xtr) * (4 * hp.dim * hp.hidden_dim + 6 * hp.hidden_dim * hp.num_classes)
    return useful / seconds / 1e9, gemm_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--every", type=int, default=5, help="time one GEMM every this many steps")
    args = parser.parse_args()
    hp = LARGE
    start = time.perf_counter()
    Xtr, ytr, Xva, _ = load_splits(hp)
    dataset_mb = (len(Xtr) + len(Xva)) * hp.dim * 4 / 2**20
    print(f"data: {time.perf_counter() - start:.1f} s, float32 dataset {dataset_mb:.0f} MiB, "
          f"peak RSS after loading {peak_rss_mb():.0f} MiB")  # fmt: skip
    reset_peak_rss()
    gemm = Gemm()
    gemm.gflops()  # warm-up: BLAS threads, page faults
    env = {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")}
    print(f"{env} cpus available: {len(os.sched_getaffinity(0))}")
    for e in range(args.epochs):
        twin, rates = epoch(hp, Xtr, ytr, gemm, args.every)
        ref = float(np.median(rates))
        print(f"epoch {e}: twin {twin:.1f} useful GFLOP/s; GEMM 2048^3 median {ref:.1f} "
              f"(min {min(rates):.1f}, max {max(rates):.1f}) GFLOP/s over {len(rates)} samples; "
              f"ratio {twin / ref:.2f}")  # fmt: skip
    print(f"peak RSS while training {peak_rss_mb():.0f} MiB (dataset included)")


if __name__ == "__main__":
    main()
