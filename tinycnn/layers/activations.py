"""Activations: the ReLU layer and the ``activation=`` option of Conv2D and Dense."""

from __future__ import annotations

from .. import kernels
from .base import Layer

ACTIVATIONS = (None, "linear", "relu")


def check_activation(activation, layer_type: str) -> str | None:
    """Normalise ``activation`` ("linear" means none) and reject unknown names."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{layer_type}: unknown activation {activation!r}; expected one of {ACTIVATIONS}."
        )
    return None if activation == "linear" else activation


class ReLU(Layer):
    """y = max(x, 0), element-wise; any input shape ``(N, ...)``."""

    def _forward(self, x, training):
        y = kernels.relu_forward(x.copy())  # copy: never overwrite the caller's array
        self.cache = y
        return y

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        return kernels.relu_backward(dy, self.cache)
