"""Conv2D: 2-D convolution as im2col followed by one matrix multiply.

Shapes (channels-last, as Keras):
    x       (N, H, W, C)          input images
    kernel  (kh, kw, C, F)        F filters, each kh x kw x C
    bias    (F,)
    y       (N, Ho, Wo, F)        Ho = (H + pad - kh) // stride + 1 (conv_arithmetic.py)

The trick: unfold every kh x kw x C patch of x into one row of a matrix ``cols``
of shape (N*Ho*Wo, kh*kw*C). Then every output pixel is a dot product of its row
with each filter, so the whole convolution is a single matrix multiply:

    y = cols @ kernel.reshape(kh*kw*C, F) + bias          (N*Ho*Wo, F)

The backward pass is two more matrix multiplies and the inverse unfolding:

    dkernel = cols.T @ dy                                 (kh*kw*C, F)
    dbias   = dy.sum(axis=0)                              (F,)
    dcols   = dy @ kernel.reshape(kh*kw*C, F).T           (N*Ho*Wo, kh*kw*C)
    dx      = col2im(dcols)                               (N, H, W, C)
"""

from __future__ import annotations

from .. import conv_arithmetic, initializers, kernels
from ..backend import get_array_module
from .activations import (
    activation_forward,
    backward_through,
    check_activation,
    remember_softmax,
    unfused,
)
from .base import Layer


class Conv2D(Layer):
    """2-D convolution over channels-last images.

    Args:
        filters: F, the number of output channels.
        kernel_size: kh, kw (an int means square).
        strides: step of the window (only equal strides in both axes are supported).
        padding: "valid" (no padding) or "same" (zero padding so Ho = ceil(H / stride)).
        activation: None, "relu" (fused into the kernel), "sigmoid", "tanh", "softmax"
            (over the filters), "leaky_relu" (applied after; see activations.py).
        use_bias: add a learned bias per filter.
    Input ``(N, H, W, C)`` -> output ``(N, Ho, Wo, F)``.
    """

    input_layout = "(N, H, W, C)"

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        name=None,
        input_shape=None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if not (isinstance(filters, int) and filters > 0):
            raise ValueError(f"Conv2D filters must be a positive int, got {filters!r}.")
        self.filters = filters
        self.kernel_size = conv_arithmetic.pair(kernel_size, "Conv2D kernel_size")
        stride_pair = conv_arithmetic.pair(strides, "Conv2D strides")
        if stride_pair[0] != stride_pair[1]:
            raise ValueError(f"Conv2D supports equal strides only, got {strides!r}.")
        self.strides = stride_pair
        self.padding = conv_arithmetic.check_padding(padding, "Conv2D padding")
        self.activation = check_activation(activation, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    # ---- shapes (the formulas: conv_arithmetic.py) ----------------------------------------
    def _paddings(self, h: int, w: int):
        """((top, bottom), (left, right)) zero padding for an h x w input."""
        return conv_arithmetic.paddings(self.padding, (h, w), self.kernel_size, self.strides)

    def compute_output_shape(self, input_shape):
        h, w, _ = input_shape
        ho, wo = conv_arithmetic.output_hw(self.padding, (h, w), self.kernel_size, self.strides)
        return (ho, wo, self.filters)

    def _check_sample_shape(self, shape):
        if len(shape) != 3:
            return  # the rank check reports this one
        h, w, c = shape
        if self.built and c != self.input_shape[2]:
            raise ValueError(
                f"{self._label()}: expected {self.input_shape[2]} input channels "
                f"(input shape (N, H, W, {self.input_shape[2]})), got {c} (shape (N, {h}, {w}, {c}))."
            )
        kh, kw = self.kernel_size
        padded_h, padded_w = conv_arithmetic.padded_hw(self.padding, (h, w), (kh, kw), self.strides)
        if padded_h < kh or padded_w < kw:
            raise ValueError(
                f"{self._label()}: the {kh}x{kw} kernel is larger than the {h}x{w} input "
                "(with 'valid' padding). Use a larger input, a smaller kernel or padding='same'."
            )

    def param_shapes(self, input_shape):
        shapes = {"kernel": (*self.kernel_size, input_shape[2], self.filters)}
        return {**shapes, "bias": (self.filters,)} if self.use_bias else shapes

    def _create_params(self, input_shape, rng):
        shapes = self.param_shapes(input_shape)  # one source for the shapes (load_model's too)
        self.params["kernel"] = self.kernel_initializer(shapes["kernel"], rng, self.dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer(shapes["bias"], rng, self.dtype)

    # ---- forward and backward ----------------------------------------------------------
    def _forward(self, x, training):
        xp = get_array_module(x)
        pads = self._paddings(x.shape[1], x.shape[2])
        if pads != ((0, 0), (0, 0)):
            x = xp.pad(x, ((0, 0), *pads, (0, 0)))
        # im2col, one matrix multiply, bias and ReLU: reference.conv2d_forward shows it
        # in eight lines; on the CPU a faster twin does the same block by block.
        kernel, bias = self.params["kernel"], self.params.get("bias")
        stride, relu = self.strides[0], self.activation == "relu"
        y = kernels.conv2d_forward(x, kernel, bias, stride=stride, relu=relu)
        # any activation but relu comes after, on the whole output
        act = unfused(self.activation)
        out = activation_forward(act, y)
        remember_softmax(self, act, y, out)
        # Keep what backward needs: the (padded) input, the output (for the ReLU
        # mask or the other activation's backward) and the padding to undo.
        self.cache = (x, out, pads)
        return out

    def _backward(self, dy, input_grad):
        x, y, pads = self.cache
        dy = backward_through(self, unfused(self.activation), dy, y)
        # the formulas of the module docstring, written out in reference.conv2d_backward
        kernel, stride, relu = self.params["kernel"], self.strides[0], self.activation == "relu"
        with_bias = self.use_bias
        dkernel, dbias, dx = kernels.conv2d_backward(
            x, kernel, y, dy, stride=stride, relu=relu, with_bias=with_bias, input_grad=input_grad
        )
        self.grads["kernel"] = dkernel
        if self.use_bias:
            self.grads["bias"] = dbias
        if not input_grad:
            return None
        (pt, pb), (pl, pr) = pads
        return dx[:, pt : dx.shape[1] - pb, pl : dx.shape[2] - pr]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": self.strides[0],
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }
