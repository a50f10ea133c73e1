"""GPU rows: the trainers with the data resident on the card, against the card's own GEMM rate.

``BlobDataModule`` moves each split to the device once and ``TensorBatches`` gathers
batches there, so no batch crosses the host-device link. Matmuls run in TF32 (the
``"high"`` float32 precision), and the card's TF32 and strict-float32 GEMM rates are
measured in the same process as the bound.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.machine import torch_gemm_gflops, useful_flops_per_sample
from benchmarks.progress import progress
from mlp_lightning.core.hparams import HParams

GEMM_N_GPU = 8192  # 2048^3 is too small to keep a data-centre card busy

# the large config, the same at a GPU-sized batch, and one large enough to fill the card
CONFIGS = {
    "large": dict(n_per_class=62500, dim=512, hidden_dim=2048, batch_size=512, offset=0.3),
    "large, batch 8192": dict(n_per_class=62500, dim=512, hidden_dim=2048, batch_size=8192, offset=0.3),
    "card-filling, dim 4096": dict(
        n_per_class=131072, dim=4096, hidden_dim=16384, batch_size=16384, offset=0.3
    ),
    # wider inputs: the matmuls grow with dim, the elementwise passes do not
    "card-filling, dim 8192": dict(
        n_per_class=131072, dim=8192, hidden_dim=16384, batch_size=16384, offset=0.3
    ),
}


def measure(task: dict) -> dict:
    import torch

    from benchmarks.overhead import hand_loop, trainer_fit

    torch.set_float32_matmul_precision("high")
    result = {
        "name": torch.cuda.get_device_name(0),
        "tf32_gflops": torch_gemm_gflops(task["repeats"], GEMM_N_GPU, "cuda"),
        "rows": [],
    }
    torch.backends.cuda.matmul.allow_tf32 = False
    result["fp32_gflops"] = torch_gemm_gflops(task["repeats"], GEMM_N_GPU, "cuda")
    torch.set_float32_matmul_precision("high")
    progress(f"GEMM rates: TF32 {result['tf32_gflops']:,.0f}, float32 {result['fp32_gflops']:,.0f} GFLOP/s")
    configs = task.get("configs", CONFIGS)
    for label, cfg in configs.items():
        hp = HParams(**cfg, max_epochs=1 + task["repeats"])
        flops = useful_flops_per_sample(hp.dim, hp.hidden_dim, hp.num_classes)
        for impl, fn in (("Lightning Trainer.fit", trainer_fit), ("hand-written loop", hand_loop)):
            start = time.perf_counter()
            epochs = fn(hp, "cuda").train_epoch_s
            epoch_s = statistics.median(epochs[1:])
            progress(
                f"{label} | {impl}: {time.perf_counter() - start:.1f} s in all (data set-up included), "
                f"epochs {', '.join(f'{t:.2f}' for t in epochs)} s"
            )
            result["rows"].append(
                {
                    "config": label,
                    "impl": impl,
                    "batch_size": hp.batch_size,
                    "epoch_s": epoch_s,
                    "samples_per_s": hp.n_train / epoch_s,
                    "gflops": hp.n_train * flops / epoch_s / 1e9,
                }
            )
            torch.cuda.empty_cache()
    return result
