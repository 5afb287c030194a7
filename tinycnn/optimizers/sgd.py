"""Stochastic gradient descent, with optional (Nesterov) momentum, as Keras defines it."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer


class SGD(Optimizer):
    """Plain:     w <- w - lr * g
    Momentum:  v <- momentum * v - lr * g;   w <- w + v
    Nesterov:  v <- momentum * v - lr * g;   w <- w + momentum * v - lr * g

    (PyTorch writes the same with b = -v / lr: b <- momentum * b + g; w <- w - lr * b.)
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        lr: float | None = None,
    ):
        super().__init__(lr if lr is not None else learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    @property
    def slots(self):
        """The velocity is kept per parameter only with momentum."""
        return ("velocity",) if self.momentum else ()

    def update_param(self, param, grad, state, lr):
        lr = param.dtype.type(lr)  # in the parameter's precision, as every constant here
        if self.momentum == 0.0:
            param -= lr * grad
            return
        xp = get_array_module(param)
        if "velocity" not in state:
            state["velocity"] = xp.zeros_like(param)
        v = state["velocity"]
        v *= param.dtype.type(self.momentum)
        v -= lr * grad
        if self.nesterov:
            param += param.dtype.type(self.momentum) * v - lr * grad
        else:
            param += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
