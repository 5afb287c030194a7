"""The images an ``epoch_time.py`` worker trains on: seeded random ones, or Fashion-MNIST.

A worker makes only the images it uses (warm-up plus timed steps). The same seed
and sizes give the same arrays, so every framework's worker at a given batch size
trains on identical batches.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

import tinycnn


class Data(NamedTuple):
    """Training images and labels, and test images: float32 NHWC in [0, 1], int64.

    x: (n_train, 28, 28, 1) float32, y: (n_train,) int64, x_test: (n_test, 28, 28, 1) float32.
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray


def synthetic_data(seed: int, n_train: int, n_test: int) -> Data:
    """Random images in [0, 1) and random labels, shaped like Fashion-MNIST.

    Generating them takes milliseconds. ``random(dtype=float32)`` writes float32
    directly: no float64 temporary that would inflate the peak memory.
    """
    rng = np.random.default_rng(seed)
    return Data(
        x=rng.random((n_train, 28, 28, 1), dtype=np.float32),
        y=rng.integers(0, 10, n_train, dtype=np.int64),
        x_test=rng.random((n_test, 28, 28, 1), dtype=np.float32),
    )


def prepare_in_chunks(images, chunk: int = 5000):
    """``prepare_images`` a chunk at a time, so no full-size temporary is made.

    images: (n, 28, 28) uint8 -> (n, 28, 28, 1) float32 in [0, 1].
    """
    out = np.empty((*images.shape, 1), dtype=np.float32)
    for start in range(0, len(images), chunk):
        out[start : start + chunk] = tinycnn.preprocessing.prepare_images(
            images[start : start + chunk]
        )
    return out


def real_data(n_train: int, n_test: int) -> Data:
    """The first images of Fashion-MNIST, scaled to [0, 1] float32 with a channel axis."""
    from tinycnn.datasets import fashion_mnist

    (x_train, y_train), (x_test, _) = fashion_mnist.load_data(verbose=False)
    return Data(
        x=prepare_in_chunks(x_train[:n_train]),
        y=y_train[:n_train].astype(np.int64),
        x_test=prepare_in_chunks(x_test[:n_test]),
    )


def load_data(args, n_train: int, n_test: int) -> Data:
    """``n_train`` training and ``n_test`` test images: Fashion-MNIST with ``args.real``,
    else random ones from ``args.seed``."""
    if not args.real:
        return synthetic_data(args.seed, n_train, n_test)
    try:
        return real_data(n_train, n_test)
    except FileNotFoundError as err:
        sys.exit(f"--real: Fashion-MNIST is not available here.\n{err}")
