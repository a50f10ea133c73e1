"""A torch checkpoint's archive, checked before a tensor is read: no more bytes than its model needs.

``torch.save`` writes a zip: ``<name>/data.pkl`` (the pickled structure), one ``<name>/data/<key>``
member per tensor storage, and a few small records. A checkpoint someone else wrote may promise
any size in them, deflated to almost nothing. So the directory comes first (only the members
``torch.save`` writes; the pickle at most ``PICKLE_MAX_BYTES``), then the pickle alone
(``map_location="meta"``: every tensor's shape and dtype, no storage read), and the storages,
as the directory promises them and as the pickle declares them, may hold at most what a run of the
checkpoint's model holds: its parameters and as many optimizer states each (SGD's momentum, and one
more for slack), in float64 at most, and the per-process metric sums (``STATE_MAX_BYTES``).
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from mlp_lightning.core.archive_check import archive_members, check_promised_size
from mlp_lightning.core.errors import CheckpointError
from mlp_lightning.core.quoted import quoted_text
from mlp_lightning.core.weights import PARAM_NAMES, param_shapes

# where the LightningModule keeps the TwoLayerMLP: its state_dict keys are "model.W1", ...
STATE_PREFIX = "model."
PICKLE_MAX_BYTES = 16 << 20  # the structure: hyperparameters, loop counters, class names (a few KB)
STATE_MAX_BYTES = 16 << 20  # tensors besides the model's and its optimizer's: metric sums, per process
COPIES = 3  # the parameters, SGD's momentum buffers, and one more (an optimizer state this run lacks)
_RECORDS = {
    "byteorder",
    "version",
    ".format_version",
    ".storage_alignment",
    ".data/version",
    ".data/serialization_id",
}
_STORAGE = re.compile(r"data/[0-9]{1,12}")


def storage_bytes_promised(archive: zipfile.ZipFile, path: Path) -> int:
    """The storages' bytes once inflated, from the directory; members torch.save does not write: refused."""
    source = f"checkpoint {str(path)!r}"
    members = archive_members(archive, source, CheckpointError)
    pickles = [name for name in members if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(f"{source} holds {len(pickles)} data.pkl, not one: not torch.save's archive")
    prefix = pickles[0].removesuffix("data.pkl")
    for name, info in members.items():
        rest = name.removeprefix(prefix) if name.startswith(prefix) else None
        if rest is None or not (rest == "data.pkl" or rest in _RECORDS or _STORAGE.fullmatch(rest)):
            raise CheckpointError(
                f"{source} holds a member torch.save does not write ({quoted_text(name, 60)}): refused unread"
            )
        if rest in _RECORDS and info.file_size > 4096:
            raise CheckpointError(f"{source}: its record {quoted_text(name, 60)} is {info.file_size} bytes")
    check_promised_size(
        [members[pickles[0]]], PICKLE_MAX_BYTES, f"{source}: its data.pkl", CheckpointError, ""
    )
    return sum(
        info.file_size for name, info in members.items() if _STORAGE.fullmatch(name.removeprefix(prefix))
    )


def check_tensor_bytes(skeleton: dict[str, Any], promised: int, hp: Any, path: Path) -> None:
    """Refuse storages beyond what a run of ``hp``'s model holds (``hp`` None: the declared parameters').

    ``skeleton`` is the checkpoint loaded on the meta device: shapes and dtypes, no data.
    """
    if hp is not None:
        numel = sum(
            math.prod(shape) for shape in param_shapes(hp.dim, hp.hidden_dim, hp.num_classes).values()
        )
        model = f"a model of dim={hp.dim}, hidden_dim={hp.hidden_dim}, num_classes={hp.num_classes}"
    else:  # a checkpoint of weights alone (export_weights.py's): its own W1, b1, W2, b2 say
        state = skeleton.get("state_dict")
        params = [state.get(STATE_PREFIX + name) for name in PARAM_NAMES] if isinstance(state, dict) else []
        numel = sum(t.numel() for t in params if torch.is_tensor(t))
        model = f"its {numel} parameters"
    limit = COPIES * 8 * numel + STATE_MAX_BYTES
    source = f"checkpoint {str(path)!r}"
    declared = sum(t.untyped_storage().nbytes() for t in _tensors(skeleton, 100_000, source))
    for amount, how in ((promised, "promises"), (declared, "declares")):
        if amount > limit:
            raise CheckpointError(
                f"{source} {how} {amount / 1e6:.3g} MB of tensors, more than {model} with its optimizer "
                f"and metric states may hold ({limit / 1e6:.3g} MB): refused unread"
            )


def _tensors(value: Any, limit: int, source: str) -> list[torch.Tensor]:
    """The tensors inside dicts, lists and tuples, at most ``limit`` containers and tensors visited."""
    found, stack, visited = [], [value], 0
    while stack and visited < limit:
        item, visited = stack.pop(), visited + 1
        if torch.is_tensor(item):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    if stack:
        raise CheckpointError(f"{source} holds more than {limit} values in its structure: refused")
    return found
