"""The same seeds give the same weights, bit for bit, whatever the thread count.

The fast CPU kernels add up gradients over the images of a batch on several
threads. If the threads each summed their own part and then added the parts
together, the order of the additions, and so the rounding, would depend on how
many threads there are: before this was fixed, 1 and 2 threads trained weights
4e-5 apart after one epoch, 0.03 after two. Now the batch is cut into shares by
its size alone, and the shares' sums are added in a fixed order (cpu_conv._shares,
cpu_numba.BIAS_SUM_ROWS), so the thread count only decides who computes what.

Two checks: the gradient kernels in this process with 1 and 2 numba threads, and a
few training steps of the seed network in two fresh processes, one started with
every thread count (numba, OpenMP, OpenBLAS) at 1 and one with all at 2.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from tinycnn import kernels

cpu_conv = pytest.importorskip(
    "tinycnn.kernels.cpu_conv", reason="numba or threadpoolctl is not installed"
)


def _with_threads(count: int, fn):
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        return fn()
    finally:
        numba.set_num_threads(previous)


def _assert_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(x, y), f"max difference {np.abs(x - y).max()}"


# 100 images: 8 shares of 12-13, each 3 blocks of 4-5 at the seed network's block
# sizes; 37: 4 shares of 9-10; with 1 image per block, many blocks per share
@pytest.mark.parametrize("n", [100, 37])
@pytest.mark.parametrize("block_bytes", ["default", "1 image per block"])
def test_conv_gradients_do_not_depend_on_the_thread_count(n, block_bytes, monkeypatch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with fewer than 2 threads")
    if block_bytes != "default":
        monkeypatch.setattr(cpu_conv, "BLOCK_BYTES", 1)
        monkeypatch.setattr(cpu_conv, "WINOGRAD_BLOCK_BYTES", 1)
    rng = np.random.default_rng(0)
    # the seed network's two convolutions: im2col (1 channel in), Winograd (64 in)
    for shape, c_in in (((n, 28, 28, 1), 1), ((n, 13, 13, 64), 64)):
        x = rng.standard_normal(shape, dtype=np.float32)
        kernel = 0.1 * rng.standard_normal((3, 3, c_in, 64), dtype=np.float32)
        bias = 0.1 * rng.standard_normal(64, dtype=np.float32)
        out, argmax = kernels.conv_relu_pool_forward(x, kernel, bias, 2, 2)
        dy = rng.standard_normal(out.shape, dtype=np.float32)

        def grads(x=x, kernel=kernel, dy=dy, out=out, argmax=argmax):
            return kernels.conv_relu_pool_backward(
                x, kernel, dy, out, argmax, 2, 2, input_grad=True
            )

        _assert_identical(_with_threads(1, grads), _with_threads(2, grads))

        y = kernels.conv2d_forward(x, kernel, bias, stride=1, relu=True)
        dy = rng.standard_normal(y.shape, dtype=np.float32)

        def plain(x=x, kernel=kernel, y=y, dy=dy):
            return kernels.conv2d_backward(
                x, kernel, y, dy, stride=1, relu=True, with_bias=True, input_grad=True
            )

        _assert_identical(_with_threads(1, plain), _with_threads(2, plain))


def test_dense_bias_gradient_does_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with fewer than 2 threads")
    # float64: the sums are float64 inside, and in float32 their last bits would
    # mostly be rounded away (the old per-thread cut passed in float32 by luck)
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((100, 512))
    y = rng.standard_normal((100, 512))

    def grads():
        return kernels.bias_relu_backward(dy, y, relu=True, with_bias=True)

    _assert_identical(_with_threads(1, grads), _with_threads(2, grads))


# Trains the seed network (Adam) for a few steps on fixed random images, batches of
# 100 and a last one of 56: shares of 12-13 and 7 images, several blocks each
TRAIN = """
import sys
import numpy as np
import tinycnn
from tinycnn.training import train_step

rng = np.random.default_rng(0)
x = rng.random((256, 28, 28, 1), dtype=np.float32)
y = rng.integers(0, 10, 256)
model = tinycnn.models.fashion_mnist_cnn(seed=0)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
for start in (0, 100, 200, 0):
    train_step(model, x[start : start + 100], y[start : start + 100])
np.save(sys.argv[1], np.concatenate([w.ravel() for w in model.get_weights()]))
"""


def _train_with_threads(threads: int, out) -> np.ndarray:
    env = dict(os.environ)
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    subprocess.run([sys.executable, "-c", TRAIN, str(out)], env=env, check=True, timeout=300)
    return np.load(out)


def test_training_gives_the_same_weights_with_1_and_2_threads(tmp_path):
    one = _train_with_threads(1, tmp_path / "one.npy")
    two = _train_with_threads(2, tmp_path / "two.npy")
    assert one.dtype == np.float32 and one.shape == (862_410,)
    assert np.abs(one - two).max() == 0.0
