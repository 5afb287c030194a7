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
# # Exercise 3: a dense layer's backward pass, and softmax cross-entropy
#
# | you write | check |
# | --- | --- |
# | `dense_backward(x, kernel, dy)` | `check_dense_backward` |
# | `softmax_cross_entropy(logits, labels)` | `check_softmax_cross_entropy` |
#
# Each check returns a report (`report.ok`, and the first failing case with its seed to
# replay it: `check_dense_backward(dense_backward, seed=...)`).

# %%
import numpy as np
from IPython.display import display

from tinycnn.exercises import check_dense_backward, check_softmax_cross_entropy

np.set_printoptions(precision=4, suppress=True)  # shorter arrays, when you print one

# %% [markdown]
# ## 1. Dense backward
#
# The forward pass is `y = x @ kernel + bias`, with `x` of shape `(N, D_in)`, `kernel`
# `(D_in, D_out)` (Keras's layout) and `bias` `(D_out,)`. Given `dy = dL/dy`, shape
# `(N, D_out)`, return `(dx, dkernel, dbias)`, shaped like `x`, `kernel` and `bias`.
#
# `dy` is already the gradient of the *batch's* loss (the loss divided by `N` when it
# took the mean), so nothing here is averaged again: each sample adds its share.
# Checking the shapes is a good first test of a formula, but not a proof: when
# `D_in = D_out` a forgotten transpose still has the right shape.


# %%
def dense_backward(x, kernel, dy):
    """x (N, D_in), kernel (D_in, D_out), dy (N, D_out) -> (dx, dkernel, dbias)."""
    # BEGIN SOLUTION
    return dy @ kernel.T, x.T @ dy, dy.sum(axis=0)
    # END SOLUTION


# %%
report = check_dense_backward(dense_backward)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix

# %% [markdown]
# ## 2. Softmax cross-entropy
#
# For logits `z` of shape `(N, C)` and integer labels `t` of shape `(N,)`, the loss is the
# mean over the batch of `-log softmax(z_n)[t_n]`, and `dlogits` (shape `(N, C)`) its
# gradient: for one sample, `softmax(z) - onehot(t)`; the mean divides it by `N`.
#
# The checks use logits near +1000 and -1000, where `np.exp` overflows to `inf` or
# underflows to `0`, and a case where the true class's probability is below the
# smallest float64. Softmax does not change when the same number is subtracted from
# every logit of a row, and `log(softmax(z))` can be computed without taking the log
# of a probability.


# %%
def softmax_cross_entropy(logits, labels):
    """logits (N, C), labels (N,) ints -> (loss, a number; dlogits (N, C))."""
    # BEGIN SOLUTION
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # the largest is 0: no overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log softmax
    rows = np.arange(n)
    loss = -log_p[rows, labels].mean()
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1.0
    return loss, dlogits / n
    # END SOLUTION


# %%
report = check_softmax_cross_entropy(softmax_cross_entropy)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix
