"""The plain-PyTorch reference: the notebook's training loop on the project's data and weights.

Whole-process reference for ``scripts/fit.py``: the same model (``TwoLayerMLP``), the
same blobs, initial weights and per-epoch batch order, SGD with weight decay on all
parameters as the notebook has it, and the notebook's per-epoch evaluation of both
splits. No logging, no checkpoints: what a hand-written script costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mlp_lightning.core.data import BatchOrder, load_splits  # noqa: E402
from mlp_lightning.core.hparams import HParams, flag_names  # noqa: E402
from mlp_lightning.core.report import epoch_line, should_report  # noqa: E402
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS  # noqa: E402
from mlp_lightning.core.weights import init_weights  # noqa: E402
from mlp_lightning.lightning.model import TwoLayerMLP  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = HParams()
    for name in flag_names():  # --noise absent: the set's own (None); a --data file is cli.py's to read
        value = getattr(defaults, name)
        parser.add_argument(f"--{name}", type=type(value), default=None if name == "noise" else value)
    hp = HParams(**vars(parser.parse_args(argv)))

    torch.manual_seed(hp.seed)
    Xtr, ytr, Xva, yva = (torch.from_numpy(a) for a in load_splits(hp))
    model = TwoLayerMLP(init_weights(hp.dim, hp.hidden_dim, hp.num_classes, hp.seed), hp.dropout)
    opt = torch.optim.SGD(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    order = BatchOrder(len(Xtr), hp.batch_size, hp.seed)

    def eval_split(X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        logits = model(X)
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()

    for epoch in range(hp.max_epochs):
        model.train()
        order.set_epoch(epoch)
        for idx in order:
            opt.zero_grad()
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            (tr_loss, tr_acc), (va_loss, va_acc) = eval_split(Xtr, ytr), eval_split(Xva, yva)
        if should_report(epoch + 1, hp.max_epochs):
            metrics = {TRAIN_LOSS: tr_loss, TRAIN_ACC: tr_acc, VAL_LOSS: va_loss, VAL_ACC: va_acc}
            print(epoch_line(epoch + 1, metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
