"""Correct solutions of the eight exercises, written independently of tinycnn (plain
NumPy, mostly explicit loops over output pixels: the other way round from tinycnn's
offset loops), so that a check passing them says the check and tinycnn agree with a
second derivation, not with a copy of themselves.

The bug zoo (exercise_bugs.py) starts from these and changes one thing each.
"""

from __future__ import annotations

import numpy as np


def same_padding(size, k, stride):
    """(before, after) for 'same': output ceil(size / stride), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def pad_for(x, kh, kw, stride, padding):
    """``x`` zero-padded for ``padding``, and the ((top, bottom), (left, right)) used."""
    if padding == "valid":
        return x, ((0, 0), (0, 0))
    pads = (same_padding(x.shape[1], kh, stride), same_padding(x.shape[2], kw, stride))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0))), pads


def im2col(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((n * ho * wo, kh * kw * c))
    row = 0
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                top, left = oh * stride, ow * stride
                cols[row] = x[b, top : top + kh, left : left + kw, :].reshape(-1)
                row += 1
    return cols


def col2im(dcols, x_shape, kh, kw, stride):
    n, h, w, c = x_shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    dx = np.zeros(x_shape)
    row = 0
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                top, left = oh * stride, ow * stride
                dx[b, top : top + kh, left : left + kw, :] += dcols[row].reshape(kh, kw, c)
                row += 1
    return dx


def conv2d_forward(x, kernel, bias, stride, padding):
    kh, kw, _, f = kernel.shape
    xp, _ = pad_for(x, kh, kw, stride, padding)
    n, h, w, _ = xp.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = im2col(xp, kh, kw, stride) @ kernel.reshape(-1, f) + bias
    return y.reshape(n, ho, wo, f)


def conv2d_backward(x, kernel, dy, stride, padding):
    kh, kw, _, f = kernel.shape
    xp, ((top, bottom), (left, right)) = pad_for(x, kh, kw, stride, padding)
    d = dy.reshape(-1, f)
    dkernel = (im2col(xp, kh, kw, stride).T @ d).reshape(kernel.shape)
    dxp = col2im(d @ kernel.reshape(-1, f).T, xp.shape, kh, kw, stride)
    dx = dxp[:, top : xp.shape[1] - bottom, left : xp.shape[2] - right, :]
    return dx, dkernel, d.sum(axis=0)


def maxpool_forward(x, pool_size, stride):
    n, h, w, c = x.shape
    ho, wo = (h - pool_size) // stride + 1, (w - pool_size) // stride + 1
    y = np.empty((n, ho, wo, c))
    for oh in range(ho):
        for ow in range(wo):
            win = x[:, oh * stride : oh * stride + pool_size, ow * stride : ow * stride + pool_size]
            y[:, oh, ow, :] = win.max(axis=(1, 2))
    return y


def maxpool_backward(x, dy, pool_size, stride):
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                for ch in range(c):
                    top, left = oh * stride, ow * stride
                    win = x[b, top : top + pool_size, left : left + pool_size, ch]
                    i, j = np.unravel_index(np.argmax(win), win.shape)  # the first maximum
                    dx[b, top + i, left + j, ch] += dy[b, oh, ow, ch]
    return dx


def dense_backward(x, kernel, dy):
    return dy @ kernel.T, x.T @ dy, dy.sum(axis=0)


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    loss = -log_p[np.arange(n), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


def adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad**2
    lr_t = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return param - lr_t * m / (np.sqrt(v) + epsilon), m, v


SOLUTIONS = {
    "check_im2col": im2col,
    "check_conv2d_forward": conv2d_forward,
    "check_conv2d_backward": conv2d_backward,
    "check_maxpool_forward": maxpool_forward,
    "check_maxpool_backward": maxpool_backward,
    "check_dense_backward": dense_backward,
    "check_softmax_cross_entropy": softmax_cross_entropy,
    "check_adam_step": adam_step,
}
