"""Dropout: identity at inference, inverted scaling and a reproducible mask in training."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Dropout


class FixedMaskDropout(Dropout):
    """Dropout that draws the same mask on every forward (its generator is re-seeded),
    so that a numerical gradient check sees one fixed function of x."""

    def _forward(self, x, training):
        self._rng = None
        return super()._forward(x, training)


def test_inference_is_identity(backend_name):
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    layer = Dropout(0.5, seed=0)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x), training=False))
    np.testing.assert_array_equal(y, x)
    dy = np.random.default_rng(1).standard_normal((4, 5)).astype("float32")
    np.testing.assert_array_equal(tinycnn.to_numpy(layer.backward(tinycnn.to_backend(dy))), dy)


def test_training_mask_scaling_and_rate():
    x = np.ones((200, 100), dtype="float32")
    layer = Dropout(0.3, seed=1)
    y = layer.forward(x, training=True)
    kept = y != 0
    # kept units are scaled by 1 / (1 - rate) so the expected value is unchanged
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.01  # 20,000 draws: std of the mean ~ 0.003
    assert abs(y.mean() - 1.0) < 0.015


def test_training_backward_is_mask_times_dy(float64, backend_name):
    x = tinycnn.to_backend(np.random.default_rng(2).standard_normal((6, 7)))
    layer = Dropout(0.4, seed=3)
    y = tinycnn.to_numpy(layer.forward(x, training=True))
    mask = tinycnn.to_numpy(layer.cache)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    np.testing.assert_allclose(y, tinycnn.to_numpy(x) * mask, rtol=1e-15)
    dy = np.random.default_rng(4).standard_normal((6, 7))
    dx = tinycnn.to_numpy(layer.backward(tinycnn.to_backend(dy)))
    np.testing.assert_array_equal(dx, mask * dy)


def test_same_seed_same_mask_and_masks_change_between_steps():
    x = np.ones((8, 8), dtype="float32")
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first_a, first_b = a.forward(x, training=True), b.forward(x, training=True)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, a.forward(x, training=True))


def test_rate_zero_is_identity_in_training():
    x = np.random.default_rng(5).standard_normal((3, 4)).astype("float32")
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


def test_config():
    assert Dropout(0.25, seed=3, name="dropout").get_config() == {
        "name": "dropout",
        "rate": 0.25,
        "seed": 3,
    }


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 3, 2)])
def test_gradcheck_inference(shape, float64, backend_name):
    x = tinycnn.to_backend(np.random.default_rng(6).standard_normal(shape))
    report = tinycnn.gradcheck(Dropout(0.5, seed=0, name="dropout"), x, training=False)
    print(report)
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_gradcheck_training_with_a_fixed_mask(rate, float64, backend_name):
    x = tinycnn.to_backend(np.random.default_rng(7).standard_normal((5, 8)))
    layer = FixedMaskDropout(rate, seed=1, name="dropout")
    report = tinycnn.gradcheck(layer, x, training=True)
    print(report)
    assert report.max_rel_error < 1e-6, str(report)
    assert 0 < float((tinycnn.to_numpy(layer.cache) == 0).mean()) < 1  # some dropped, some kept
