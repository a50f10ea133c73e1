"""What the numbers were measured on, and the float32 GEMM rate that bounds them."""

from __future__ import annotations

import os
import platform
import statistics
import time

GEMM_N = 2048  # the 2048^3 float32 matmul


def gemm_flops(n: int = GEMM_N) -> float:
    return 2.0 * n**3


def useful_flops_per_sample(dim: int, hidden_dim: int, num_classes: int) -> float:
    """Training FLOPs per sample that any implementation must spend: 4·D·H + 6·H·C.

    Forward X @ W1 and backward X.T @ dZ1 are 2·D·H each; the second layer's forward,
    dW2 and dH are 2·H·C each. dX is not needed. Elementwise work is not counted.
    """
    return 4.0 * dim * hidden_dim + 6.0 * hidden_dim * num_classes


def numpy_gemm_gflops(repeats: int, n: int = GEMM_N) -> float:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b, out = a.copy(), np.empty_like(a)
    return gemm_flops(n) / _median_time(lambda: np.matmul(a, b, out=out), repeats) / 1e9


def torch_gemm_gflops(repeats: int, n: int = GEMM_N, device: str = "cpu") -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b, out = a.clone(), torch.empty_like(a)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def matmul() -> None:
        torch.matmul(a, b, out=out)
        sync()

    return gemm_flops(n) / _median_time(matmul, repeats) / 1e9


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_description() -> str:
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel (architecture), threads."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # the optional `bench` extra is not installed
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (kernel unknown: pip install threadpoolctl)"

    parts = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernel, "
        f"{i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "; ".join(parts) or "unknown"


def describe() -> dict[str, str]:
    """The machine, as one dict of strings for the report's header."""
    import numpy as np
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical (torch uses {torch.get_num_threads()} threads)",
        "numpy BLAS": blas_description(),
        "torch BLAS": "MKL" if torch.backends.mkl.is_available() else "non-MKL",
        "versions": f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}",
        "load average at start": f"{load[0]:.2f} (1 min), {load[1]:.2f} (5 min)",
    }
