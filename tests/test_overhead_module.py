"""The module's and data module's speed paths keep Lightning's and torch's behaviour."""

import torch

from mlp_lightning.lightning.datamodule import BlobDataModule


def test_a_batch_already_on_the_device_is_handed_over_unchanged_and_others_are_moved():
    dm = BlobDataModule()
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    batch = (x, y)
    assert dm.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    as_list = dm.transfer_batch_to_device([x, y], torch.device("cpu"), 0)  # the generic path
    assert isinstance(as_list, list) and as_list[0] is x
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved is not batch and all(t.device.type == "meta" for t in moved)
