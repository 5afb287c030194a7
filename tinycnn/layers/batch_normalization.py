"""BatchNormalization: normalise each channel, then scale and shift it (Ioffe & Szegedy, 2015).

Shapes (channels-last, as Keras; the statistics are over every axis but the last):
    x, y             (N, H, W, C) after Conv2D, or (N, D) after Dense (C = D)
    gamma, beta      (C,)   learned scale and shift (trainable)
    moving_mean      (C,)   running averages of the batch statistics (not trainable:
    moving_variance  (C,)   the layer updates them itself; saved with the model)
    M                       the values per channel: N * H * W (or N)

Forward, training (``training=True`` and ``layer.trainable``), per channel c:
    mean  = x.mean over the M values        var = ((x - mean)**2).mean   (biased: / M)
    xhat  = (x - mean) / sqrt(var + epsilon)
    y     = gamma * xhat + beta
    moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
    moving_variance = momentum * moving_variance + (1 - momentum) * var  (the same biased var)
Forward, inference (or a frozen layer, ``trainable = False``, even inside ``fit``):
    the same, with moving_mean and moving_variance in place of mean and var; nothing updated.

Backward, with sigma = sqrt(var + epsilon) and sums over the M values of a channel:
    dbeta  = sum(dy)                     dgamma = sum(dy * xhat)
    training:  mean and var depend on x too, and the chain rule through them gives
        dx = (gamma / sigma) / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))
    inference: mean and var are constants:
        dx = (gamma / sigma) * dy
The moving averages are not trained, but backward still reports how y depends on
them, for a gradient check of the inference formula: zero in training (y uses the
batch statistics), and in inference
        dmoving_mean = -(gamma / sigma) * sum(dy)
        dmoving_variance = -gamma / (2 sigma**2) * sum(dy * xhat)
The optimizer never applies them (``non_trainable``).

Everything is array arithmetic on ``xp`` (NumPy or CuPy alike); no fast CPU twin.
"""

from __future__ import annotations

import math
import numbers

from .. import backend
from ..backend import get_array_module
from .base import Layer

MOVING = ("moving_mean", "moving_variance")


class BatchNormalization(Layer):
    """Normalise every channel with the batch's statistics while training and with
    their moving averages at inference; Keras's layer, argument for argument.

    Args:
        axis: the channel axis; tinycnn normalises the last one only (channels-last),
            so -1 (Keras's default) or its positive index (3 for (N, H, W, C)).
        momentum: weight of the old value in the moving averages (0.99: each batch
            moves them by 1%).
        epsilon: added to the variance before the square root, so that a constant
            channel does not divide by zero.
        center: learn the shift ``beta`` (else beta = 0).
        scale: learn the scale ``gamma`` (else gamma = 1).

    ``get_weights()`` returns gamma, beta, moving_mean, moving_variance (Keras's order;
    gamma and beta only if ``scale`` and ``center``).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name=None,
        input_shape=None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(
                f"BatchNormalization axis must be an int (the channel axis, -1), got {axis!r}."
            )
        if axis == 0:
            raise ValueError(
                "BatchNormalization axis=0 is the batch axis; the statistics are taken over "
                "it. Use axis=-1 (the channels, last in tinycnn's layout)."
            )
        if not (_is_real(momentum) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}.")
        if not (_is_real(epsilon) and epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(
                f"BatchNormalization epsilon must be a positive number (1e-3), got {epsilon!r}."
            )
        for flag, value in (("center", center), ("scale", scale)):
            if not isinstance(value, bool):
                raise ValueError(f"BatchNormalization {flag} must be True or False, got {value!r}.")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.non_trainable = set(MOVING)  # updated by forward, never by the optimizer

    # ---- shapes and weights ---------------------------------------------------------------
    def _check_sample_shape(self, shape):
        rank = len(shape) + 1  # with the batch axis
        if rank < 2:
            raise ValueError(
                f"{self._label()}: expected input of shape (N, ..., C), with a channel axis; "
                "got (N,). Give each sample at least one feature: x[:, None]."
            )
        axis = self.axis + rank if self.axis < 0 else self.axis
        if axis != rank - 1:
            raise ValueError(
                f"{self._label()}: axis={self.axis} is axis {axis} of rank-{rank} inputs, but "
                f"tinycnn normalises the last axis (the channels, axis -1 = {rank - 1}) only. "
                "Use axis=-1 with channels-last data: (N, H, W, C) or (N, D)."
            )
        if self.built and (rank != len(self.input_shape) + 1 or shape[-1] != self.input_shape[-1]):
            raise ValueError(
                f"{self._label()}: built for inputs (N, *{self.input_shape}) with "
                f"{self.input_shape[-1]} channels, got (N, *{tuple(shape)})."
            )

    def param_shapes(self, input_shape):
        channels = (int(input_shape[-1]),)
        names = ["gamma"] * self.scale + ["beta"] * self.center + list(MOVING)
        return {name: channels for name in names}  # Keras's get_weights order

    def _create_params(self, input_shape, rng):
        xp = backend.xp()  # nothing random: the stream of the next layers is unchanged
        starts = {"gamma": xp.ones, "beta": xp.zeros, "moving_mean": xp.zeros}
        starts["moving_variance"] = xp.ones
        for name, shape in self.param_shapes(input_shape).items():
            self.params[name] = starts[name](shape, dtype=self.dtype)

    # ---- forward and backward -------------------------------------------------------------
    def _forward(self, x, training):
        xp = get_array_module(x)
        axes = tuple(range(x.ndim - 1))  # every axis but the channels
        batch_stats = bool(training) and self.trainable  # a frozen layer: inference, as Keras
        if batch_stats:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)  # biased (divides by M) for y and the update, as Keras
            self._update_moving_averages(mean, var)
        else:
            mean, var = self.params["moving_mean"], self.params["moving_variance"]
        inv_sigma = 1.0 / xp.sqrt(var + self.epsilon)  # (C,)
        xhat = (x - mean) * inv_sigma
        y = xhat * self.params["gamma"] if self.scale else xhat.copy()
        if self.center:
            y += self.params["beta"]
        self.cache = (xhat, inv_sigma, batch_stats)
        return y

    def _update_moving_averages(self, mean, var):
        """moving = momentum * moving + (1 - momentum) * batch value, in place (references to
        the arrays, a gradient check's or set_weights', stay valid)."""
        m = self.momentum
        moving_mean, moving_var = self.params["moving_mean"], self.params["moving_variance"]
        moving_mean[...] = m * moving_mean + (1.0 - m) * mean
        moving_var[...] = m * moving_var + (1.0 - m) * var

    def _backward(self, dy, input_grad):
        xp = get_array_module(dy)
        xhat, inv_sigma, batch_stats = self.cache
        axes = tuple(range(dy.ndim - 1))
        count = dy.size // dy.shape[-1]  # M, the values per channel
        sum_dy = dy.sum(axis=axes)  # (C,)
        sum_dy_xhat = (dy * xhat).sum(axis=axes)  # (C,)
        gamma = self.params["gamma"] if self.scale else 1.0
        if self.scale:
            self.grads["gamma"] = sum_dy_xhat
        if self.center:
            self.grads["beta"] = sum_dy
        if batch_stats:  # y does not depend on the moving averages
            self.grads["moving_mean"] = xp.zeros_like(self.params["moving_mean"])
            self.grads["moving_variance"] = xp.zeros_like(self.params["moving_variance"])
        else:
            self.grads["moving_mean"] = -gamma * inv_sigma * sum_dy
            self.grads["moving_variance"] = -0.5 * gamma * inv_sigma**2 * sum_dy_xhat
        if not input_grad:
            return None
        if not batch_stats:
            return dy * (gamma * inv_sigma)
        # mean and var are functions of x: the two sums are their share of the chain rule
        return (gamma * inv_sigma / count) * (count * dy - sum_dy - xhat * sum_dy_xhat)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
