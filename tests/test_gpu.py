"""On a CUDA GPU: training runs there, keeps everything there, and its checkpoint reloads on the CPU.

Skipped where there is no CUDA GPU (CI has none); run on a GPU machine with ``pytest -m gpu``.
"""

import pytest
import torch

from tests.conftest import read_scalars, run_script

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


class RecordDevices:
    """Notes where the batches, weights and metric states live during training."""

    def __init__(self):
        import lightning as L

        record = self

        class Callback(L.Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                record.batches.add(batch[0].device.type)
                record.weights.update(p.device.type for p in module.parameters())
                record.metrics.add(module.train_loss.weight.device.type)

        self.batches, self.weights, self.metrics = set(), set(), set()
        self.callback = Callback()


def test_training_on_cuda_keeps_data_weights_and_metrics_on_the_gpu_and_reloads_on_cpu(tmp_path):
    import lightning as L

    from mlp_lightning.datamodule import BlobDataModule
    from mlp_lightning.lit_module import MLPClassifier

    record = RecordDevices()
    datamodule = BlobDataModule(n_per_class=200, seed=3)
    module = MLPClassifier(seed=3)
    trainer = L.Trainer(
        accelerator="gpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, num_sanity_val_steps=0, callbacks=[record.callback],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    assert record.batches == record.weights == record.metrics == {"cuda"}
    loader = trainer.train_dataloader
    assert loader.x.device.type == "cuda", "the data set must sit on the GPU, not be copied per batch"
    assert float(trainer.callback_metrics["val/acc"]) > 0.9

    path = tmp_path / "gpu.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    on_cpu = MLPClassifier(**state["hyper_parameters"])
    on_cpu.load_state_dict(state["state_dict"])
    for name, param in module.model.named_parameters():
        assert torch.equal(getattr(on_cpu.model, name), param.detach().cpu())
    # Lightning hands the module back on the CPU after fit; predict on the GPU again
    x = datamodule.x_val[:64]
    module.cuda().eval()
    on_cpu.eval()
    torch.testing.assert_close(on_cpu(x), module(x.cuda()).cpu(), rtol=1e-4, atol=1e-5)


GPU_RUNS = [[], ["--precision", "bf16-mixed"], ["--devices", "1", "--strategy", "ddp"]]


@pytest.mark.parametrize("flags", GPU_RUNS, ids=["fp32", "bf16-mixed", "ddp-1"])
def test_fit_script_trains_on_the_gpu(tmp_path, flags):
    result = run_script("fit.py", "--accelerator", "gpu", "--logdir", str(tmp_path), *flags, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_scalars(tmp_path / "lightning" / "version_0")
    assert scalars["val/acc"][-1][1] >= 0.98
