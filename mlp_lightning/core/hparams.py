"""The hyperparameters both trainers share: names, types, defaults and what is allowed.

This is the single source for them. The command line builds its flags from
``HParams``, both trainers read it, and both log ``HParams.as_dict()`` to the
HPARAMS tab, so a NumPy run and a Lightning run of one config carry the same keys.
Defaults are those of the reference notebook's PyTorch half.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mlp_lightning.core.errors import ConfigError


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class HParams:
    """Everything that decides a run's numbers, for either trainer."""

    n_per_class: int = field(default=400, metadata=_help("points per class"))
    dim: int = field(default=2, metadata=_help("input features"))
    offset: float = field(default=2.0, metadata=_help("class centers sit at +-offset per feature"))
    num_classes: int = field(default=2, metadata=_help("number of blobs (classes)"))
    val_fraction: float = field(default=0.2, metadata=_help("share of the points held out for validation"))
    batch_size: int = field(default=64, metadata=_help("training batch size (per device)"))
    hidden_dim: int = field(default=32, metadata=_help("hidden units"))
    dropout: float = field(default=0.5, metadata=_help("dropout probability after the ReLU, in [0, 1)"))
    lr: float = field(default=0.1, metadata=_help("SGD learning rate"))
    weight_decay: float = field(default=1e-4, metadata=_help("L2 penalty on W1 and W2 (not the biases)"))
    max_epochs: int = field(default=30, metadata=_help("training epochs"))
    seed: int = field(default=42, metadata=_help("one seed for data, weights, batch order and dropout"))

    def as_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)

    @property
    def n_total(self) -> int:
        return self.n_per_class * self.num_classes

    @property
    def n_train(self) -> int:
        """Points in the training split: the first ``n_train`` of the shuffled data."""
        return train_size(self.n_total, self.val_fraction)

    @property
    def n_val(self) -> int:
        return self.n_total - self.n_train


def train_size(n_total: int, val_fraction: float) -> int:
    # round, not int(): (1 - 0.3) * 10 is 6.999..., which must give 7
    return int(round(n_total * (1.0 - val_fraction)))


def hparam_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(HParams))


def validate(hp: HParams) -> HParams:
    """Raise ConfigError naming the first flag whose value is not allowed."""
    defaults = HParams()
    for f in dataclasses.fields(HParams):  # a --config's `lr: null` reaches here as None
        value, kind = getattr(hp, f.name), type(getattr(defaults, f.name))
        plain = type(value) is kind or (kind is float and type(value) is int)
        _require(f.name, plain, "an integer" if kind is int else "a finite number", value)
    for name in ("n_per_class", "dim", "batch_size", "hidden_dim", "max_epochs"):
        _require(name, getattr(hp, name) >= 1, "a positive integer", getattr(hp, name))
    _require("num_classes", hp.num_classes >= 2, "an integer >= 2", hp.num_classes)
    _require("seed", hp.seed >= 0, "an integer >= 0", hp.seed)
    _require("offset", math.isfinite(hp.offset), "a finite number", hp.offset)
    _require("dropout", 0.0 <= hp.dropout < 1.0, "in [0, 1)", hp.dropout)
    _require("lr", math.isfinite(hp.lr) and hp.lr > 0, "a finite number > 0", hp.lr)
    _require(
        "weight_decay",
        math.isfinite(hp.weight_decay) and hp.weight_decay >= 0,
        "a finite number >= 0",
        hp.weight_decay,
    )
    _require("val_fraction", 0.0 < hp.val_fraction < 1.0, "in (0, 1)", hp.val_fraction)
    if hp.n_train < 1 or hp.n_val < 1:
        raise ConfigError(
            f"--val_fraction {hp.val_fraction} leaves an empty split of {hp.n_total} points "
            f"({hp.n_train} train, {hp.n_val} val); both splits need at least one point"
        )
    return hp


def _require(name: str, ok: bool, allowed: str, value: object) -> None:
    # `not ok` is also true for NaN comparisons, which is what we want
    if not ok:
        raise ConfigError(f"--{name} must be {allowed}, got {value!r}")
