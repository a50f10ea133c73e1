"""Which of a table's columns are features and which is the class: ``--target`` and ``--drop``, by name."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mlp_lightning.core.columns import shown_name
from mlp_lightning.core.errors import ConfigError

SHOWN = 10  # column names a message lists: real tables have thousands


def choose_columns(
    names: Sequence[str], target: str, drop: Sequence[str], where: str
) -> tuple[list[int], int]:
    """The feature columns' indices, in the file's order, and the class column's (default: the last)."""
    first: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in first:
            raise ConfigError(
                f"{where}: the header names {shown_name(name)} twice "
                f"(columns {first[name] + 1} and {j + 1}); "
                "columns are chosen by name: rename one"
            )
        first[name] = j
    label = _index(first, target, "--target", where) if target else len(names) - 1
    dropped = {_index(first, name, "--drop", where) for name in drop}
    if label in dropped:
        raise ConfigError(
            f"{where}: --drop {shown_name(names[label])} is the class column (--target): drop only features"
        )
    features = [j for j in range(len(names)) if j != label and j not in dropped]
    if not features:
        raise ConfigError(
            f"{where}: --drop leaves no feature column (the class column is {shown_name(names[label])}); "
            f"the columns: {listing(names)}"
        )
    return features, label


def _index(first: dict[str, int], name: str, flag: str, where: str) -> int:
    if name in first:
        return first[name]
    lower = {known.lower(): known for known in first}  # 'ID' is close to 'id'
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    hint = f" (did you mean {shown_name(lower[close[0]])}?)" if close else ""
    raise ConfigError(
        f"{where}: {flag} {shown_name(name)} is not a column{hint}; the columns: {listing(list(first))}"
    )


def listing(names: Sequence[str]) -> str:
    """``'a', 'b', ... (2000 in all)``: the first names, and how many there are."""
    shown = ", ".join(shown_name(str(n)) for n in names[:SHOWN])  # escaped, and cut if long
    return shown if len(names) <= SHOWN else f"{shown}, ... ({len(names)} in all)"
