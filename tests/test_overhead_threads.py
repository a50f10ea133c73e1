"""fit.py's torch-thread rule: one thread for tiny models, torch's own count otherwise and afterwards."""

import lightning as L
import torch

from mlp_lightning.cli import parse_fit_args
from mlp_lightning.core.hparams import HParams
from mlp_lightning.lightning.callbacks import torch_threads
from mlp_lightning.lightning.train import fit


def test_seed_config_trains_on_one_thread_and_the_large_config_keeps_torchs_count():
    assert torch_threads(HParams()) == 1
    large = HParams(n_per_class=62500, dim=512, hidden_dim=2048, batch_size=512, offset=0.3)
    assert torch_threads(large) is None


class _Threads(L.Callback):
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(torch.get_num_threads())


def test_a_tiny_fit_runs_on_one_thread_and_restores_the_count_it_found(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = _Threads()
        args = parse_fit_args(
            ["--logdir", str(tmp_path), "--accelerator", "cpu", "--n_per_class", "40", "--max_epochs", "1"]
        )
        assert fit(args, callbacks=[threads]) == 0
        assert threads.seen and set(threads.seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
