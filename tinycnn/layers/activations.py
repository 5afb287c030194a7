"""Activations: the ``activation=`` option of Conv2D and Dense, and the ReLU and
Activation layers.

ReLU is fused into the fast kernels (kernels.bias_relu, conv kernels with relu=True)
and stays there. The others are applied after the linear part by the readable
functions below, each a forward ``y = f(z)`` and a backward ``dz = dy * f'(z)``
(softmax: the full Jacobian-vector product), written against the array module ``xp``.
Each backward needs only the output y, so a layer keeps one array either way (its
kernels, without relu, read the output only for its shape).
"""

from __future__ import annotations

from .. import kernels
from ..backend import get_array_module
from .base import Layer

ACTIVATIONS = (None, "linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu")
LEAKY_RELU_SLOPE = 0.2  # Keras's default for activation="leaky_relu" (its LeakyReLU layer: 0.3)


def check_activation(activation, layer_type: str) -> str | None:
    """Normalise ``activation`` ("linear" means none) and reject unknown names."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{layer_type}: unknown activation {activation!r}; expected one of {ACTIVATIONS}."
        )
    return None if activation == "linear" else activation


# ---- the functions: forward(z) -> y, backward(dy, y) -> dz ---------------------------------
def softmax(logits, axis: int = -1):
    """exp(z) / sum(exp(z)) along ``axis``; subtracting the max first keeps exp finite.

    ``tinycnn.softmax(model.predict(x))`` turns a logits model's output into probabilities.
    """
    xp = get_array_module(logits)
    exp = xp.exp(logits - logits.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


def _sigmoid(z):
    # 1 / (1 + exp(-z)) written as (1 + tanh(z / 2)) / 2: the same number, no overflow
    xp = get_array_module(z)
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


def _sigmoid_backward(dy, y):
    # d sigmoid(z)/dz = y (1 - y)
    return dy * y * (1.0 - y)


def _tanh(z):
    return get_array_module(z).tanh(z)


def _tanh_backward(dy, y):
    # d tanh(z)/dz = 1 - y^2
    return dy * (1.0 - y * y)


def _leaky_relu(z):
    # z where z > 0, slope * z elsewhere
    return get_array_module(z).where(z > 0, z, LEAKY_RELU_SLOPE * z)


def _leaky_relu_backward(dy, y):
    # d/dz = 1 where z > 0, slope elsewhere (y > 0 exactly where z > 0: slope > 0)
    return get_array_module(y).where(y > 0, dy, LEAKY_RELU_SLOPE * dy)


def _relu(z):
    return kernels.relu_forward(z.copy())  # copy: never overwrite the caller's array


def _relu_backward(dy, y):
    return kernels.relu_backward(dy, y)


def _softmax_backward(dy, y):
    # Jacobian along the last axis: dy_i/dz_j = y_i (delta_ij - y_j), so
    # dz_j = sum_i dy_i y_i (delta_ij - y_j) = y_j (dy_j - sum_i dy_i y_i)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


_FUNCTIONS = {
    "relu": (_relu, _relu_backward),
    "sigmoid": (_sigmoid, _sigmoid_backward),
    "tanh": (_tanh, _tanh_backward),
    "softmax": (softmax, _softmax_backward),
    "leaky_relu": (_leaky_relu, _leaky_relu_backward),
}


def activation_forward(name: str | None, z):
    """y = f(z) for the activation ``name`` (None: y = z)."""
    return z if name is None else _FUNCTIONS[name][0](z)


def activation_backward(name: str | None, dy, y):
    """dL/dz from dL/dy and the output y of activation ``name``."""
    return dy if name is None else _FUNCTIONS[name][1](dy, y)


# ---- softmax as the last layer: the loss takes the logits ---------------------------------
class SoftmaxOutput:
    """What a layer that ends in a softmax keeps of its last forward pass.

    ``SoftmaxCrossEntropy`` given ``probs`` (this layer's output) computes the loss
    from ``logits`` instead (log of a probability that rounded to 0 would be -inf)
    and hands back dL/dlogits as ``logits_grad``; the layer's backward, receiving
    exactly that array, skips the softmax's Jacobian, which the loss already applied.
    """

    def __init__(self, logits, probs):
        self.logits, self.probs = logits, probs
        self.logits_grad = None


def unfused(activation: str | None) -> str | None:
    """The activation a layer applies after its kernel: relu is inside the kernel."""
    return None if activation == "relu" else activation


def remember_softmax(layer, name, z, y) -> None:
    """Keep ``layer.softmax_output`` for the loss when ``name`` is "softmax"."""
    layer.softmax_output = SoftmaxOutput(z, y) if name == "softmax" else None


def backward_through(layer, name, dy, y):
    """dL/dz: the activation's backward, or ``dy`` itself if the loss already gave dL/dz."""
    out = getattr(layer, "softmax_output", None)
    if out is not None and out.logits_grad is not None and dy is out.logits_grad:
        return dy
    return activation_backward(name, dy, y)


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


class Activation(Layer):
    """y = f(x) element-wise (softmax: along the last axis); any input shape ``(N, ...)``.

    Args:
        activation: "relu", "sigmoid", "tanh", "softmax", "leaky_relu" or "linear".
    """

    def __init__(self, activation, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.activation = check_activation(activation, "Activation")

    def _forward(self, x, training):
        y = activation_forward(self.activation, x)
        remember_softmax(self, self.activation, x, y)
        self.cache = y
        return y

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        return backward_through(self, self.activation, dy, self.cache)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}
