"""Independent random streams derived from the one ``--seed``.

Each consumer gets its own NumPy generator, keyed by a stream id, so adding a draw
in one place never shifts the numbers of another. The data stream is the plain
``default_rng(seed)`` so that the blobs equal the reference notebook's bit for bit.
"""

from __future__ import annotations

import numpy as np

_INIT_WEIGHTS = 1
_BATCH_ORDER = 2
# 3 was the twin's dropout generator: the masks are now core/dropout.py's counter stream


def data_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def init_weights_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([_INIT_WEIGHTS, seed])


def batch_order_rng(seed: int, epoch: int) -> np.random.Generator:
    # a fresh generator per epoch: the order of epoch e never depends on epochs < e
    return np.random.default_rng([_BATCH_ORDER, seed, epoch])
