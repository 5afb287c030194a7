"""Dropout (inverted): zero a fraction ``rate`` of the units while training."""

from __future__ import annotations

from .. import backend
from .base import Layer


class Dropout(Layer):
    """During training, keep each unit with probability 1 - rate and scale it by 1 / (1 - rate),
    so that the expected output equals the input; at inference, pass the input through.

    Args:
        rate: fraction of units dropped, in [0, 1).
        seed: seed of the mask generator (on the layer's backend).
    """

    def __init__(self, rate: float, seed=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}.")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None

    def _forward(self, x, training):
        if not training or self.rate == 0.0:
            self.cache = False  # marks "identity" for the backward pass
            return x
        xp = backend.get_array_module(x)
        if self._rng is None:
            self._rng = xp.random.default_rng(self.seed)
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.rate
        mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        self.cache = mask
        return x * mask

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        return dy if self.cache is False else dy * self.cache

    def to(self, name):
        self._rng = None
        return super().to(name)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
