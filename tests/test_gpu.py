"""On a CUDA GPU: training runs there, keeps everything there, and its checkpoint reloads on the CPU.

Skipped where there is no CUDA GPU (CI has none); run on a GPU machine with ``pytest -m gpu``.
"""

import pytest
import torch

from tests.helpers import read_scalars, run_script

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

    from mlp_lightning.lightning.datamodule import BlobDataModule
    from mlp_lightning.lightning.lit_module import MLPClassifier

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


# the README's three GPU commands, then the two settings fit.py offers on CUDA alone
GPU_RUNS = {
    "fp32": [],
    "bf16-mixed": ["--precision", "bf16-mixed"],
    "ddp-1": ["--devices", "1", "--strategy", "ddp"],
    "16-mixed": ["--precision", "16-mixed"],
    "fsdp-1": ["--strategy", "fsdp"],
}


@pytest.mark.parametrize("flags", GPU_RUNS.values(), ids=GPU_RUNS.keys())
def test_fit_script_trains_on_the_gpu(tmp_path, flags):
    result = run_script("fit.py", "--accelerator", "gpu", "--logdir", str(tmp_path), *flags, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_scalars(tmp_path / "lightning" / "version_0")
    assert scalars["val/acc"][-1][1] >= 0.98


def test_an_interrupted_gpu_run_resumes_on_the_gpu_and_ends_where_an_uninterrupted_one_does(tmp_path, capsys):
    """A bare ``--resume`` stays on the GPU (the flags are the run's) and restores the CUDA dropout RNG.

    Compared within float32 rounding, not bit for bit: the project promises bits on CPU only.
    """
    import signal

    from mlp_lightning.lightning.checkpoint_io import PROJECT_KEY
    from tests.test_resume import SignalAt, final_state, run

    flags = ("--accelerator", "gpu", "--n_per_class", "40", "--batch_size", "16", "--max_epochs", "3")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run(straight, *flags) == 0
    assert run(interrupted, *flags, callbacks=[SignalAt(signal.SIGINT, step=6)]) == 130
    run_dir = interrupted / "lightning" / "version_0"
    assert final_state(run_dir)[PROJECT_KEY]["device"] == "cuda"
    capsys.readouterr()

    assert run(interrupted, "--resume", str(run_dir)) == 0

    assert "note:" not in capsys.readouterr().err  # continued on the GPU it started on
    resumed, reference = final_state(run_dir), final_state(straight / "lightning" / "version_0")
    assert resumed["global_step"] == reference["global_step"] == 12
    for name, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, msg=name)
    ref_scalars = read_scalars(straight / "lightning" / "version_0")
    got_scalars = read_scalars(run_dir)
    assert got_scalars.keys() == ref_scalars.keys()
    for tag, points in ref_scalars.items():
        assert [step for step, _ in got_scalars[tag]] == [step for step, _ in points], tag
        torch.testing.assert_close(
            torch.tensor([v for _, v in got_scalars[tag]]), torch.tensor([v for _, v in points]), msg=tag
        )
