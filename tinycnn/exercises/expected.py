"""The right answers, from tinycnn itself: its layers, its loss, its Adam, in float64.

Each function here has the signature of the exercise it answers and computes it with
the code tinycnn trains with, switched to its readable reference kernels
(``kernels/reference.py``, ``use_fast_kernels(False)``), on NumPy, in float64. Nothing
is written a second time here: the checks compare the student's function with the
library, and the library's own tests compare it with PyTorch and with numerical
gradients.

Shapes (channels-last, as everywhere in tinycnn): x ``(N, H, W, C)``, kernel
``(kh, kw, C, F)``, y and dy ``(N, Ho, Wo, F)``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..backend import use_backend, use_floatx
from ..kernels import reference, use_fast_kernels
from ..layers import Conv2D, Dense, MaxPooling2D
from ..losses import SoftmaxCrossEntropy
from ..optimizers import Adam


@contextlib.contextmanager
def _reference_float64():
    """NumPy, float64 and the readable reference kernels, for the block only."""
    with use_backend("numpy"), use_floatx("float64"), use_fast_kernels(False):
        yield


def im2col(x, kh, kw, stride):
    """``cols`` ``(N*Ho*Wo, kh*kw*C)``: rows (n, oh, ow), columns (i, j, c); 'valid'."""
    with _reference_float64():
        return reference.im2col(x, kh, kw, stride)


def _conv_layer(x, kernel, bias, stride, padding) -> Conv2D:
    kh, kw, _, filters = kernel.shape
    layer = Conv2D(filters, (kh, kw), strides=stride, padding=padding)
    layer.build(x.shape[1:])
    layer.set_weights([kernel, bias])
    return layer


def conv2d_forward(x, kernel, bias, stride, padding):
    """``y`` ``(N, Ho, Wo, F)`` of a ``Conv2D`` without activation."""
    with _reference_float64():
        return _conv_layer(x, kernel, bias, stride, padding).forward(x, training=True)


def conv2d_backward(x, kernel, dy, stride, padding):
    """``(dx, dkernel, dbias)``: shapes of x, kernel and ``(F,)``."""
    with _reference_float64():
        layer = _conv_layer(x, kernel, np.zeros(kernel.shape[3]), stride, padding)
        layer.forward(x, training=True)
        dx = layer.backward(dy)
        return dx, layer.grads["kernel"], layer.grads["bias"]


def maxpool_forward(x, pool_size, stride):
    """``y`` ``(N, Ho, Wo, C)`` of a 'valid' ``MaxPooling2D``."""
    with _reference_float64():
        return MaxPooling2D(pool_size, strides=stride).forward(x, training=True)


def maxpool_backward(x, dy, pool_size, stride):
    """``dx`` ``(N, H, W, C)``: each dy to the first maximum of its window."""
    with _reference_float64():
        layer = MaxPooling2D(pool_size, strides=stride)
        layer.forward(x, training=True)
        return layer.backward(dy)


def dense_backward(x, kernel, dy):
    """``(dx, dkernel, dbias)``: shapes ``(N, D_in)``, ``(D_in, D_out)``, ``(D_out,)``."""
    with _reference_float64():
        layer = Dense(kernel.shape[1])
        layer.build(x.shape[1:])
        layer.set_weights([kernel, np.zeros(kernel.shape[1])])
        layer.forward(x, training=True)
        dx = layer.backward(dy)
        return dx, layer.grads["kernel"], layer.grads["bias"]


def softmax_cross_entropy(logits, labels):
    """``(loss, dlogits)``: the batch mean (a float) and ``(N, C)``."""
    with _reference_float64():
        loss_fn = SoftmaxCrossEntropy()
        loss = float(loss_fn.forward(logits, labels))
        return loss, loss_fn.backward()


def adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    """``(param, m, v)`` after Adam's step number ``t`` (from 1), as Keras computes it."""
    with _reference_float64():
        adam = Adam(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        adam.iterations = t  # the step being taken: what Optimizer.step sets before updating
        param, state = param.copy(), {"m": m.copy(), "v": v.copy()}
        adam.update_param(param, grad, state, adam.step_learning_rate())
        return param, state["m"], state["v"]
