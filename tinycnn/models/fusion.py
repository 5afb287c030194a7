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

Backpropagating layer by layer still works after a fused forward pass. The step
leaves one :class:`FusedCache` in *both* layers, in place of their own caches
(``Layer.backward`` hands it the call):

* ``pool.backward(dy)`` returns dL/d(conv output), dy sent to each window's maximum;
* ``conv.backward(that gradient)`` runs the fused backward on dy, so the gradients
  are those of ``model.backward``, bit for bit. Given any other gradient, it computes
  the convolution's own backward (its output recomputed from the input it kept).
"""

from __future__ import annotations

from .. import kernels
from ..conv_arithmetic import output_size
from ..layers import Conv2D, MaxPooling2D
from ..layers.base import SharedCache


class ConvReluPool:
    """One step that does the work of ``conv`` (ReLU, stride 1, valid) then ``pool``."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D):
        self.conv, self.pool = conv, pool

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
        x = conv.check_input(x, check_finite)
        out, argmax = kernels.conv_relu_pool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), *pool.pool_size
        )
        conv.cache = pool.cache = FusedCache(conv, pool, x, out, argmax)
        return out

    def backward(self, dy, input_grad=True):
        """dL/dx from the pooled gradient ``dy``; fills the convolution's ``grads``."""
        cache = self.pool.cache
        if not isinstance(cache, FusedCache) or self.conv.cache is not cache:
            raise RuntimeError(
                f"{self.conv.name} + {self.pool.name}: backward() needs the caches of one "
                "fused forward pass; one of the layers was run again on its own since."
            )
        return cache.fused_backward(dy, input_grad)


class FusedCache(SharedCache):
    """What one fused forward pass kept, shared by its convolution and pooling layers.

    ``x`` is the convolution's input, ``out`` and ``argmax`` the pooling's output and
    the place of each window's maximum (``kernels.maxpool_forward``'s convention).
    """

    def __init__(self, conv, pool, x, out, argmax):
        self.conv, self.pool = conv, pool
        self.x, self.out, self.argmax = x, out, argmax
        self.dy = None  # the pooled gradient pool.backward received...
        self.handed_on = None  # ...and the gradient it returned, for conv.backward

    def backward(self, layer, dy, input_grad):
        """``layer.backward(dy)`` for one of the two layers."""
        if layer is self.pool:
            return self.pool_backward(dy, input_grad)
        return self.conv_backward(dy, input_grad)

    def fused_backward(self, dy, input_grad):
        """The fused step's backward from the pooled gradient ``dy`` (N, Hp, Wp, F)."""
        kernel, (ph, pw) = self.conv.params["kernel"], self.pool.pool_size
        dkernel, dbias, dx = kernels.conv_relu_pool_backward(
            self.x, kernel, dy, self.out, self.argmax, ph, pw, input_grad=input_grad
        )
        self._store_grads(dkernel, dbias)
        return dx

    def _store_grads(self, dkernel, dbias) -> None:
        conv = self.conv
        conv.grads["kernel"] = dkernel
        if conv.use_bias:
            conv.grads["bias"] = dbias

    def pool_backward(self, dy, input_grad):
        """dL/d(conv output): each pooled gradient goes to its window's maximum."""
        if not input_grad:
            return None
        n, h, w, _ = self.x.shape
        kh, kw, _, f = self.conv.params["kernel"].shape
        conv_shape = (n, output_size(h, kh, 1), output_size(w, kw, 1), f)
        ph, pw = self.pool.pool_size  # and the strides, which equal it
        grad = kernels.maxpool_backward(dy, self.argmax, conv_shape, ph, pw, ph, pw)
        grad.flags.writeable = False  # conv.backward recognises it: it must stay as it is
        self.dy, self.handed_on = dy, grad
        return grad

    def conv_backward(self, grad, input_grad):
        """dL/dx from dL/d(conv output) ``grad``; fills the convolution's ``grads``."""
        if grad is self.handed_on:  # pool.backward's: the fused backward, as model.backward
            return self.fused_backward(self.dy, input_grad)
        # Another gradient (a feature map's, say): the convolution's own backward, which
        # needs its output (for ReLU's mask), never kept by the fused step: recompute it.
        conv, kernel = self.conv, self.conv.params["kernel"]
        bias, with_bias = conv.params.get("bias"), conv.use_bias
        y = kernels.conv2d_forward(self.x, kernel, bias, stride=1, relu=True)
        dkernel, dbias, dx = kernels.conv2d_backward(
            self.x, kernel, y, grad, stride=1, relu=True, with_bias=with_bias, input_grad=input_grad
        )
        self._store_grads(dkernel, dbias)
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
