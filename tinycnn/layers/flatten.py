"""Flatten: ``(N, H, W, C)`` -> ``(N, H * W * C)``, in C order as Keras (channels-last)."""

from __future__ import annotations

import math

from .base import Layer


class Flatten(Layer):
    """Reshape each sample to a vector; the order is row-major over (H, W, C) like Keras."""

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def _forward(self, x, training):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy, input_grad):
        return dy.reshape(self.cache) if input_grad else None
