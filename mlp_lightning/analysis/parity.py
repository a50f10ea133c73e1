"""Are the twins the same model? Step-level evidence.

``step_parity`` drives both sides one optimizer step at a time on identical batches
(the Lightning module's ``training_step`` and its ``configure_optimizers`` SGD, and the
twin's ``train_step``) and reports the first step where the parameters part by more
than a tolerance: the tool to reach for when run-level parity (``compare.py``) breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlp_lightning.analysis.compare import WEIGHT_TOLERANCE
from mlp_lightning.core.data import BatchOrder, load_splits
from mlp_lightning.core.dropout import keep_packed
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.weights import PARAM_NAMES, init_weights


@dataclass(frozen=True)
class StepReport:
    """Per optimizer step (index s is step s + 1): how far apart the two sides are."""

    max_param_diff: np.ndarray  # (S,) largest |twin - torch| over all parameters after the step
    worst_param: list[str]  # (S,) the parameter holding it
    loss_diff: np.ndarray  # (S,) |twin - torch| of the step's training loss
    tolerance: float

    @property
    def steps(self) -> int:
        return len(self.max_param_diff)

    @property
    def first_divergence(self) -> int | None:
        """The first (1-based) step whose parameters differ by more than the tolerance."""
        beyond = np.flatnonzero(self.max_param_diff > self.tolerance)
        return int(beyond[0]) + 1 if len(beyond) else None

    def summary(self) -> str:
        worst = int(np.argmax(self.max_param_diff))
        first = self.first_divergence
        verdict = (
            f"first divergence beyond {self.tolerance:g} at step {first} "
            f"({self.worst_param[first - 1]} off by {self.max_param_diff[first - 1]:.3g})"
            if first is not None
            else f"no divergence beyond {self.tolerance:g} in {self.steps} steps"
        )
        return (
            f"{verdict}; largest parameter difference {self.max_param_diff[worst]:.3g} "
            f"({self.worst_param[worst]}, step {worst + 1}), "
            f"largest loss difference {self.loss_diff.max():.3g}"
        )


def step_parity(
    hp: HParams,
    steps: int | None = None,
    dtype: type[np.floating] = np.float32,
    tolerance: float = WEIGHT_TOLERANCE,
    stop_at_divergence: bool = False,
) -> StepReport:
    """Both sides from the shared initial weights, over the shared batch order, ``steps`` steps.

    ``steps`` defaults to the whole run (``max_epochs`` epochs). ``dtype`` float64 runs
    both sides in double precision, where they agree to ~1e-12.
    """
    import torch

    from mlp_lightning.lightning.callbacks import torch_thread_count
    from mlp_lightning.lightning.lit_module import MLPClassifier
    from mlp_lightning.numpy_twin.step import Workspace, train_step

    Xtr, ytr, _, _ = load_splits(hp)
    Xtr = Xtr.astype(dtype)
    initial = init_weights(hp.dim, hp.hidden_dim, hp.num_classes, hp.seed)
    params = {name: value.astype(dtype) for name, value in initial.items()}
    ws = Workspace.allocate(hp.batch_size, params, dtype)

    module = MLPClassifier.from_hparams(hp).to(getattr(torch, np.dtype(dtype).name))
    module.train()
    optimizer = module.configure_optimizers()
    x_all, y_all = torch.from_numpy(Xtr), torch.from_numpy(ytr)

    order = BatchOrder(len(Xtr), hp.batch_size, hp.seed)
    total = hp.max_epochs * len(order) if steps is None else steps
    param_diff, worst, loss_diff = [], [], []
    epoch = 0
    # this model is too small to gain from a second thread, and on a busy 2-core machine its
    # spin-waiting made each 300-step comparison take ~10 s instead of ~1 s
    with torch_thread_count(1):
        while len(param_diff) < total:
            order.set_epoch(epoch)
            for i, idx in enumerate(order):
                twin_loss, _ = train_step(params, Xtr[idx], ytr[idx], hp, ws, epoch, idx)

                index = torch.from_numpy(idx)
                batch = (x_all[index], y_all[index])
                if hp.dropout > 0:  # the same masks as the twin's, as the data module ships them
                    batch += (torch.from_numpy(keep_packed(hp.seed, epoch, idx, hp.hidden_dim, hp.dropout)),)
                optimizer.zero_grad()
                loss = module.training_step(batch, i)
                loss.backward()
                optimizer.step()

                diffs = {name: _max_abs(params[name], getattr(module.model, name)) for name in PARAM_NAMES}
                name = max(diffs, key=diffs.get)
                param_diff.append(diffs[name])
                worst.append(name)
                loss_diff.append(abs(float(twin_loss) - loss.item()))
                if len(param_diff) == total or (stop_at_divergence and diffs[name] > tolerance):
                    total = len(param_diff)
                    break
            epoch += 1
    return StepReport(np.array(param_diff), worst, np.array(loss_diff), tolerance)


def _max_abs(array: np.ndarray, tensor) -> float:
    return float(np.max(np.abs(array.astype(np.float64) - tensor.detach().double().numpy())))
