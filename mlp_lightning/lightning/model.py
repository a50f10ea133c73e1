"""The reference notebook's two-layer MLP, with its weights as raw ``nn.Parameter``s."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlp_lightning.core.weights import PARAM_NAMES
from mlp_lightning.lightning.dropout import keep_mask, unpack_keep


class TwoLayerMLP(nn.Module):
    """``x @ W1 + b1 -> ReLU -> dropout (training only) -> @ W2 + b2`` = logits.

    Dropout multiplies by the mask of ``keep`` (B, ceil(H / 8)) uint8, the run's packed keep
    bits that come with a training batch (``dropout.py``): the NumPy twin's masks, unit for
    unit. Without them (``keep=None``) it draws its own from torch (``keep_mask``), by the same
    rule; either way not ``F.dropout``, whose per-unit float draw cost more than the first GEMM
    on a CPU.

    The weights are plain tensors named as in CS231n (W1 is (D, H), not nn.Linear's
    (H, D)), so they map one to one onto the NumPy twin's arrays.
    """

    def __init__(self, weights: dict[str, np.ndarray], dropout: float) -> None:
        super().__init__()
        for name in PARAM_NAMES:
            # copy: the module must not share memory with (and later overwrite) the caller's arrays
            self.register_parameter(name, nn.Parameter(torch.tensor(weights[name])))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(torch.addmm(self.b1, x, self.W1))  # (B, H): x @ W1 + b1, the bias added by the GEMM
        if self.training and self.dropout > 0:
            # inverted dropout; autograd's backward multiplies by the same (saved) mask
            mask = keep_mask(h, self.dropout) if keep is None else unpack_keep(keep, h, self.dropout)
            h = h * mask
        return h @ self.W2 + self.b2  # (B, C)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """The weights as float32 NumPy arrays, in the twin's layout."""
        return {name: getattr(self, name).detach().cpu().float().numpy().copy() for name in PARAM_NAMES}
