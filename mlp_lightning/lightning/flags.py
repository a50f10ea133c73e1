"""The Lightning flags' allowed values, checked without importing torch, and what a resume trains with."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from mlp_lightning.core.errors import ConfigError, ResumeError
from mlp_lightning.core.quoted import quoted, quoted_text
from mlp_lightning.runs.args import TrainerFlags

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "single_device", "fsdp")
PRECISIONS = (
    "64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
)  # fmt: skip
# the short names, as Lightning reads them: runs store and compare the full name
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def validate_trainer(flags: TrainerFlags) -> TrainerFlags:
    """Raise ConfigError naming the first Lightning flag whose value is not allowed."""
    _choice("accelerator", flags.accelerator, ACCELERATORS)
    _choice("strategy", flags.strategy, STRATEGIES)
    _choice("precision", str(flags.precision), PRECISIONS)
    devices = flags.devices
    if isinstance(devices, str) and re.fullmatch(r"-?\d{1,9}", devices.strip()):  # int() of 5000 digits fails
        devices = int(devices)
    if not (devices == "auto" or (isinstance(devices, int) and (devices >= 1 or devices == -1))):
        raise ConfigError(f"--devices must be 'auto', an integer >= 1 or -1, got {quoted(flags.devices)}")
    if flags.num_nodes < 1:
        raise ConfigError(f"--num_nodes must be an integer >= 1, got {quoted(flags.num_nodes)}")
    if flags.accelerator in ("gpu", "cuda") and not nvidia_gpu_present():
        raise ConfigError(
            f"--accelerator {flags.accelerator} needs an NVIDIA GPU and this machine has none "
            "(allowed here: cpu, auto)"
        )
    if flags.accelerator == "mps" and sys.platform != "darwin":
        raise ConfigError("--accelerator mps needs Apple silicon (allowed here: cpu, auto)")
    _check_device_combination(flags)
    precision = PRECISION_ALIASES.get(str(flags.precision), str(flags.precision))
    return dataclasses.replace(flags, devices=devices, precision=precision)


def _check_device_combination(flags: TrainerFlags) -> None:
    """Refuse what Lightning would swap for something else, or reject only after start-up."""
    on_cpu = flags.accelerator == "cpu" or (
        flags.accelerator == "auto" and not nvidia_gpu_present() and sys.platform != "darwin"
    )
    precision = str(flags.precision)
    if on_cpu and precision in ("16-mixed", "16"):
        # Lightning would warn and train in bf16-mixed instead
        raise ConfigError(
            f"--precision {precision} (float16 autocast) needs a CUDA GPU; on the CPU use bf16-mixed, "
            "32-true or 64-true"
        )
    if flags.accelerator == "mps" and precision in ("64-true", "64"):
        raise ConfigError(f"--precision {precision} needs float64, which mps lacks; use 32-true, bf16-mixed")
    if on_cpu and flags.strategy == "fsdp":
        raise ConfigError("--strategy fsdp needs a CUDA GPU; on the CPU use ddp, ddp_spawn or ddp_fork")


def resumed_trainer_flags(
    saved: Mapping[str, Any] | None, requested: TrainerFlags, given: frozenset[str]
) -> TrainerFlags:
    """The Lightning flags a resumed run trains with: its own, except those given again.

    A bare ``--resume`` continues on the accelerator and in the precision the run
    started with: on a machine with a GPU, ``--accelerator auto`` would otherwise move
    a CPU run onto it (and a ``64-true`` run would continue in ``32-true``), and its
    numbers would no longer be the uninterrupted run's. A flag given beside
    ``--resume`` still wins, to move a run to other hardware on purpose. A checkpoint
    from before the flags were stored (``saved`` is None) keeps the command line's.
    """
    names = [f.name for f in dataclasses.fields(TrainerFlags)]
    kept = {name: saved[name] for name in names if saved and name in saved and name not in given}
    flags = dataclasses.replace(requested, **kept)
    try:
        return validate_trainer(flags)
    except ConfigError as err:
        from_run = ", ".join(f"--{name} {quoted_text(str(value))}" for name, value in kept.items())
        raise ResumeError(
            f"--resume: {err}; the run was started with {from_run}: give the flag beside --resume "
            "to continue it with another value"
        ) from None


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA driver shows a device, without importing torch (which takes seconds)."""
    return (
        os.path.exists("/proc/driver/nvidia/version")
        or bool(glob.glob("/dev/nvidia[0-9]*"))
        or shutil.which("nvidia-smi") is not None  # containers may hide /proc/driver and /dev
    )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{name} must be one of {', '.join(allowed)}; got {quoted(value)}")
