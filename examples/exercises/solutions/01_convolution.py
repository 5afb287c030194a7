# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1: a convolution, forward and backward
#
# You will write the three functions at the heart of a `Conv2D` layer and check each one
# with a single call:
#
# | you write | check |
# | --- | --- |
# | `im2col(x, kh, kw, stride)` | `check_im2col` |
# | `conv2d_forward(x, kernel, bias, stride, padding)` | `check_conv2d_forward` |
# | `conv2d_backward(x, kernel, dy, stride, padding)` | `check_conv2d_backward` |
#
# The layout is tinycnn's (and Keras's): images are channels-last, `x` of shape
# `(N, H, W, C)`; a kernel holds `F` filters of size `kh x kw x C`, shape `(kh, kw, C, F)`.
#
# **How the checks work.** `check_im2col(im2col)` calls your function on several random
# cases (new ones on every call) and compares with tinycnn's own layers in float64. It
# returns a report: `report.ok` is `True` when every case passed; otherwise the report
# shows the first failing case (its shapes, stride and padding), the worst entry
# (expected against what you returned), a hint about what the case tests, and the
# seed: `check_im2col(im2col, seed=...)` replays exactly that case while you debug.
# Your functions receive float64 copies: you may work in place or return new arrays.

# %%
import numpy as np
from IPython.display import display

from tinycnn.exercises import check_conv2d_backward, check_conv2d_forward, check_im2col

np.set_printoptions(precision=4, suppress=True)  # shorter arrays, when you print one

# %% [markdown]
# ## 1. im2col: every window as one row
#
# A convolution takes, at each output pixel `(oh, ow)`, the `kh x kw x C` window of the
# input whose top-left corner is `(oh * stride, ow * stride)` and multiplies it, entry by
# entry, with each filter. If every window is unrolled into one row of a matrix `cols`,
# all those dot products become *one* matrix multiply: `cols @ kernel.reshape(-1, F)`.
#
# Write `im2col(x, kh, kw, stride)`, without padding:
#
# * output size `Ho = (H - kh) // stride + 1` (a last window that would stick out is dropped),
#   the same along `W`;
# * `cols` has shape `(N * Ho * Wo, kh * kw * C)`;
# * rows in `(n, oh, ow)` order: all the windows of image 0, row by row, then image 1...;
# * each row lists its window in `(i, j, c)` order, the channel changing fastest: exactly
#   the order of `kernel.reshape(-1, F)`'s rows.


# %%
def im2col(x, kh, kw, stride):
    """x (N, H, W, C) -> cols (N*Ho*Wo, kh*kw*C)."""
    # BEGIN SOLUTION
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((n, ho, wo, kh * kw * c))
    for oh in range(ho):
        for ow in range(wo):
            top, left = oh * stride, ow * stride
            cols[:, oh, ow] = x[:, top : top + kh, left : left + kw, :].reshape(n, -1)
    return cols.reshape(n * ho * wo, kh * kw * c)
    # END SOLUTION


# %%
report = check_im2col(im2col)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix

# %% [markdown]
# ## 2. The forward pass, with 'valid' or 'same' padding
#
# `padding="valid"` means no padding. `padding="same"` adds zeros around the image so
# that the output has `ceil(H / stride)` rows: the padding needed in total along one
# axis is `max((Ho - 1) * stride + kh - H, 0)`. When that total is odd, the extra row
# goes at the **bottom** (and the extra column at the right), as in TensorFlow and Keras.
#
# Then `y = cols @ kernel.reshape(-1, F) + bias`, reshaped to `(N, Ho, Wo, F)`.
# Keras's convolution does not flip the kernel (it is a cross-correlation).


# %%
def same_padding(size, k, stride):
    """(before, after): the zeros 'same' padding adds along an axis of `size` pixels."""
    # BEGIN SOLUTION
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2
    # END SOLUTION


def pad(x, kh, kw, stride, padding):
    """x padded for `padding`, and the ((top, bottom), (left, right)) it got."""
    if padding == "valid":
        return x, ((0, 0), (0, 0))
    pads = same_padding(x.shape[1], kh, stride), same_padding(x.shape[2], kw, stride)
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0))), pads


def conv2d_forward(x, kernel, bias, stride, padding):
    """x (N, H, W, C), kernel (kh, kw, C, F), bias (F,) -> y (N, Ho, Wo, F)."""
    # BEGIN SOLUTION
    kh, kw, _, f = kernel.shape
    xp, _ = pad(x, kh, kw, stride, padding)
    n, h, w, _ = xp.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = im2col(xp, kh, kw, stride) @ kernel.reshape(-1, f) + bias
    return y.reshape(n, ho, wo, f)
    # END SOLUTION


# %%
report = check_conv2d_forward(conv2d_forward)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix

# %% [markdown]
# ## 3. The backward pass
#
# Given `dy = dL/dy` of shape `(N, Ho, Wo, F)`, reshape it to `d` of shape
# `(N * Ho * Wo, F)`. Since the forward pass is `y = cols @ K + bias` with
# `K = kernel.reshape(-1, F)`:
#
# * `dK = cols.T @ d`, reshaped to the kernel's shape;
# * `dbias = d.sum(axis=0)`: every output pixel of every image added the same bias;
# * `dcols = d @ K.T`, one row per window; `col2im` puts every row back on its window.
#
# **Why `+=` in col2im.** When windows overlap (stride smaller than the kernel), an input
# pixel sits in several windows and contributed to several outputs: its gradient is the
# *sum* of what each window sends back. Finally, the gradient of the padding zeros is
# not wanted: crop `dx` back to `x`'s shape.


# %%
def col2im(dcols, x_shape, kh, kw, stride):
    """dcols (N*Ho*Wo, kh*kw*C) -> dx of shape x_shape (N, H, W, C): im2col's adjoint."""
    # BEGIN SOLUTION
    n, h, w, c = x_shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    dcols = dcols.reshape(n, ho, wo, kh, kw, c)
    dx = np.zeros(x_shape)
    for oh in range(ho):
        for ow in range(wo):
            top, left = oh * stride, ow * stride
            dx[:, top : top + kh, left : left + kw, :] += dcols[:, oh, ow]
    return dx
    # END SOLUTION


def conv2d_backward(x, kernel, dy, stride, padding):
    """-> (dx (N, H, W, C), dkernel (kh, kw, C, F), dbias (F,))."""
    # BEGIN SOLUTION
    kh, kw, _, f = kernel.shape
    xp, ((top, bottom), (left, right)) = pad(x, kh, kw, stride, padding)
    d = dy.reshape(-1, f)
    dkernel = (im2col(xp, kh, kw, stride).T @ d).reshape(kernel.shape)
    dxp = col2im(d @ kernel.reshape(-1, f).T, xp.shape, kh, kw, stride)
    dx = dxp[:, top : xp.shape[1] - bottom, left : xp.shape[2] - right, :]
    return dx, dkernel, d.sum(axis=0)
    # END SOLUTION


# %%
report = check_conv2d_backward(conv2d_backward)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix
