"""Dropout: identity at inference, inverted scaling and a reproducible mask in training."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Dense, Dropout, Flatten
from tinycnn.layers.dropout import random_bits


class FixedMaskDropout(Dropout):
    """Dropout that draws the same mask on every forward (its key is fixed, as fit fixes
    it for one step), so that a numerical gradient check sees one fixed function of x."""

    def _forward(self, x, training):
        self.noise_key = (0, 0, 0, 0)
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
        "trainable": True,
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


# ---- the masks: a function of a key ------------------------------------------------------------
def splitmix64(key: int, i: int) -> int:
    """The i-th output (from 0) of SplitMix64 started at ``key``, in plain Python integers."""
    mask = 2**64 - 1
    z = (key + (i + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_random_bits_are_splitmix64_two_elements_per_number(backend_name):
    key = 0xDEADBEEF12345678
    bits = tinycnn.to_numpy(random_bits(tinycnn.backend.xp(), key, (3, 5)))
    assert bits.dtype == np.uint32 and bits.shape == (3, 5)
    expected = []
    for i in range(8):  # 15 elements take 8 numbers: low half first (little-endian view)
        z = splitmix64(key, i)
        expected += [z & 0xFFFFFFFF, z >> 32]
    np.testing.assert_array_equal(bits.reshape(-1), np.array(expected[:15], dtype=np.uint32))


def test_random_bits_look_uniform():
    bits = random_bits(np, 12345, (200_000,)).astype(np.float64) / 2**32
    assert abs(bits.mean() - 0.5) < 0.003  # std of the mean: 0.29 / sqrt(2e5) = 0.00065
    counts = np.bincount((bits * 16).astype(int), minlength=16)
    assert counts.min() > 12_000 and counts.max() < 13_000  # 12,500 expected per bin


def test_in_fit_the_mask_is_fixed_by_seed_epoch_step_and_layer_index():
    x = np.ones((16, 16), dtype="float32")

    def mask(layer_seed, key):
        layer = Dropout(0.5, seed=layer_seed)
        layer.noise_key = key
        return layer.forward(x, training=True)

    base = mask(None, (7, 2, 3, 1))
    np.testing.assert_array_equal(base, mask(None, (7, 2, 3, 1)))  # same key, same mask
    for other in [(8, 2, 3, 1), (7, 3, 3, 1), (7, 2, 4, 1), (7, 2, 3, 2)]:
        assert not np.array_equal(base, mask(None, other)), other
    # a layer seed replaces the fit seed: its masks no longer depend on the fit's seed
    np.testing.assert_array_equal(mask(5, (7, 2, 3, 1)), mask(5, (8, 2, 3, 1)))
    assert not np.array_equal(mask(5, (7, 2, 3, 1)), mask(5, (7, 2, 4, 1)))
    assert not np.array_equal(mask(5, (7, 2, 3, 1)), base)


def test_outside_fit_the_masks_follow_the_layer_seed_whatever_happened_in_fit():
    x = np.ones((8, 8), dtype="float32")
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    b.noise_key = (1, 0, 0, 0)
    b.forward(x, training=True)  # a step inside fit does not advance the layer's own keys
    b.noise_key = None
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_a_model_seed_makes_dropout_reproducible_outside_fit_too():
    """Sequential(seed=0) + fit(seed=0), then train_on_batch: twice the same weights. A
    Dropout without a seed takes (the model's seed, its index) outside fit (issue 12)."""

    def run(model_seed):
        model = tinycnn.Sequential(
            [Flatten(input_shape=(4, 4, 1)), Dense(16), Dropout(0.5), Dense(3)], seed=model_seed
        )
        model.compile(optimizer="sgd")
        rng = np.random.default_rng(0)
        x, y = rng.random((12, 4, 4, 1), dtype=np.float32), rng.integers(0, 3, 12)
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=0)
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        return [*model.get_weights(), model.forward(x, training=True)]

    first, second = run(0), run(0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
