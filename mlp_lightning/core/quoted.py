"""A value read from someone else's file, as a message may show it: bounded and escaped.

``f"{value!r}"[:80]`` cuts the text after it is built, and building it is the danger: a
few hundred bytes of YAML anchors or nested shared lists expand to gigabytes of ``repr``,
and a 10^5-digit integer is refused by ``int.__str__``. ``quoted`` walks the value
instead, spending at most ``limit`` characters and visiting at most ``limit`` items, so
its cost is bounded by the code, never by the value. Text is escaped the way ``repr``
escapes it (control characters, terminal escapes, bidirectional overrides become
``\\x1b``, ``\\u202e``), so a message never writes raw bytes of the file to a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath

DEFAULT_LIMIT = 80
ELLIPSIS = "..."
_LARGE_INT_BITS = 200  # about 60 digits: beyond that a count of bits says more than the digits


def quoted(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``repr``-like text for ``value`` in at most ``limit`` characters (``...`` marks a cut)."""
    parts: list[str] = []
    budget = [max(limit, len(ELLIPSIS) + 1)]
    _walk(value, parts, budget, depth=0)
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def fits(value: object, limit: int) -> bool:
    """Whether ``value``'s text (as ``quoted`` walks it) takes at most ``limit`` characters, found at a cost
    bounded by ``limit``: a value that YAML aliases or shared lists expand beyond its file's size does not."""
    budget = [limit + 1]
    _walk(value, [], budget, depth=0)
    return budget[0] > 0


def quoted_text(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` escaped as ``repr`` would, without the quotes: for names inside a sentence."""
    shown = repr(str(text)[: limit + 1])[1:-1]
    return shown if len(shown) <= limit else shown[: limit - len(ELLIPSIS)] + ELLIPSIS


def short_text(text: object, limit: int = 200) -> str:
    """An exception's words (or any text that may hold a file's) on one line: escaped, cut to ``limit``."""
    shown = printable(" ".join(str(text)[: 4 * limit].split()))
    return shown if len(shown) <= limit else shown[: limit - len(ELLIPSIS)] + ELLIPSIS


def printable(text: str) -> str:
    """``text`` with each character a terminal would act on (control characters, escapes, bidirectional
    overrides) written as ``repr`` writes it, ``\\x1b``; the rest, accented letters included, as it is.

    The last guard of every error line (``core/errors.py``): whatever a message took from a file
    unescaped reaches the terminal as text, never as a command to it.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _walk(value: object, parts: list[str], budget: list[int], depth: int) -> None:
    """Append pieces of ``value``'s text to ``parts`` until ``budget[0]`` characters are spent."""
    if budget[0] <= 0:
        return
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, str | bytes):
        _emit(repr(value[: budget[0] + 1]), parts, budget)
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        _emit(repr(value), parts, budget)
    elif isinstance(value, int):
        bits = value.bit_length()
        _emit(repr(value) if bits <= _LARGE_INT_BITS else f"<int of {bits} bits>", parts, budget)
    elif isinstance(value, Mapping | list | tuple | set | frozenset):
        _walk_container(value, parts, budget, depth)
    else:
        shape = getattr(value, "shape", None)
        of_shape = "" if shape is None else f" of shape {_shape(shape)}"
        _emit(f"<{type(value).__name__}{of_shape}>", parts, budget)


def _walk_container(value, parts: list[str], budget: list[int], depth: int) -> None:
    opening, closing = "()" if isinstance(value, tuple) else "[]" if isinstance(value, list) else "{}"
    if depth >= 20:  # deeper than any configuration; the budget alone would bound it too
        _emit(opening + ELLIPSIS + closing, parts, budget)
        return
    _emit(opening, parts, budget)
    items = value.items() if isinstance(value, Mapping) else value
    for index, item in enumerate(items):
        if budget[0] <= 0:
            return
        if index:
            _emit(", ", parts, budget)
        if isinstance(value, Mapping):
            _walk(item[0], parts, budget, depth + 1)
            _emit(": ", parts, budget)
            item = item[1]
        _walk(item, parts, budget, depth + 1)
    if isinstance(value, tuple) and len(value) == 1:
        _emit(",", parts, budget)
    _emit(closing, parts, budget)


def _emit(text: str, parts: list[str], budget: list[int]) -> None:
    parts.append(text[: budget[0] + 1])
    budget[0] -= len(text)


def _shape(shape: object) -> str:
    try:
        return "x".join(str(int(n)) for n in tuple(shape)[:8])  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return "?"
