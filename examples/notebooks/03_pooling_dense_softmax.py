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
# # Lesson 3: max-pooling, ReLU, dense, and softmax cross-entropy
#
# The seed network is `Conv2D -> MaxPooling2D -> ... -> Dense -> softmax cross-entropy`.
# Lesson 2 did the convolution; here are the other pieces, each with its forward formula,
# its backward formula, a few lines of NumPy, and a check against tinycnn's layer:
#
# | piece | forward | backward (given $G = \partial L/\partial y$) |
# |---|---|---|
# | max-pool | $y = \max_{\text{window}} x$ | $G$ goes to the window's winner, 0 elsewhere |
# | ReLU | $y = \max(x, 0)$ | $G \odot [x > 0]$ |
# | dense | $y = xW + b$ | $\partial W = x^\top G,\; \partial b = \sum_n G_n,\; \partial x = G W^\top$ |
# | softmax CE | $L = -\frac1N \sum_n \log p_{n, t_n}$ | $\partial z = (p - Y)/N$ |

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinycnn
from tinycnn.layers import Dense, MaxPooling2D, ReLU
from tinycnn.losses import SoftmaxCrossEntropy

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Max-pooling: where does the gradient go?
#
# $y_{n,o_h,o_w,c} = \max_{0 \le i < p_h,\, 0 \le j < p_w} x_{n,\, o_h s + i,\, o_w s + j,\, c}$.
# The max is locally just "pick one element": $y = x_{\text{winner}}$, so
# $\partial y/\partial x$ is 1 at the winner and 0 at the other elements of the window. The
# backward pass therefore **routes** each $G_{n,o_h,o_w,c}$ to the input pixel that won that
# window and gives every other pixel 0. The forward pass remembers the winner (tinycnn keeps
# its offset $i\,p_w + j$ inside the window, as an `int8`).
#
# Two details matter:
#
# * **Overlapping windows** (stride smaller than the pool): one pixel can win several
#   windows; it then receives the **sum** of their gradients (`+=`, as col2im in lesson 2).
# * **Ties**: when two elements of a window are equal, the derivative is not defined. Every
#   library picks one: tinycnn, Keras and PyTorch give the whole gradient to the **first**
#   maximum in row-major order (strictly greater replaces the current winner). A library that
#   split it or gave it to both would disagree with them, so the rule is tested.


# %%
def maxpool_forward(x, p, s):
    """x (N, H, W, C) -> y (N, Ho, Wo, C) and the winner's (row, col) in x for each output."""
    n, h, w, c = x.shape
    ho, wo = (h - p) // s + 1, (w - p) // s + 1
    y = np.empty((n, ho, wo, c))
    winner = np.empty((n, ho, wo, c, 2), dtype=int)
    for oh in range(ho):
        for ow in range(wo):
            window = x[:, oh * s : oh * s + p, ow * s : ow * s + p, :].reshape(n, p * p, c)
            k = window.argmax(axis=1)  # np.argmax: the FIRST maximum wins a tie
            y[:, oh, ow] = window.max(axis=1)
            winner[:, oh, ow, :, 0] = oh * s + k // p
            winner[:, oh, ow, :, 1] = ow * s + k % p
    return y, winner


def maxpool_backward(g, winner, x_shape):
    """Route each G to its window's winner; += because windows may overlap."""
    dx = np.zeros(x_shape)
    n, ho, wo, c = g.shape
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                for ch in range(c):
                    r, col = winner[b, oh, ow, ch]
                    dx[b, r, col, ch] += g[b, oh, ow, ch]
    return dx


# a 6x6 image with a tie in its top-left window (two 9s)
img = np.array(
    [
        [9, 2, 1, 0, 3, 1],
        [4, 9, 5, 7, 2, 8],
        [0, 1, 3, 2, 6, 1],
        [2, 8, 1, 4, 0, 5],
        [7, 3, 6, 9, 2, 2],
        [1, 0, 2, 3, 1, 4],
    ],
    dtype=float,
).reshape(1, 6, 6, 1)
g_pool = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # distinct upstream values 1..9
y_ours, win = maxpool_forward(img, 2, 2)
dx_ours = maxpool_backward(g_pool, win, img.shape)

pool = MaxPooling2D(2)  # stride = pool size by default
with tinycnn.use_floatx("float64"):
    y_layer = tinycnn.to_numpy(pool.forward(img, training=True))
    dx_layer = tinycnn.to_numpy(pool.backward(g_pool))
np.testing.assert_array_equal(y_layer, y_ours)
np.testing.assert_array_equal(dx_layer, dx_ours)

# overlapping: 3x3 windows moving by 2 on a 7x7 image (random, no ties)
img7 = rng.permutation(49).astype(float).reshape(1, 7, 7, 1)
y7, win7 = maxpool_forward(img7, 3, 2)
dx7 = maxpool_backward(np.ones_like(y7), win7, img7.shape)  # G = 1: count the wins
pool7 = MaxPooling2D(3, strides=2)
with tinycnn.use_floatx("float64"):
    pool7.forward(img7, training=True)
    dx7_layer = tinycnn.to_numpy(pool7.backward(np.ones_like(y7)))
np.testing.assert_array_equal(dx7_layer, dx7)
print("MaxPooling2D agrees: 2x2 stride 2 (with a tie) and 3x3 stride 2 (overlapping)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
ax = axes[0]
ax.imshow(img[0, :, :, 0], cmap="Greys", vmin=0, vmax=14)
for (r, c), v in np.ndenumerate(img[0, :, :, 0]):
    won = bool(dx_ours[0, r, c, 0])
    ax.text(
        c,
        r,
        int(v),
        ha="center",
        va="center",
        fontsize=12,
        weight="bold" if won else None,
        color="C3" if won else "k",
    )
for k in range(0, 7, 2):
    ax.axhline(k - 0.5, color="k", lw=2), ax.axvline(k - 0.5, color="k", lw=2)
ax.set_title("input, 2x2 windows; winners in red\n(top-left: a tie 9/9, the first wins)")
ax = axes[1]
lim = np.abs(dx_ours).max()
ax.imshow(dx_ours[0, :, :, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
for (r, c), v in np.ndenumerate(dx_ours[0, :, :, 0]):
    ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=12)
for k in range(0, 7, 2):
    ax.axhline(k - 0.5, color="k", lw=2), ax.axvline(k - 0.5, color="k", lw=2)
ax.set_title("dL/dx for G = 1..9: each G lands on its winner")
ax = axes[2]
ax.imshow(dx7[0, :, :, 0], cmap="viridis", vmin=0, vmax=4)
for (r, c), v in np.ndenumerate(dx7[0, :, :, 0]):
    ax.text(c, r, f"{v:g}", ha="center", va="center", color="w" if v < 2 else "k")
ax.set_title("3x3 windows, stride 2, G = 1 everywhere:\nhow many windows each pixel won")
for a in axes:
    a.set_xticks([]), a.set_yticks([])
fig.tight_layout()

# %% [markdown]
# Left and middle: the top-left window holds two 9s; the one at (0, 0) comes first in
# row-major order and takes the whole gradient, 1, while the 9 at (1, 1) gets 0. Right: with
# overlapping windows a large pixel on a shared border can win 2 or even 4 windows, and its
# gradient is the sum.
#
# ## 2. ReLU
#
# $y = \max(x, 0)$, so $\partial y/\partial x = 1$ where $x > 0$ and 0 where $x < 0$: the
# gradient passes through active units and stops at inactive ones. At $x = 0$ exactly there
# is a kink; tinycnn uses 0 there (it tests $y \le 0$). Lesson 4 shows what a kink does to a
# numerical gradient check.

# %%
x_relu = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
g_relu = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
relu = ReLU()
with tinycnn.use_floatx("float64"):
    relu.forward(x_relu, training=True)
    dx_relu = tinycnn.to_numpy(relu.backward(g_relu))
print("x       ", x_relu[0], "\nG       ", g_relu[0], "\nReLU dx ", dx_relu[0])

# %% [markdown]
# ## 3. Dense: three matrix products
#
# $y = x W + b$ with $x \in \mathbb{R}^{N \times D}$, $W \in \mathbb{R}^{D \times U}$. Each
# $y_{n,u} = \sum_d x_{n,d} W_{d,u} + b_u$, so
#
# $$\frac{\partial L}{\partial W_{d,u}} = \sum_n x_{n,d}\, G_{n,u} \;\Rightarrow\;
# \partial W = x^\top G, \qquad \partial b = \sum_n G_{n,:}, \qquad
# \frac{\partial L}{\partial x_{n,d}} = \sum_u G_{n,u} W_{d,u} \;\Rightarrow\; \partial x = G
# W^\top.$$
#
# A shape check remembers them: $\partial W$ must be $(D, U)$, and $x^\top G$ is the only way
# to get that from $(N, D)$ and $(N, U)$. With `activation="relu"` the ReLU's mask is applied
# to $G$ first.

# %%
x_dense = rng.standard_normal((5, 6))
with tinycnn.use_floatx("float64"):
    dense = Dense(4, activation="relu")
    dense.build((6,), rng=0)
y_dense = tinycnn.to_numpy(dense.forward(x_dense, training=True))
g_dense = rng.standard_normal(y_dense.shape)
dx_dense = tinycnn.to_numpy(dense.backward(g_dense))
W, b = (tinycnn.to_numpy(p) for p in dense.params.values())
g_masked = g_dense * (x_dense @ W + b > 0)  # through the ReLU first
np.testing.assert_allclose(y_dense, np.maximum(x_dense @ W + b, 0), rtol=1e-12)
np.testing.assert_allclose(
    tinycnn.to_numpy(dense.grads["kernel"]), x_dense.T @ g_masked, rtol=1e-12
)
np.testing.assert_allclose(tinycnn.to_numpy(dense.grads["bias"]), g_masked.sum(axis=0), rtol=1e-12)
np.testing.assert_allclose(dx_dense, g_masked @ W.T, rtol=1e-12, atol=1e-15)
print("Dense(4, relu) agrees: dW = x^T G, db = sum G, dx = G W^T (G masked by the ReLU)")

# %% [markdown]
# ## 4. Softmax cross-entropy: $(p - Y)/N$
#
# The last layer outputs $C$ scores (logits) $z_n$ per image. Softmax turns them into
# probabilities, and the loss is the mean negative log-probability of the true class $t_n$:
#
# $$p_{n,k} = \frac{e^{z_{n,k}}}{\sum_j e^{z_{n,j}}}, \qquad L = -\frac1N \sum_n \log
# p_{n,t_n} = \frac1N \sum_n \Big(\log \sum_j e^{z_{n,j}} - z_{n,t_n}\Big).$$
#
# Differentiate the right-hand form: $\partial/\partial z_{n,k}$ of $\log\sum_j e^{z_{n,j}}$
# is $e^{z_{n,k}}/\sum_j e^{z_{n,j}} = p_{n,k}$, and of $z_{n,t_n}$ it is $[k = t_n]$. Hence
#
# $$\frac{\partial L}{\partial z_{n,k}} = \frac{p_{n,k} - Y_{n,k}}{N}, \qquad Y_{n,k} = [k =
# t_n] \text{ (one-hot)}.$$
#
# No softmax Jacobian ever needs to be formed: the two cancel to this simple difference,
# which is why the library fuses softmax with the loss. Each row of the gradient sums to 0;
# the true class is pushed up by $(1 - p_{t})/N$, every other class down by $p_k/N$.
#
# **log-sum-exp.** $e^{1000}$ overflows float64 (the largest is about $e^{709}$). Since
# $\log \sum_j e^{z_j} = m + \log \sum_j e^{z_j - m}$ for any $m$, take $m = \max_j z_j$: the
# largest term becomes $e^0 = 1$, nothing overflows, and the sum is at least 1, so its log is
# safe too.


# %%
def softmax_ce_naive(z, t):
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(t)), t]).mean()


def softmax_ce(z, t):
    """Mean softmax cross-entropy and its gradient (p - Y) / N, with log-sum-exp."""
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))  # log sum_j exp(z_j), safely
    loss = (lse - z[np.arange(len(t)), t]).mean()
    p = np.exp(z - lse[:, None])
    grad = p.copy()
    grad[np.arange(len(t)), t] -= 1.0
    return loss, grad / len(t)


z = rng.standard_normal((4, 10)) * 3
t = np.array([3, 0, 9, 3])
loss_ours, grad_ours = softmax_ce(z, t)
ce = SoftmaxCrossEntropy()
loss_lib = float(ce.forward(z, t))
grad_lib = tinycnn.to_numpy(ce.backward())
np.testing.assert_allclose(loss_lib, loss_ours, rtol=1e-12)
np.testing.assert_allclose(grad_lib, grad_ours, rtol=1e-12, atol=1e-15)
print(f"loss {loss_lib:.6f} (ours {loss_ours:.6f}); gradients agree")

big = z + 1000.0  # the same logits shifted: softmax does not change
with np.errstate(over="ignore", invalid="ignore"):
    naive_big = softmax_ce_naive(big, t)
stable_big, _ = softmax_ce(big, t)
print(
    f"logits + 1000: naive {naive_big}, log-sum-exp {stable_big:.6f}, tinycnn {float(ce.forward(big, t)):.6f}"
)

# %%
n_show = 0
p_row = np.exp(z[n_show] - z[n_show].max())
p_row /= p_row.sum()
onehot = np.eye(10)[t[n_show]]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=False)
axes[0].bar(range(10), z[n_show], color="C0")
axes[0].set_title("logits z (one image)")
axes[1].bar(np.arange(10) - 0.2, p_row, width=0.4, label="p = softmax(z)")
axes[1].bar(np.arange(10) + 0.2, onehot, width=0.4, label=f"Y (true class {t[n_show]})")
axes[1].legend(fontsize=8)
axes[1].set_title("probabilities and the one-hot target")
colors = ["C1" if k == t[n_show] else "C0" for k in range(10)]
axes[2].bar(range(10), grad_lib[n_show] * len(t), color=colors)
axes[2].axhline(0, color="k", lw=0.8)
axes[2].set_title(
    "N dL/dz = p - Y; a descent step moves z against it:\nthe true class up, the others down",
    fontsize=10,
)
for a in axes:
    a.set_xticks(range(10))
    a.set_xlabel("class")
fig.tight_layout()

# %% [markdown]
# ## 5. And against numbers
#
# `tinycnn.gradcheck` compares each backward pass with central differences (lesson 4 explains
# how). The max-pooling input is a shuffled range of distinct values so that no window holds a
# tie (a tie is a kink, where the numerical derivative measures one side only).

# %%
x_pool = rng.permutation(2 * 8 * 8 * 3).reshape(2, 8, 8, 3) / 100.0
reports = {
    "MaxPooling2D(3, strides=2)": tinycnn.gradcheck(
        MaxPooling2D(3, strides=2), x_pool, progress=False
    ),
    "Dense(4, relu)": tinycnn.gradcheck(Dense(4, activation="relu"), x_dense, progress=False),
    "SoftmaxCrossEntropy": tinycnn.gradcheck(SoftmaxCrossEntropy(), z, t),
}
for name, report in reports.items():
    print(f"{name:28s} {report.verdict:4s} max rel. error {report.max_rel_error:.1e}")

# %% [markdown]
# ## Checks

# %%
# max-pool: the tie goes to the first 9 (at (0, 0)), not to the 9 at (1, 1)
assert dx_layer[0, 0, 0, 0] == 1.0 and dx_layer[0, 1, 1, 0] == 0.0
np.testing.assert_array_equal(y_layer[0, :, :, 0], [[9, 7, 8], [8, 4, 6], [7, 9, 4]])
assert dx_layer.sum() == g_pool.sum()  # every upstream number lands somewhere, once
# overlapping windows: the counts add up to the number of windows, and some pixel won twice
assert dx7.sum() == 9 and dx7.max() >= 2

# ReLU: through where x > 0, stopped where x <= 0 (the kink at 0 gives 0)
np.testing.assert_array_equal(dx_relu, [[0.0, 0.0, 0.0, 4.0, 5.0]])

# softmax cross-entropy: rows of the gradient sum to 0, log-sum-exp survives + 1000
np.testing.assert_allclose(grad_lib.sum(axis=1), 0.0, atol=1e-15)
assert not np.isfinite(naive_big) and np.isclose(stable_big, loss_ours, rtol=1e-12)
np.testing.assert_allclose(float(ce.forward(big, t)), loss_ours, rtol=1e-12)
# equal logits: p = 1/10 for every class, so the loss is ln 10 (a fresh network's loss)
np.testing.assert_allclose(float(ce.forward(np.zeros((3, 10)), np.array([0, 4, 9]))), np.log(10))

for name, report in reports.items():
    assert report.ok, f"{name}:\n{report}"
print("all checks passed")
