"""Inverted dropout's keep rule, shared by both trainers: which draw keeps a unit.

Each hidden unit gets a uniform ``bits``-bit integer draw and is kept where the draw is
``>= keep_threshold(p, bits)``. That keeps it with probability ``1 - round(p * 2**bits) / 2**bits``:
exactly ``1 - p`` when ``p * 2**bits`` is a whole number (p = 0.5, 0.25, 0.1875, ...), else
within ``2**-bits`` of it. Kept units are scaled by ``1 / (1 - p)``, so a unit's expected
value in training equals its value in eval mode, where nothing is dropped.

Fewer bits per unit are cheaper to draw, so each trainer draws the narrowest width that is
exact for ``p`` (``exact_bits``), from the widths its random source offers.
"""

from __future__ import annotations

from collections.abc import Iterable


def exact_bits(p: float, widths: Iterable[int], fallback: int) -> int:
    """The first of ``widths`` at which ``p * 2**bits`` is whole (exact keep rate), else ``fallback``."""
    return next((bits for bits in widths if (p * 2.0**bits).is_integer()), fallback)


def keep_threshold(p: float, bits: int) -> int:
    """A unit is kept where its ``bits``-bit draw is >= this: probability 1 - p, exact to 2**-bits.

    Capped at the largest draw, so a p just under 1 still keeps a unit now and then.
    """
    return min(round(p * 2.0**bits), 2**bits - 1)


def keep_probability(p: float, bits: int) -> float:
    """The keep rate the rule gives at ``bits`` bits per unit (1 - p when exact)."""
    return 1.0 - keep_threshold(p, bits) / 2.0**bits
