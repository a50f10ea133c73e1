"""Inverted dropout's keep mask on the device: the run's bits unpacked, or torch's own draws as a fallback.

Under ``fit.py`` (and any loop fed by ``BlobDataModule``) each training batch brings its points'
keep bits, packed 8 units a byte (``core.dropout.keep_packed``, the stream the NumPy twin draws
from): ``unpack_keep`` turns them into the mask, so the two trainers drop the same units.

A plain ``(x, y)`` batch (someone else's loop) has no bits: ``keep_mask`` then draws them itself.

``F.dropout`` draws a float per unit with ``bernoulli_``: on this project's 2-core CPU it took
~15 ms for a 512 x 2048 activation, four times the GEMM that made it. Here the mask is built
from integer draws by ``core/dropout.py``'s rule (a unit is kept where its ``bits``-bit draw is
>= ``keep_threshold(p, bits)``), as the NumPy twin's is:

- p = 0.5 (the default): one bit per unit, unpacked from 32-bit random words (exact);
- p * 256 whole (0.25, 0.125, ...): one random byte per unit (exact);
- any other p: a 31-bit draw per unit (``torch.randint``'s int32 range), within 2**-31 of 1 - p.

The fallback's draws come from torch's default generator of the activation's device, as
``F.dropout``'s do: the same keep rate, not the twin's masks.
"""

from __future__ import annotations

import torch

from mlp_lightning.core.dropout import exact_bits, keep_threshold


def unpack_keep(packed: torch.Tensor, like: torch.Tensor, p: float) -> torch.Tensor:
    """``1 / (1 - p)`` where ``packed`` (B, ceil(H / 8)) uint8 keeps a unit (bit u % 8 of byte u // 8),
    0 where not: ``like``'s (B, H) shape and dtype."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)  # a byte's bits, lowest first
    kept = packed.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and_(1)  # (B, bytes, 8), 0 or 1
    kept = kept.view(packed.shape[0], -1)[:, : like.shape[1]]  # (B, H)
    return kept.to(like.dtype).mul_(1.0 / (1.0 - p))


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """``1 / (1 - p)`` where a unit is kept, 0 where dropped; ``like``'s shape, dtype and device.

    ``0 <= p < 1``. Multiplying an activation by it is inverted dropout: each unit's
    expected value equals its value in eval mode.
    """
    n, device = like.numel(), like.device
    if p == 0.5:  # the one p exact at 1 bit: each random bit is a unit's mask
        # 32 units per draw: uniform over all 2**32 int32 values, so each of its bits is a fair coin
        words = torch.randint(-(2**31), 2**31, (-(-n // 32),), dtype=torch.int32, device=device)
        raw = words.view(torch.uint8)  # (ceil(n/32) * 4,) random bytes
        shifts = torch.arange(8, dtype=torch.uint8, device=device)  # a byte's bits, lowest first
        kept = raw.unsqueeze(1).bitwise_right_shift(shifts).bitwise_and_(1)  # (bytes, 8), 0 or 1
        kept = kept.view(-1)[:n].view(like.shape)
    else:
        bits = exact_bits(p, (8,), fallback=31)
        dtype = torch.uint8 if bits == 8 else torch.int32
        draws = torch.randint(0, 2**bits, like.shape, dtype=dtype, device=device)
        kept = draws >= keep_threshold(p, bits)
    return kept.to(like.dtype).mul_(1.0 / (1.0 - p))
