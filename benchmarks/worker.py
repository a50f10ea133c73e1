"""One measurement in a fresh process: ``python -m benchmarks.worker '<json>'`` prints ``RESULT <json>``.

Lines starting ``PROGRESS`` before it say how far a long task has got.

The JSON names a ``task`` and its arguments; ``hp`` is a dict of ``HParams`` fields.
Keeping every measurement in its own process keeps thread pools, allocators and
imports of one implementation from slowing the next.
"""

from __future__ import annotations

import json
import sys

from benchmarks.progress import RESULT
from mlp_lightning.core.hparams import HParams


def run(task: dict) -> dict:
    kind = task["task"]
    hp = HParams(**task.get("hp", {}))
    if kind == "epochs":
        from benchmarks.epochs import IMPLEMENTATIONS

        impl = IMPLEMENTATIONS[task["impl"]]
        kwargs = {"device": task["device"]} if "device" in task else {}
        out = impl(hp, **kwargs)
        times, losses = out if isinstance(out, tuple) else (out, [])
        return {"epoch_s": times, "train_loss": losses}
    if kind == "gemm":
        from benchmarks import machine

        fn = machine.numpy_gemm_gflops if task["lib"] == "numpy" else machine.torch_gemm_gflops
        return {"gflops": fn(task["repeats"])}
    if kind == "overhead":
        from benchmarks.overhead import compare

        return compare(hp, task["repeats"], task.get("device", "cpu"), task.get("per_epoch", False))
    if kind == "machine":
        from benchmarks.machine import describe

        return describe()
    if kind == "gpu":
        from benchmarks.gpu import measure

        return measure(task)
    raise ValueError(f"unknown task {kind!r}")


if __name__ == "__main__":
    result = run(json.loads(sys.argv[1]))
    print(RESULT + json.dumps(result))
