"""Inverted dropout, shared by both trainers: which draw keeps a unit, and the draws themselves.

Each hidden unit gets a uniform ``bits``-bit integer draw and is kept where the draw is
``>= keep_threshold(p, bits)``. That keeps it with probability ``1 - round(p * 2**bits) / 2**bits``:
exactly ``1 - p`` when ``p * 2**bits`` is a whole number (p = 0.5, 0.25, 0.1875, ...), else
within ``2**-bits`` of it. Kept units are scaled by ``1 / (1 - p)``, so a unit's expected
value in training equals its value in eval mode, where nothing is dropped.

The draws are part of the run's stream, like the batch order: ``keep_units`` is a pure function
of (seed, epoch, the point's global index, the unit), so the NumPy twin, the Lightning model (which
gets them packed with each batch, ``keep_packed``) and every DDP rank drop the same units of the same
point, and the twins agree to float rounding at any ``p``. Fewer bits per unit are cheaper to draw:
the mask takes the narrowest width exact for ``p`` (``mask_bits``): 1 bit at p = 0.5, 8 at 0.25, ...
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np


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


# --- the keep bits: a pure function of (seed, epoch, point, unit), the same in both trainers ---------
#
# Counter-based, so there is no generator state to carry or checkpoint, and a point's bits do not
# depend on which batch, rank or process holds it: a DDP rank draws exactly the rows of the global
# batch it holds, and a run resumed mid-epoch draws what it would have drawn. The words are
# splitmix64's (Steele, Lea & Flood 2014; its outputs pass BigCrush): the output at position c of
# the stream keyed by k is mix(k + c * GOLDEN). Each (seed, epoch) keys its own stream, and the
# word w of point i sits at position i * words_per_point + w + 1, so no two words of an epoch share
# a position. Every operation is a uint64 array op, wrapping modulo 2**64.

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MUL1, _MUL2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_STREAM = 0xD80D0D7  # keys the dropout stream apart from any other use of the same seed
# bits per unit a mask is drawn at, narrowest first (1: only p = 0.5 is exact at one bit)
MASK_WIDTHS = (1, 8, 16)
MASK_FALLBACK = 32  # any other p: within 2**-32 of 1 - p
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def _mix_int(z: int) -> int:
    """splitmix64's finaliser on a Python int (the stream keys)."""
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK64
    return z ^ (z >> 31)


# the same steps as uint64 scalars, made once (a uint64 from a Python int above 2**63 is slow to make)
_MIX_STEPS = tuple((np.uint64(shift), np.uint64(mul)) for shift, mul in ((30, _MUL1), (27, _MUL2)))
_LAST_SHIFT = np.uint64(31)


def _mix(z: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array, in place (``tmp``: scratch of its shape)."""
    for shift, mul in _MIX_STEPS:
        np.bitwise_xor(z, np.right_shift(z, shift, out=tmp), out=z)
        np.multiply(z, mul, out=z)
    return np.bitwise_xor(z, np.right_shift(z, _LAST_SHIFT, out=tmp), out=z)


def stream_key(seed: int, epoch: int) -> int:
    """The key of ``(seed, epoch)``'s stream of keep bits."""
    return _mix_int((_mix_int((seed ^ _STREAM) & _MASK64) + epoch * _GOLDEN) & _MASK64)


@functools.lru_cache(maxsize=8)
def mask_bits(p: float) -> int:
    """Bits per unit of the keep draw at dropout ``p``: the narrowest exact width, else 32."""
    return exact_bits(p, MASK_WIDTHS, fallback=MASK_FALLBACK)


def keep_words(seed: int, epoch: int, points: np.ndarray, units: int, bits: int) -> np.ndarray:
    """(B, W) uint64 random words for the ``points`` (B,) (global indices in the training split):
    ``units * bits`` bits per point, each word a pure function of (seed, epoch, point, word)."""
    per_point = -(-units * bits // 64)  # W
    stride, offsets = _stream_positions(seed, epoch, per_point)
    # position i * W + w + 1 of the stream: i * (W * GOLDEN) + ((w + 1) * GOLDEN + key), all mod 2**64
    words = np.multiply(np.asarray(points).astype(np.uint64)[:, None], stride)  # (B, 1)
    words = np.add(words, offsets)  # (B, W)
    return _mix(words, np.empty_like(words))


@functools.lru_cache(maxsize=8)
def _stream_positions(seed: int, epoch: int, per_point: int) -> tuple[np.uint64, np.ndarray]:
    """``W * GOLDEN`` and the (W,) ``(w + 1) * GOLDEN + key`` of the epoch's stream (read-only: cached)."""
    offsets = np.arange(1, per_point + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    offsets += np.uint64(stream_key(seed, epoch))
    offsets.flags.writeable = False
    return np.uint64(per_point * _GOLDEN & _MASK64), offsets


def keep_units(
    seed: int, epoch: int, points: np.ndarray, units: int, p: float, out: np.ndarray
) -> np.ndarray:
    """Dropout's keep mask (B, units) bool into ``out``: unit u of a point is kept where its draw (bits
    ``u * b`` to ``u * b + b - 1`` of the point's words, ``b = mask_bits(p)``) is >= ``keep_threshold``."""
    bits = mask_bits(p)
    words = keep_words(seed, epoch, points, units, bits).astype("<u8", copy=False)  # little-endian bytes
    if bits == 1:  # the bit itself is the mask
        raw = words.view(np.uint8)  # (B, 8W): unit u is bit u % 8 of byte u // 8
        np.copyto(out, np.unpackbits(raw, axis=1, count=units, bitorder="little").view(bool))
        return out
    draws = words.view(_UINT[bits])[:, :units]
    return np.greater_equal(draws, _UINT[bits](keep_threshold(p, bits)), out=out)


def keep_packed(seed: int, epoch: int, points: np.ndarray, units: int, p: float) -> np.ndarray:
    """``keep_units`` packed 8 units a byte, unit u at bit ``u % 8`` of byte ``u // 8``: (B, ceil(units / 8)).

    What the Lightning side ships with each batch: a 32nd of the float mask it stands for.
    """
    bits, n_bytes = mask_bits(p), -(-units // 8)
    if bits == 1:  # already packed: the words' own bytes (bits past ``units`` are never read)
        words = keep_words(seed, epoch, points, units, 1).astype("<u8", copy=False)
        return np.ascontiguousarray(words.view(np.uint8)[:, :n_bytes])
    kept = keep_units(seed, epoch, points, units, p, np.empty((len(points), units), bool))
    return np.packbits(kept, axis=1, bitorder="little")
