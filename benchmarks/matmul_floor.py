"""The matmul floor: only the matrix multiplies of one training step, and nothing else.

A reference row for ``epoch_time.py``, not a framework: the im2col GEMMs of the two
convolutions, the two dense layers, and their backward products (dW = X^T dY,
dX = dY W^T; conv1 needs no dX), timed with NumPy's BLAS (CuPy on ``--backend
cupy``) on preallocated arrays. A library that does this arithmetic on this BLAS
cannot be faster; the gap shows what im2col, pooling, ReLU, Adam and Python cost
on top. (tinycnn does less of this arithmetic: Winograd and the pooled-region
crop, docs/performance.md.) It offers ``step``, ``sync`` and ``info`` like the
runners in ``runners.py``, but no ``predict``.
"""

from __future__ import annotations

import numpy as np
from data import Data

import tinycnn

FLOOR = "matmul floor"  # the floor's name in tables and JSON; "floor" on the command line


def floor_shapes(batch_size: int) -> list[tuple[str, tuple, tuple, bool]]:
    """The matrix multiplies of one training step: (what, a shape, b shape, a is transposed).

    For ``transposed`` the product is ``a.T @ b`` with ``a`` stored as given (dW = X^T dY).
    """
    B = batch_size
    conv1 = (B * 26 * 26, 3 * 3 * 1)  # im2col rows: 676 output pixels per image
    conv2 = (B * 11 * 11, 3 * 3 * 64)  # 121 output pixels per image
    return [
        ("conv1 forward", conv1, (9, 64), False),
        ("conv2 forward", conv2, (576, 64), False),
        ("dense forward", (B, 1600), (1600, 512), False),
        ("dense_1 forward", (B, 512), (512, 10), False),
        ("conv1 dW", conv1, (conv1[0], 64), True),
        ("conv2 dW", conv2, (conv2[0], 64), True),
        ("conv2 dX", (conv2[0], 64), (64, 576), False),
        ("dense dW", (B, 1600), (B, 512), True),
        ("dense dX", (B, 512), (512, 1600), False),
        ("dense_1 dW", (B, 512), (B, 10), True),
        ("dense_1 dX", (B, 10), (10, 512), False),
    ]


class MatmulFloor:
    """Only the GEMMs of one training step, on preallocated arrays of tinycnn's backend."""

    name = FLOOR

    def __init__(self, batch_size: int, data: Data | None, args):
        xp = tinycnn.backend.xp()
        rng = np.random.default_rng(args.seed)
        self.products = []
        for _, a_shape, b_shape, transposed in floor_shapes(batch_size):
            a = xp.asarray(rng.random(a_shape, dtype=np.float32))
            b = xp.asarray(rng.random(b_shape, dtype=np.float32))
            a = a.T if transposed else a
            out = xp.empty((a.shape[0], b.shape[1]), dtype=np.float32)
            self.products.append((a, b, out))
        self.xp = xp
        self.info = {"gemms": [what for what, *_ in floor_shapes(batch_size)]}

    def step(self, j: int) -> None:
        for a, b, out in self.products:
            self.xp.matmul(a, b, out=out)

    def sync(self) -> None:
        tinycnn.backend.synchronize()
