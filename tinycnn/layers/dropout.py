"""Dropout (inverted): zero a fraction ``rate`` of the units while training."""

from __future__ import annotations

import math

from .. import backend
from ..initializers import make_rng
from .base import Layer

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, SplitMix64's step


def random_bits(xp, key: int, shape):
    """32 random bits per element of ``shape`` (a uint32 array), a function of ``key`` alone.

    Counter-based, like the Philox generators of GPU libraries: the i-th 64-bit number
    is SplitMix64's mix of ``key + (i + 1) * golden`` (Steele, Lea & Flood, 2014), so a
    mask is recomputed from its key on either backend, bit for bit, with no generator
    state to keep, save or move. Each 64-bit number serves two elements.
    """
    n = math.prod(shape)
    z = xp.arange(1, (n + 1) // 2 + 1, dtype=xp.uint64)  # uint64 arithmetic wraps around
    z *= xp.uint64(_GOLDEN)
    z += xp.uint64(key)
    z ^= z >> xp.uint64(30)
    z *= xp.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> xp.uint64(27)
    z *= xp.uint64(0x94D049BB133111EB)
    z ^= z >> xp.uint64(31)
    return z.view(xp.uint32)[:n].reshape(shape)


class Dropout(Layer):
    """During training, keep each unit with probability 1 - rate and scale it by 1 / (1 - rate),
    so that the expected output equals the input; at inference, pass the input through.

    The mask of a training step is drawn from a 64-bit key. Inside ``fit`` the key
    comes from (the fit's seed, epoch, step, this layer's index), or (``seed``, epoch,
    step, index) when the layer has a seed, as the batch order does: a run resumed
    from a checkpoint draws the very masks of an uninterrupted one. Outside ``fit``
    each call draws a new key from a generator seeded by ``seed``, or, for a layer
    without one, by (the model's seed, this layer's index): ``Sequential(seed=0)``
    makes ``train_on_batch`` reproducible too. Only a layer without any seed, in a
    model without one, draws fresh randomness.

    Args:
        rate: fraction of units dropped, in [0, 1).
        seed: makes the masks reproducible from the layer alone (None: from fit's seed,
            or outside fit from the model's).
    """

    def __init__(self, rate: float, seed=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}.")
        self.rate = float(rate)
        self.seed = seed
        self.noise_key = None  # (fit seed, epoch, step, index): set by fit before each step
        self.model_seed = None  # [model seed, index]: set by Sequential.add
        self._key_rng = None  # outside fit: a host generator of keys

    def _mask_key(self) -> int:
        if self.noise_key is not None:
            fit_seed, epoch, step, index = self.noise_key
            root = fit_seed if self.seed is None else self.seed
            rng = make_rng([root, epoch, step, index])  # always 4 numbers: no two keys alike
        else:
            if self._key_rng is None:
                self._key_rng = make_rng(self.seed if self.seed is not None else self.model_seed)
            rng = self._key_rng
        return int(rng.integers(0, 2**64, dtype="uint64"))

    def _forward(self, x, training):
        if not training or self.rate == 0.0:
            self.cache = False  # marks "identity" for the backward pass
            return x
        xp = backend.get_array_module(x)
        threshold = min(round(self.rate * 2**32), 2**32 - 1)  # P(bits >= threshold) = 1 - rate
        keep = random_bits(xp, self._mask_key(), x.shape) >= xp.uint32(threshold)
        mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        self.cache = mask
        return x * mask

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        return dy if self.cache is False else dy * self.cache

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
