"""Fusing ``Conv2D(activation="relu")`` + ``MaxPooling2D`` into one fast CPU step.

Run one after the other, the two layers pass the convolution's output (N, Ho, Wo, F)
through main memory four times: the matrix multiply writes it, the pooling layer
reads it, and backward writes its gradient and reads it again. It is the largest
activation of the seed network (43,264 numbers per image after the first
convolution, 22 MB at batch 128). The fused step computes the convolution a block
of images at a time (``kernels/cpu_conv.py``) and pools each block while it is
still in the CPU cache: the full convolution output never exists, and backward
rebuilds its gradient block by block from the pooled one (measured in
docs/performance.md).

This only changes *how* a model computes, never *what*: the layers keep their
parameters and gradients, and tests check the fused and unfused paths agree. It
applies only to NumPy arrays with the compiled kernels on; otherwise (CuPy,
``kernels.use_fast_kernels(False)``) every layer runs on its own.
"""

from __future__ import annotations

from .. import kernels
from ..layers import Conv2D, MaxPooling2D


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
        return (
            conv.activation == "relu"
            and conv.strides == (1, 1)
            and conv.padding == "valid"
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
