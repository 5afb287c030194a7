"""Tests for bugs the other tests let through: each one kills a mutant of
tools/mutation_test.py that survived (named in the test's docstring).

They check behaviour a user sees, not the mutant's text: the mutant is only how the
gap was found.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import viz
from tinycnn.exercises import check_dense_backward
from tinycnn.layers import BatchNormalization, Dense, Flatten, Layer


# ---- viz.occlusion_map: the last square flush with the edge ---------------------------------
def corner_block_model():
    """Class 1's score is 4 times the mean brightness of the 4x4 block in the bottom-right
    corner (rows and columns 6-9) of a 10x10 image; class 0's is 0."""
    kernel = np.zeros((10, 10, 1, 2), "float32")
    kernel[6:, 6:, 0, 1] = 4.0 / 16
    model = tinycnn.Sequential([Flatten(input_shape=(10, 10, 1)), Dense(2)], seed=0)
    model.set_weights([kernel.reshape(-1, 2), np.zeros(2, "float32")])
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))  # softmax of the scores (0, z), class 1


def test_occlusion_covers_the_edge_the_stride_skips():
    """mutant viz-occlusion-no-last-edge. Patch 4, stride 4 on 10 pixels: squares start at
    0 and 4, and a last one at 6, flush with the edge, covers rows (columns) 8 and 9."""
    x = np.zeros((10, 10, 1), "float32")
    x[6:, 6:] = 1.0
    drop = viz.occlusion_map(corner_block_model(), x, 1, patch=4, stride=4, fill=0.0)
    assert drop.shape == (10, 10) and np.isfinite(drop).all()
    # pixel (9, 9): only the square at (6, 6) covers it, and it hides the whole block
    np.testing.assert_allclose(drop[9, 9], sigmoid(4.0) - 0.5, rtol=1e-5)
    # pixel (5, 5): only the square at (4, 4), which hides 4 of the block's 16 pixels
    np.testing.assert_allclose(drop[5, 5], sigmoid(4.0) - sigmoid(3.0), rtol=1e-5)
    assert drop[0, 0] == 0.0  # the square at (0, 0) misses the block


# ---- exercises: a NaN in a student's result --------------------------------------------------
@pytest.mark.parametrize("where", [0, -1])
def test_a_nan_in_the_result_fails_the_check(where):
    """mutant ex-nan-passes: |NaN - expected| / tol > 1 is False, so a comparison that
    does not treat NaN as wrong passes a result full of NaNs."""

    def dense_backward_with_a_nan(x, kernel, dy):
        dbias = dy.sum(axis=0)
        dbias[where] = np.nan
        return dy @ kernel.T, x.T @ dy, dbias

    report = check_dense_backward(dense_backward_with_a_nan, seed=0)
    assert not report.ok
    assert report.passed == 0  # the first case already has the NaN
    assert "dbias is wrong" in str(report) and "got:      nan" in str(report)


def test_a_result_of_all_nans_fails_the_check():
    """mutant ex-nan-passes, the blunt version: every output NaN."""

    def all_nan(x, kernel, dy):
        return (
            np.full(x.shape, np.nan),
            np.full(kernel.shape, np.nan),
            np.full(kernel.shape[1], np.nan),
        )

    report = check_dense_backward(all_nan, seed=1)
    assert not report.ok and "dx is wrong" in str(report)


# ---- BatchNormalization(scale=False): beta without gamma --------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_without_scale_is_gamma_one(training, float64):
    """mutant bn-no-scale-aliases-xhat: with ``scale=False`` the output must not be the
    cached xhat itself, or ``y += beta`` shifts what backward reads. The layer is then
    the same as one with gamma = 1: forward, dL/dx and dL/dbeta. (The gradient checks
    of tests/layers/test_batch_normalization.py build center and scale together, and
    start beta at 0, where the shift is invisible.)"""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 3, 5)) * 2.0 + 0.5
    dy = rng.standard_normal(x.shape)
    beta, moving_mean = rng.standard_normal(5), rng.standard_normal(5)
    moving_variance = rng.uniform(0.5, 2.0, 5)
    plain, reference = BatchNormalization(scale=False), BatchNormalization()
    plain.build(x.shape[1:])
    reference.build(x.shape[1:])
    plain.set_weights([beta, moving_mean, moving_variance])
    reference.set_weights([np.ones(5), beta, moving_mean, moving_variance])
    np.testing.assert_allclose(
        plain.forward(x, training), reference.forward(x, training), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(plain.backward(dy), reference.backward(dy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plain.grads["beta"], reference.grads["beta"], rtol=1e-12)
    report = tinycnn.gradcheck(plain, x, training=training)
    assert report.ok and report.max_rel_error < 1e-6, str(report)


# ---- gradcheck and a weight the forward pass replaces ------------------------------------------
class CountingScale(Layer):
    """y = x * scale + steps: ``steps`` (not trainable) counts the training forward passes,
    and the forward replaces the array (``self.params["steps"] = ... + 1``), as a student
    writes it, rather than updating it in place as BatchNormalization does."""

    def build(self, input_shape):
        self.add_weight("scale", (input_shape[-1],), initializer="ones")
        self.add_weight("steps", (1,), initializer="zeros", trainable=False)

    def forward(self, x, training=False):
        if training:
            self.params["steps"] = self.params["steps"] + 1.0
        self.cache = x
        return x * self.params["scale"] + self.params["steps"]

    def backward(self, dy):
        self.grads["scale"] = (dy * self.cache).reshape(-1, dy.shape[-1]).sum(axis=0)
        return dy * self.params["scale"]


def test_gradcheck_puts_back_a_weight_the_forward_replaced(float64):
    """mutant gc-no-rebind-non-trainable: restoring only the old array in place leaves the
    new one in params, so every evaluation sees one more step (y moves by 1 between the
    two sides of a central difference) and the layer ends with steps != 0."""
    layer = CountingScale()
    x = np.random.default_rng(0).standard_normal((3, 4))
    layer.build(x.shape[1:])
    report = tinycnn.gradcheck(layer, x, training=True)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    assert layer.params["steps"].tolist() == [0.0]  # the caller's layer as it was
