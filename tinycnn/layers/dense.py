"""Dense (fully connected): y = x @ kernel + bias.

Shapes: x (N, D_in), kernel (D_in, D_out) (the Keras layout), bias (D_out,), y (N, D_out).
Backward:
    dkernel = x.T @ dy        (D_in, D_out)
    dbias   = dy.sum(axis=0)  (D_out,)
    dx      = dy @ kernel.T   (N, D_in)
"""

from __future__ import annotations

from .. import initializers, kernels
from .activations import (
    activation_forward,
    backward_through,
    check_activation,
    remember_softmax,
    unfused,
)
from .base import Layer


class Dense(Layer):
    """Fully connected layer on ``(N, D_in)`` inputs, giving ``(N, units)``.

    Args:
        units: D_out, the number of outputs.
        activation: None, "relu" (fused with the bias), "sigmoid", "tanh", "softmax",
            "leaky_relu" (applied after; see activations.py).
        use_bias: add a learned bias per unit.
    """

    input_layout = "(N, D)"

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        name=None,
        input_shape=None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if not (isinstance(units, int) and units > 0):
            raise ValueError(f"Dense units must be a positive int, got {units!r}.")
        self.units = units
        self.activation = check_activation(activation, "Dense")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def _check_sample_shape(self, shape):
        if self.built and len(shape) == 1 and shape[0] != self.input_shape[0]:
            raise ValueError(
                f"{self._label()}: expected input of shape (N, {self.input_shape[0]}), "
                f"got (N, {shape[0]})."
            )

    def param_shapes(self, input_shape):
        shapes = {"kernel": (input_shape[0], self.units)}
        return {**shapes, "bias": (self.units,)} if self.use_bias else shapes

    def _create_params(self, input_shape, rng):
        shapes = self.param_shapes(input_shape)  # one source for the shapes (load_model's too)
        self.params["kernel"] = self.kernel_initializer(shapes["kernel"], rng, self.dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer(shapes["bias"], rng, self.dtype)

    def _forward(self, x, training):
        y = x @ self.params["kernel"]
        # y += bias, then ReLU (one pass in the fast kernel; see reference.bias_relu)
        y = kernels.bias_relu(y, self.params.get("bias"), relu=self.activation == "relu")
        # any other activation comes after (its backward, like ReLU's, needs only y)
        act = unfused(self.activation)
        out = activation_forward(act, y)
        remember_softmax(self, act, y, out)
        self.cache = (x, out)
        return out

    def _backward(self, dy, input_grad):
        x, y = self.cache
        dy = backward_through(self, unfused(self.activation), dy, y)
        # the gradient before ReLU and the bias gradient, in one pass
        relu, with_bias = self.activation == "relu", self.use_bias
        dy, dbias = kernels.bias_relu_backward(dy, y, relu=relu, with_bias=with_bias)
        self.grads["kernel"] = x.T @ dy
        if self.use_bias:
            self.grads["bias"] = dbias
        return dy @ self.params["kernel"].T if input_grad else None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }
