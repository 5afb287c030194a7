"""Adam (Kingma & Ba, 2015) with Keras' defaults and Keras' placement of epsilon."""

from __future__ import annotations

import math

from .. import kernels
from ..backend import get_array_module
from .base import Optimizer


class Adam(Optimizer):
    """At step t, for each weight w with gradient g:

        m <- beta_1 * m + (1 - beta_1) * g              first moment (mean of g)
        v <- beta_2 * v + (1 - beta_2) * g^2            second moment (mean of g^2)
        lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)  bias correction folded into lr
        w <- w - lr_t * m / (sqrt(v) + epsilon)

    This is Keras' form: epsilon is added to sqrt(v), not to the bias-corrected
    sqrt(v / (1 - beta_2^t)) as in PyTorch, so the two differ slightly while
    1 - beta_2^t is small (PyTorch matches with eps_t = epsilon / sqrt(1 - beta_2^t)).
    """

    slots = ("m", "v")  # the two moments, kept per parameter

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        lr: float | None = None,
    ):
        super().__init__(lr if lr is not None else learning_rate)
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {beta!r}.")
        if not (math.isfinite(float(epsilon)) and float(epsilon) >= 0):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}.")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def step_learning_rate(self):
        """lr_t: the bias correction folded into the learning rate. It depends only on
        the step number, so the base class computes it once per step."""
        t = self.iterations  # this step's number: 1 at the first step
        return self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)

    def update_param(self, param, grad, state, lr):
        if "m" not in state:
            xp = get_array_module(param)
            state["m"] = xp.zeros_like(param)
            state["v"] = xp.zeros_like(param)
        m, v = state["m"], state["v"]
        if kernels.is_fast(param):  # the lines below, compiled: one pass (see its docstring)
            kernels.cpu_numba.adam_update(
                param, grad, m, v, lr, self.beta_1, self.beta_2, self.epsilon
            )
            return
        # The reference: in place, so that no full-size temporary outlives the step, and
        # every constant in the parameter's precision (a float64 one would turn float32
        # arithmetic into float64).
        xp, scalar = get_array_module(param), param.dtype.type
        one, b1, b2 = scalar(1.0), scalar(self.beta_1), scalar(self.beta_2)
        m *= b1
        m += (one - b1) * grad  # m <- b1 m + (1 - b1) g
        v *= b2
        v += (one - b2) * (grad * grad)  # v <- b2 v + (1 - b2) g^2
        denom = xp.sqrt(v)
        denom += scalar(self.epsilon)
        param -= scalar(lr) * (m / denom)  # w <- w - lr_t m / (sqrt(v) + epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
