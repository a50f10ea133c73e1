"""The training step asks the device for nothing: no value read back to the host per step.

On a GPU every such read (``.item()``, ``bool(tensor)``, ``.tolist()``, ``.cpu()``) waits for the
card to finish; on the CPU they can be counted, which is what this test does.
"""

from __future__ import annotations

import torch

from mlp_lightning.core.hparams import HParams
from mlp_lightning.lightning.lit_module import MLPClassifier

READS_BACK = ("item", "__bool__", "tolist", "cpu", "numpy")


def count_reads_back(monkeypatch) -> dict[str, int]:
    counts = dict.fromkeys(READS_BACK, 0)
    for name in READS_BACK:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_training_and_validation_steps_read_nothing_back_from_the_device(monkeypatch):
    hp = HParams(num_classes=3, hidden_dim=8, dim=4)
    module = MLPClassifier.from_hparams(hp)
    x, y = torch.randn(16, hp.dim), torch.randint(0, hp.num_classes, (16,))
    counts = count_reads_back(monkeypatch)
    for _ in range(3):
        module.training_step((x, y), 0).backward()
    with torch.no_grad():
        module.validation_step((x, y), 0)
    assert counts == dict.fromkeys(READS_BACK, 0)


def test_the_counter_sees_a_read_back(monkeypatch):
    counts = count_reads_back(monkeypatch)
    assert bool(torch.ones(1)) and torch.ones(1).item() == 1.0
    assert counts["__bool__"] == 1 and counts["item"] == 1
