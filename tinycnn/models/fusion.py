"""Fusing ``Conv2D(activation="relu")`` + ``MaxPooling2D`` into one fast CPU step.

Run one after the other, the two layers make four passes over the convolution's
output (N, Ho, Wo, F), the largest array of the seed network (43,264 numbers per
image, 22 MB at batch 128): the matrix multiply writes it, ReLU rewrites it,
pooling reads it, and backward writes its gradient, masks it and multiplies it
again. When the convolution has few input taps (kh * kw * C_in, 9 for the first
layer of the seed network), computing it directly, window by window, costs less
than those passes: the fused kernel computes the four convolution outputs of each
2x2 window, keeps their maximum and never writes the rest (see
``kernels/cpu_numba.py``; measured in docs/performance.md).

This only changes *how* a model computes, never *what*: the layers keep their
parameters and gradients, and tests check the fused and unfused paths agree. It
applies only to NumPy arrays with the compiled kernels on; otherwise (CuPy,
``kernels.use_fast_kernels(False)``) every layer runs on its own.
"""

from __future__ import annotations

from .. import kernels
from ..layers import Conv2D, MaxPooling2D

#: Direct convolution beats im2col + matrix multiply only for few taps per output.
MAX_FUSED_TAPS = 32


class ConvReluPool:
    """One step that does the work of ``conv`` (ReLU, stride 1, valid) then ``pool``."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D):
        self.conv, self.pool = conv, pool
        self.cache = None

    @staticmethod
    def applies(conv, pool, x) -> bool:
        """True when the pair can be fused for input ``x``."""
        if not (isinstance(conv, Conv2D) and isinstance(pool, MaxPooling2D) and conv.built):
            return False
        kh, kw = conv.kernel_size
        return (
            conv.activation == "relu"
            and conv.strides == (1, 1)
            and conv.padding == "valid"
            and kh * kw * conv.input_shape[2] <= MAX_FUSED_TAPS
            and pool.padding == "valid"
            and pool.strides == pool.pool_size
            and kernels.is_fast(x)
        )

    def forward(self, x, training=False, check_finite=True):
        conv, pool = self.conv, self.pool
        x = conv._check_input(x, check_finite)
        conv._check_sample_shape(tuple(x.shape[1:]))
        out, argmax = kernels.conv_relu_pool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), *pool.pool_size
        )
        conv.cache = pool.cache = None  # the pair's state lives here, not in the layers
        self.cache = (x, out, argmax)
        return out

    def backward(self, dy, input_grad=True):
        if self.cache is None:
            raise RuntimeError("ConvReluPool: backward() called before forward().")
        x, out, argmax = self.cache
        conv = self.conv
        dkernel, dbias, dx = kernels.conv_relu_pool_backward(
            x, conv.params["kernel"], dy, out, argmax, *self.pool.pool_size, input_grad
        )
        conv.grads["kernel"] = dkernel
        if conv.use_bias:
            conv.grads["bias"] = dbias
        return dx


def plan(layers, x) -> list:
    """The steps that compute ``layers`` on ``x``: each layer, or a fused pair."""
    steps, k = [], 0
    while k < len(layers):
        if k + 1 < len(layers) and ConvReluPool.applies(layers[k], layers[k + 1], x):
            steps.append(ConvReluPool(layers[k], layers[k + 1]))
            k += 2
        else:
            steps.append(layers[k])
            k += 1
    return steps
