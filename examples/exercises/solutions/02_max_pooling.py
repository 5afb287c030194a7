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
# # Exercise 2: max-pooling, forward and backward
#
# | you write | check |
# | --- | --- |
# | `maxpool_forward(x, pool_size, stride)` | `check_maxpool_forward` |
# | `maxpool_backward(x, dy, pool_size, stride)` | `check_maxpool_backward` |
#
# Images are channels-last, `x` of shape `(N, H, W, C)`. A window is
# `pool_size x pool_size`; it moves `stride` pixels at a time; no padding ('valid'), so
# `Ho = (H - pool_size) // stride + 1` and a last window that would stick out is dropped.
#
# The checks do not stop at 2x2 windows with stride 2: they also use overlapping windows
# (stride smaller than the window) and whole-number inputs, so that windows have ties.
# Each check returns a report (`report.ok`, and the first failing case with its seed:
# `check_maxpool_backward(maxpool_backward, seed=...)` replays it).

# %%
import numpy as np
from IPython.display import display

from tinycnn.exercises import check_maxpool_backward, check_maxpool_forward

np.set_printoptions(precision=4, suppress=True)  # shorter arrays, when you print one

# %% [markdown]
# ## 1. Forward: the largest value of each window, channel by channel


# %%
def maxpool_forward(x, pool_size, stride):
    """x (N, H, W, C) -> y (N, Ho, Wo, C)."""
    # BEGIN SOLUTION
    n, h, w, c = x.shape
    ho, wo = (h - pool_size) // stride + 1, (w - pool_size) // stride + 1
    y = np.empty((n, ho, wo, c))
    for oh in range(ho):
        for ow in range(wo):
            top, left = oh * stride, ow * stride
            y[:, oh, ow, :] = x[:, top : top + pool_size, left : left + pool_size].max(axis=(1, 2))
    return y
    # END SOLUTION


# %%
report = check_maxpool_forward(maxpool_forward)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix

# %% [markdown]
# ## 2. Backward: each gradient to the winner of its window
#
# `y[n, oh, ow, c]` is one input pixel of its window, so `dy[n, oh, ow, c]` goes to that
# pixel only, and every other pixel of the window gets nothing from it.
#
# * **Ties.** When several pixels share the maximum, exactly one of them won: the
#   *first* in row-major order within the window (`np.argmax` of the flattened window),
#   as TensorFlow and PyTorch decide. Sending the gradient to every tied pixel would
#   count it several times.
# * **Overlapping windows.** With `stride < pool_size` a pixel can win several windows:
#   its gradients add up (`+=`).


# %%
def maxpool_backward(x, dy, pool_size, stride):
    """x (N, H, W, C), dy (N, Ho, Wo, C) -> dx (N, H, W, C)."""
    # BEGIN SOLUTION
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    images, channels = np.arange(n)[:, None], np.arange(c)[None, :]
    for oh in range(ho):
        for ow in range(wo):
            top, left = oh * stride, ow * stride
            window = x[:, top : top + pool_size, left : left + pool_size, :]
            first = window.reshape(n, -1, c).argmax(axis=1)  # (N, C): the first maximum
            i, j = np.unravel_index(first, (pool_size, pool_size))
            dx[images, top + i, left + j, channels] += dy[:, oh, ow, :]
    return dx
    # END SOLUTION


# %%
report = check_maxpool_backward(maxpool_backward)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix
