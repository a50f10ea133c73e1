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
from typing import Optional

from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.quoted import quoted

# the generated sets (--dataset); a run on a --data file records DATA_FILE as its dataset
DATASETS = ("blobs", "moons", "circles", "spirals")
DATA_FILE = "file"
# The flags whose default is "the set's own" (None in the field), per set. The blobs keep the reference
# notebook's. The nonlinear sets need more and larger steps to reach >= 0.95 val accuracy (docs/data.md
# measures it; tests/test_datasets.py checks both trainers). --noise is the standard deviation of each
# set's Gaussian noise (blobs: the notebook's unit variance; moons: absolute, as scikit-learn's
# make_moons; circles: radial, rings 1 apart; spirals: on the angle in radians, as CS231n's spiral).
# --standardize: a user's table is scaled (its features may run from 1e-3 to 1e3); the generated sets
# keep their raw points, so the blobs stay bit for bit the notebook's.
SET_DEFAULTS = {
    "blobs": {"noise": 1.0, "lr": 0.1, "max_epochs": 30, "standardize": False},
    "moons": {"noise": 0.1, "lr": 1.0, "max_epochs": 100, "standardize": False},
    "circles": {"noise": 0.2, "lr": 0.3, "max_epochs": 60, "standardize": False},
    "spirals": {"noise": 0.2, "lr": 1.0, "max_epochs": 200, "standardize": False},
    # max_epochs: at least; see file_max_epochs
    DATA_FILE: {"noise": 0.0, "lr": 0.1, "max_epochs": 30, "standardize": True},
}
# a --data file trains for at least this many optimizer steps: 30 epochs of a 120-point table are 60
# steps, too few from the notebook's small initial weights (docs/data.md); a large file keeps 30 epochs
FILE_MIN_STEPS = 500
# Upper bounds on the sizes, so that a value read from someone else's hparams.yaml or checkpoint (or typed by
# mistake) is refused in one line instead of drawing random numbers for minutes or exhausting memory. Each
# keeps a run well inside a 24 GiB machine: no array of the run holds more than MAX_VALUES numbers (1 GB
# as float32; the blobs' float64 draws come in bounded chunks), so the data (points x features), W1
# (features x hidden units) and its gradient, W2 (hidden x classes), a batch's hidden activations (batch x
# hidden) and evaluate.py's probabilities (points x classes) are a few GB together at the very worst.
# The benchmark's largest config (125,000 points x 512 features, 2048 hidden units: 64 M values) and a
# million-row table of 20 features (20 M) are far inside them.
MAX_VALUES = 250_000_000  # numbers in one array: 1 GB of float32
# points: the shuffle's indices, the labels and the batch order are int64 per point (8 bytes each):
# 50 M points are 0.4 GB per array
MAX_POINTS = 50_000_000
MAX_DIM = 100_000  # features: wider than gene-expression tables (~60,000)
MAX_CLASSES = 10_000  # a .csv column with more distinct values is not a class column (core/class_labels.py)
# hidden units: an evaluation chunk (core/data.py's EVAL_CHUNK, 4096 points) of 50,000 units is 0.8 GB
MAX_HIDDEN = 50_000
MAX_EPOCHS = 1_000_000  # an epoch logs a few scalars: a million epochs is ~100 MB of event file
# classes a set allows (None: any >= 2) and the dimension it has (None: any --dim)
DATASET_CLASSES = {"blobs": None, "moons": 2, "circles": None, "spirals": None}
DATASET_DIM = {"blobs": None, "moons": 2, "circles": 2, "spirals": 2}


def file_max_epochs(n_train: int, batch_size: int) -> int:
    """A --data file's default --max_epochs: enough for FILE_MIN_STEPS steps (on one device), at least 30."""
    steps_per_epoch = max(1, math.ceil(n_train / max(1, batch_size)))  # validate() refuses batch_size 0
    return max(SET_DEFAULTS[DATA_FILE]["max_epochs"], math.ceil(FILE_MIN_STEPS / steps_per_epoch))


def sets_own(name: str) -> str:
    """What ``--help`` says a "the set's own" default is: ``blobs 0.1, moons 1.0, ...``."""
    own = ", ".join(f"{s} {d[name]}" for s, d in SET_DEFAULTS.items() if s != DATA_FILE)
    if name == "max_epochs":
        at_least = SET_DEFAULTS[DATA_FILE][name]
        return f"{own}, a --data file enough for {FILE_MIN_STEPS} steps (at least {at_least})"
    if name == "noise":  # a file brings its own points
        return own
    if name == "standardize":
        return "false for the generated sets, true for a --data file"
    return f"{own}, a --data file {SET_DEFAULTS[DATA_FILE][name]}"


def _help(
    text: str, derived: bool = False, data: bool = False, generated: bool = False, columns: bool = False
) -> dict:
    # derived: filled in from --data, never given as a flag; data: decides the run's points and their
    # split; generated: shapes a generated set only (a --data file brings its own points); columns:
    # picks a --data .csv's columns, so it needs --data
    return {
        "help": text, "derived": derived, "data": data or generated or columns, "generated": generated,
        "columns": columns,
    }  # fmt: skip


@dataclass(frozen=True)
class HParams:
    """Everything that decides a run's numbers, for either trainer."""

    n_per_class: int = field(default=400, metadata=_help("points per class", generated=True))
    dim: int = field(default=2, metadata=_help("input features", data=True))
    offset: float = field(
        default=2.0, metadata=_help("class centers sit at +-offset per feature", generated=True)
    )
    num_classes: int = field(default=2, metadata=_help("number of classes", data=True))
    val_fraction: float = field(
        default=0.2, metadata=_help("share of the points held out for validation", data=True)
    )
    batch_size: int = field(default=64, metadata=_help("training batch size (per device)"))
    hidden_dim: int = field(default=32, metadata=_help("hidden units"))
    dropout: float = field(default=0.5, metadata=_help("dropout probability after the ReLU, in [0, 1)"))
    lr: Optional[float] = field(  # noqa: UP045 (jsonargparse reads the annotation)
        default=None, metadata=_help("SGD learning rate")
    )
    weight_decay: float = field(default=1e-4, metadata=_help("L2 penalty on W1 and W2 (not the biases)"))
    max_epochs: Optional[int] = field(  # noqa: UP045
        default=None, metadata=_help("training epochs")
    )
    seed: int = field(
        default=42, metadata=_help("one seed for data, weights, batch order and dropout", data=True)
    )
    dataset: str = field(
        default="blobs", metadata=_help(f"the generated set: {', '.join(DATASETS)}", generated=True)
    )
    noise: Optional[float] = field(  # noqa: UP045 (jsonargparse reads the annotation)
        default=None,
        metadata=_help("std of the set's Gaussian noise", generated=True),
    )
    data: str = field(
        default="",
        metadata=_help("train on your own table: a .npz (X, y) or a .csv with a header row", data=True),
    )
    target: str = field(
        default="",
        metadata=_help("the class column of a --data .csv, by name (default: the last)", columns=True),
    )
    drop: tuple[str, ...] = field(
        default=(),
        metadata=_help("columns of a --data .csv to leave out, such as an id: --drop id name", columns=True),
    )
    standardize: Optional[bool] = field(  # noqa: UP045 (jsonargparse reads the annotation)
        default=None,
        metadata=_help(
            "scale each feature to mean 0, sd 1 by the training split's mean and sd, stored with the run",
            data=True,
        ),
    )
    data_sha256: str = field(default="", metadata=_help("sha256 of the --data file", derived=True, data=True))
    data_points: int = field(default=0, metadata=_help("points in the --data file", derived=True, data=True))
    class_names: tuple[str, ...] = field(
        default=(), metadata=_help("the --data file's class names, label 0's first", derived=True, data=True)
    )

    def __post_init__(self) -> None:
        # a flag left None takes the set's own value (an unknown set keeps None; validate() refuses it)
        for name, value in SET_DEFAULTS.get(self.dataset, {}).items():
            if getattr(self, name) is None:
                if name == "max_epochs" and self.dataset == DATA_FILE:
                    value = file_max_epochs(self.n_train, self.batch_size)
                object.__setattr__(self, name, value)
        for name in ("class_names", "drop"):  # as the command line, YAML and JSON give them: lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def as_dict(self) -> dict[str, int | float | str | bool | list[str]]:
        """Plain values (a tuple as a list), as hparams.yaml, the checkpoints and TensorBoard record them.

        A run on a --data file records none of the flags that only shape a generated set: they
        did not apply (``dataset: file`` says where the points came from).
        """
        skip = set(generated_set_names()) - {"dataset"} if self.data else set()
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if k not in skip
        }

    @property
    def classes(self) -> tuple[str, ...]:
        """Each class's name, label 0's first: a file's own, or the labels themselves (``"0"``, ``"1"``)."""
        return self.class_names or tuple(str(k) for k in range(self.num_classes))

    @property
    def n_total(self) -> int:
        return self.data_points if self.data else self.n_per_class * self.num_classes

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


def flag_names() -> tuple[str, ...]:
    """The hyperparameters a user sets (the derived ones come from the --data file)."""
    return tuple(f.name for f in dataclasses.fields(HParams) if not f.metadata["derived"])


def data_names() -> tuple[str, ...]:
    """The hyperparameters that decide a run's points and their train/val split (``load_splits``)."""
    return tuple(f.name for f in dataclasses.fields(HParams) if f.metadata["data"])


def generated_set_names() -> tuple[str, ...]:
    """The flags that shape a generated set only: a --data file brings its own points."""
    return tuple(f.name for f in dataclasses.fields(HParams) if f.metadata["generated"])


def column_names() -> tuple[str, ...]:
    """The flags that pick a --data .csv's columns: they need --data."""
    return tuple(f.name for f in dataclasses.fields(HParams) if f.metadata["columns"])


_KINDS = {
    int: "an integer",
    float: "a finite number",
    bool: "true or false",
    str: "a string",
    tuple: "a list of names",
}


def validate(hp: HParams) -> HParams:
    """Raise ConfigError naming the first flag whose value is not allowed."""
    defaults = HParams()
    for f in dataclasses.fields(HParams):  # a --config's `lr: null` reaches here as None
        value, kind = getattr(hp, f.name), type(getattr(defaults, f.name))
        plain = type(value) is kind or (kind is float and type(value) is int)
        plain = plain or (value is None and f.default is None)  # None: the set's own
        plain = plain and (kind is not tuple or all(type(v) is str for v in value))
        _require(f.name, plain, _KINDS[kind], value)
    # an unknown set resolved none of its defaults: name the sets before a None reaches a check
    _require("dataset", hp.dataset in SET_DEFAULTS, f"one of {', '.join(DATASETS)}", hp.dataset)
    for name in ("n_per_class", "dim", "batch_size", "hidden_dim", "max_epochs"):
        _require(name, getattr(hp, name) >= 1, "a positive integer", getattr(hp, name))
    _require("num_classes", hp.num_classes >= 2, "an integer >= 2", hp.num_classes)
    _require("seed", hp.seed >= 0, "an integer >= 0", hp.seed)
    _require("offset", _finite(hp.offset), "a finite number", hp.offset)
    _require("dropout", 0.0 <= hp.dropout < 1.0, "in [0, 1)", hp.dropout)
    _require("lr", _finite(hp.lr) and hp.lr > 0, "a finite number > 0", hp.lr)
    _require(
        "weight_decay",
        _finite(hp.weight_decay) and hp.weight_decay >= 0,
        "a finite number >= 0",
        hp.weight_decay,
    )
    _require("val_fraction", 0.0 < hp.val_fraction < 1.0, "in (0, 1)", hp.val_fraction)
    _validate_sizes(hp)
    _validate_dataset(hp)
    if hp.n_train < 1 or hp.n_val < 1:
        raise ConfigError(
            f"--val_fraction {hp.val_fraction} leaves an empty split of {hp.n_total} points "
            f"({hp.n_train} train, {hp.n_val} val); both splits need at least one point"
        )
    return hp


def _validate_sizes(hp: HParams) -> None:
    """The upper bounds (MAX_*): each named with its bound, the others it depends on said."""
    _at_most("dim", hp.dim, MAX_DIM)
    _at_most("num_classes", hp.num_classes, MAX_CLASSES)
    _at_most("hidden_dim", hp.hidden_dim, MAX_HIDDEN)
    _at_most("max_epochs", hp.max_epochs, MAX_EPOCHS)
    _at_most("batch_size", hp.batch_size, MAX_POINTS)
    values = f"at most {MAX_VALUES} numbers in one array"
    if hp.data:  # what the file gives was checked when it was read; a stored run's record is checked here
        _at_most("data_points", hp.data_points, MAX_POINTS)
        data = MAX_VALUES // max(hp.dim, hp.num_classes)  # the points, their probabilities
        sizes = f"--dim {hp.dim} and --num_classes {hp.num_classes}"
        _at_most("data_points", hp.data_points, data, f"for {sizes} ({values})")
    else:
        per_class = f"for --num_classes {hp.num_classes}"
        _at_most(
            "n_per_class", hp.n_per_class, MAX_POINTS // hp.num_classes, f"{per_class} ({MAX_POINTS} points)"
        )
        data = MAX_VALUES // (hp.num_classes * max(hp.dim, hp.num_classes))  # the points, their probabilities
        _at_most("n_per_class", hp.n_per_class, data, f"{per_class} and --dim {hp.dim} ({values})")
    _at_most("hidden_dim", hp.hidden_dim, MAX_VALUES // max(hp.dim, hp.num_classes),
             f"for --dim {hp.dim} and --num_classes {hp.num_classes} (W1, W2: {values})")  # fmt: skip
    batch = min(hp.batch_size, hp.n_total)  # a batch is never larger than the points
    if batch * hp.hidden_dim > MAX_VALUES:
        _at_most("batch_size", hp.batch_size, MAX_VALUES // hp.hidden_dim,
                 f"for --hidden_dim {hp.hidden_dim} (a batch's hidden units: {values})")  # fmt: skip


def _at_most(name: str, value: int, bound: int, why: str = "") -> None:
    if value > bound:
        raise ConfigError(f"--{name} must be <= {bound}{' ' + why if why else ''}, got {quoted(value)}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond a float's range (a YAML 1e400 written out in digits)
        return False


def _validate_dataset(hp: HParams) -> None:
    names = hp.class_names  # none (the labels 0..C-1 are their own names), or one per class, unique
    _require(
        "class_names", not names or len(set(names)) == len(names) == hp.num_classes,
        f"{hp.num_classes} distinct names (one per class) or none", names,
    )  # fmt: skip
    if hp.data:  # what the file gives was checked when it was read (core/data_file.py)
        _require("dataset", hp.dataset == DATA_FILE, f"{DATA_FILE!r} for a --data run", hp.dataset)
        _require("data_points", hp.data_points >= 1, "a positive integer", hp.data_points)
        return
    for name in column_names():
        if getattr(hp, name):
            raise ConfigError(f"--{name} needs --data: it names columns of a .csv file")
    _require("dataset", hp.dataset in DATASETS, f"one of {', '.join(DATASETS)}", hp.dataset)
    _require("noise", _finite(hp.noise) and hp.noise >= 0, "a finite number >= 0", hp.noise)
    classes, dim = DATASET_CLASSES[hp.dataset], DATASET_DIM[hp.dataset]
    if classes is not None and hp.num_classes != classes:
        raise ConfigError(
            f"--dataset {hp.dataset} has {classes} classes: "
            f"--num_classes must be {classes}, got {hp.num_classes}"
        )
    if dim is not None and hp.dim != dim:
        raise ConfigError(f"--dataset {hp.dataset} is {dim}-D: --dim must be {dim}, got {hp.dim}")


def _require(name: str, ok: bool, allowed: str, value: object) -> None:
    # `not ok` is also true for NaN comparisons, which is what we want
    if not ok:
        raise ConfigError(f"--{name} must be {allowed}, got {quoted(value)}")
