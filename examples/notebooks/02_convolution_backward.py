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
# # Lesson 2: the backward pass of a convolution, derived
#
# Training needs, for every layer, the gradient of the loss $L$ with respect to its weights
# (to update them) and with respect to its input (to hand on to the layer before). The layer
# receives $G = \partial L / \partial y$, the gradient with respect to its output, and must
# return the other two. For a convolution both turn out to be convolutions again:
#
# * $\partial L/\partial K$ is a **correlation of the input $x$ with $G$**;
# * $\partial L/\partial x$ is a **full convolution of $G$ with the kernel rotated by 180
#   degrees**.
#
# We derive both, write them in a few lines of NumPy, handle stride and padding, and check
# them against `tinycnn.layers.Conv2D.backward` and against numbers: `tinycnn.gradcheck`.
#
# Forward pass (lesson 1), stride $s$, input already padded:
#
# $$y_{n, o_h, o_w, f} = b_f + \sum_{i, j, c} x_{n,\; o_h s + i,\; o_w s + j,\; c}\; K_{i, j, c, f}$$

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinycnn
from tinycnn import conv_arithmetic
from tinycnn.kernels import reference

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The weights: $\partial L / \partial K$ and $\partial L / \partial b$
#
# By the chain rule, $\dfrac{\partial L}{\partial K_{i,j,c,f}} = \sum_{n, o_h, o_w}
# \dfrac{\partial L}{\partial y_{n,o_h,o_w,f}} \dfrac{\partial y_{n,o_h,o_w,f}}{\partial
# K_{i,j,c,f}}$, and the forward formula says $\partial y_{n,o_h,o_w,f} / \partial K_{i,j,c,f}
# = x_{n, o_h s + i, o_w s + j, c}$. So
#
# $$\frac{\partial L}{\partial K_{i,j,c,f}} = \sum_{n, o_h, o_w} x_{n,\; o_h s + i,\;
# o_w s + j,\; c}\; G_{n, o_h, o_w, f},
# \qquad \frac{\partial L}{\partial b_f} = \sum_{n, o_h, o_w} G_{n, o_h, o_w, f}.$$
#
# Compare with the forward formula: it is the same sliding dot product, with $G$ playing the
# kernel and sliding over $x$ (a correlation of $x$ with $G$; with stride $s$ the "kernel"
# $G$ has holes: its taps are $s$ pixels apart). In code: for each kernel offset $(i, j)$,
# take the slice of $x$ that offset meets in every window, and contract it with $G$ over
# $n, o_h, o_w$.


# %%
def conv_forward(x, kernel, bias, stride=1):
    """The forward pass: x (N, H, W, C) already padded, kernel (kh, kw, C, F) -> (N, Ho, Wo, F)."""
    kh, kw, _, _ = kernel.shape
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, kernel.shape[3])) + bias
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + stride * ho : stride, j : j + stride * wo : stride]  # (N,Ho,Wo,C)
            y += np.einsum("nhwc,cf->nhwf", window, kernel[i, j])
    return y


def conv_grad_kernel(x, g, kh, kw, stride=1):
    """dL/dK[i, j, c, f] = sum_{n, oh, ow} x[n, oh*s + i, ow*s + j, c] * G[n, oh, ow, f]."""
    ho, wo = g.shape[1:3]
    dk = np.zeros((kh, kw, x.shape[3], g.shape[3]))
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + stride * ho : stride, j : j + stride * wo : stride]
            dk[i, j] = np.einsum("nhwc,nhwf->cf", window, g)
    return dk


# %% [markdown]
# ## 2. The input: $\partial L / \partial x$, a full convolution with the rotated kernel
#
# Input pixel $x_{n,p,q,c}$ appears in output $(o_h, o_w)$ with weight $K_{p - o_h s,\;
# q - o_w s,\; c,\; f}$, whenever that kernel index lies in $[0, k_h) \times [0, k_w)$.
# Summing over every output that uses it:
#
# $$\frac{\partial L}{\partial x_{n,p,q,c}} = \sum_{o_h, o_w, f} G_{n, o_h, o_w, f}\;
# K_{p - o_h s,\; q - o_w s,\; c,\; f}.$$
#
# Take stride 1 first and substitute $i' = k_h - 1 - (p - o_h)$: then $o_h = p + i' - (k_h-1)$
# and the sum becomes
#
# $$\frac{\partial L}{\partial x_{n,p,q,c}} = \sum_{i', j', f} \tilde G_{n,\; p + i',\;
# q + j',\; f}\; K_{k_h - 1 - i',\; k_w - 1 - j',\; c,\; f}$$
#
# where $\tilde G$ is $G$ padded with $k_h - 1$ rows and $k_w - 1$ columns of zeros on every
# side (the outputs that do not exist contribute 0). That is the forward pass again (a
# "full" convolution: every position where the kernel touches $G$ at all) with the kernel
# **rotated by 180 degrees** ($i \to k_h - 1 - i$, $j \to k_w - 1 - j$) and its two channel
# axes swapped ($C \leftrightarrow F$: we go from $F$ output channels back to $C$).
#
# **Stride $s$:** output $o_h$ reads input rows $o_h s .. o_h s + k_h - 1$. Spread $G$ out to
# where its windows start, inserting $s - 1$ zero rows (and columns) between its entries
# ("dilating" $G$), and the stride-1 formula applies. Input rows no window reaches (a last row
# that a stride skipped) get gradient 0.
#
# **Padding:** the forward pass convolved the padded input; its gradient is that of the
# padded image, and the padding was not an input: crop it off.


# %%
def conv_grad_input(g, kernel, x_shape, stride=1):
    """dL/dx for an input of shape x_shape (already padded): the full convolution of the
    dilated G with the kernel rotated by 180 degrees, channels swapped."""
    kh, kw, _, _ = kernel.shape
    n, ho, wo, f = g.shape
    dilated = np.zeros((n, stride * (ho - 1) + 1, stride * (wo - 1) + 1, f))
    dilated[:, ::stride, ::stride] = g  # s - 1 zeros between neighbours
    full = np.pad(dilated, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    rotated = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, F, C), rotated 180 degrees
    dx = conv_forward(full, rotated, 0.0)  # (N, s*(Ho-1) + kh, s*(Wo-1) + kw, C)
    # rows/columns beyond the last window (skipped by the stride) were never read: zero
    missing_h, missing_w = x_shape[1] - dx.shape[1], x_shape[2] - dx.shape[2]
    return np.pad(dx, ((0, 0), (0, missing_h), (0, missing_w), (0, 0)))


def conv_backward(x, kernel, g, stride=1, pads=((0, 0), (0, 0))):
    """(dK, db, dx) of a convolution of x (unpadded) with 'pads' zero padding."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    dk = conv_grad_kernel(xp, g, kh, kw, stride)
    db = g.sum(axis=(0, 1, 2))
    dx_padded = conv_grad_input(g, kernel, xp.shape, stride)
    (pt, pb), (pl, pr) = pads
    return dk, db, dx_padded[:, pt : xp.shape[1] - pb, pl : xp.shape[2] - pr]


# %% [markdown]
# ## 3. One upstream number: the kernel, stamped back
#
# The clearest picture of $\partial L/\partial x$: let $G$ be zero except a single 1 at one
# output pixel. The formula then returns the kernel itself, placed on the window that output
# read. Here for a 3x3 kernel, stride 2, on a 7x7 input: the gradient of output $(1, 2)$
# lands on rows 2-4, columns 4-6, and it is $K$ (not rotated: the rotation only appears when
# we write the sum as a convolution *over $G$*).

# %%
kernel_demo = np.arange(1.0, 10.0).reshape(3, 3, 1, 1)  # 1..9, so the orientation shows
g_one = np.zeros((1, 3, 3, 1))
g_one[0, 1, 2, 0] = 1.0
_, _, dx_one = conv_backward(np.zeros((1, 7, 7, 1)), kernel_demo, g_one, stride=2)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), width_ratios=[1, 1, 2])
panels = [(kernel_demo[:, :, 0, 0], "kernel K (3x3)"), (g_one[0, :, :, 0], "G: one 1 at (1, 2)")]
panels.append((dx_one[0, :, :, 0], "dL/dx (7x7, stride 2): K on the window"))
for ax, (img, title) in zip(axes, panels, strict=True):
    ax.imshow(img, cmap="Blues", vmin=0, vmax=1.5 * img.max(), interpolation="nearest")
    for (r, c), v in np.ndenumerate(img):
        ax.text(c, r, f"{v:g}", ha="center", va="center")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(img.shape[1])), ax.set_yticks(range(img.shape[0]))
fig.tight_layout()

# %% [markdown]
# ## 4. col2im: the same thing, as tinycnn computes it
#
# tinycnn does not build the dilated, padded $G$: it reuses im2col's matrix. The forward pass
# was $Y = X_{col} K_{mat}$; a matrix product's gradients are
#
# $$\frac{\partial L}{\partial K_{mat}} = X_{col}^\top\, G_{mat}, \qquad
# \frac{\partial L}{\partial X_{col}} = G_{mat}\, K_{mat}^\top,$$
#
# the first being exactly the correlation of section 1, one matrix multiply. The second gives
# the gradient of every *copy* of a pixel in $X_{col}$. Each pixel was copied into every
# window containing it, so its gradient is the **sum** over its copies: `col2im` adds each
# row back onto its window with `+=`. A plain `=` would keep only the last window's share:
# the classic col2im bug.
#
# How many terms does each pixel's sum have? Run `col2im` on a matrix of ones: the count of
# windows that touch each pixel.

# %%
settings = [(3, 1), (3, 2), (2, 2)]  # (kernel size, stride)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
counts = {}
for ax, (k, s) in zip(axes, settings, strict=True):
    shape = (1, 8, 8, 1)
    n_windows = ((8 - k) // s + 1) ** 2
    ones = np.ones((n_windows, k * k))
    counts[k, s] = reference.col2im(ones, shape, k, k, s)[0, :, :, 0]
    ax.imshow(counts[k, s], cmap="viridis", vmin=0, vmax=9, interpolation="nearest")
    for (r, c), v in np.ndenumerate(counts[k, s]):
        ax.text(c, r, int(v), ha="center", va="center", color="w" if v < 5 else "k")
    ax.set_title(f"{k}x{k} kernel, stride {s}: windows per pixel", fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
fig.suptitle("col2im(ones): how many patches touch each pixel of an 8x8 input")
fig.tight_layout()

# %% [markdown]
# With a 3x3 kernel and stride 1, interior pixels sit in 9 windows, edges in fewer, corners
# in 1. With stride 2 the windows overlap on every other row and column (counts 1, 2, 4), and
# the last row and column are in no window at all: their gradient is 0 (the forward pass
# never read them). A 2x2 kernel with stride 2 tiles the image: each pixel once.
#
# ## 5. Checked against `Conv2D.backward`
#
# Now the real layer, in float64, with 'same' padding and stride 2 (the hardest case: both
# the crop and the skipped row matter) and also 'valid' with stride 1. `forward(x,
# training=True)` keeps what backward needs; `backward(G)` returns $\partial L / \partial x$
# and fills `layer.grads`.

# %%
x = rng.standard_normal((2, 9, 8, 3))
results = {}
for stride, padding in [(1, "valid"), (2, "same"), (2, "valid")]:
    with tinycnn.use_floatx("float64"):
        layer = tinycnn.layers.Conv2D(4, 3, strides=stride, padding=padding)
        layer.build(x.shape[1:], rng=1)
    y = tinycnn.to_numpy(layer.forward(x, training=True))
    g = rng.standard_normal(y.shape)
    dx_layer = tinycnn.to_numpy(layer.backward(g))
    kernel = tinycnn.to_numpy(layer.params["kernel"])
    pads = conv_arithmetic.paddings(padding, x.shape[1:3], (3, 3), (stride, stride))
    dk, db, dx = conv_backward(x, kernel, g, stride, pads)
    results[stride, padding] = (dk, db, dx, layer, dx_layer)
    np.testing.assert_allclose(dk, tinycnn.to_numpy(layer.grads["kernel"]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, tinycnn.to_numpy(layer.grads["bias"]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_layer, rtol=1e-10, atol=1e-12)
    print(
        f"stride {stride}, {padding:>5}: y {y.shape}, pads {pads}; our dK, db, dx == Conv2D's "
        f"(largest difference {np.abs(dx - dx_layer).max():.1e})"
    )

# %% [markdown]
# ## 6. Checked against numbers: `tinycnn.gradcheck`
#
# The derivation and the layer could share a mistake. Central differences cannot: for
# $L = \sum y \odot G$ with a random $G$, perturb one input (or weight) by $\pm h$ and
#
# $$\frac{\partial L}{\partial x_k} \approx \frac{L(x + h e_k) - L(x - h e_k)}{2h}.$$
#
# `tinycnn.gradcheck(layer, x)` does this for the input, the kernel and the bias (on a random
# sample of elements of larger arrays, plus one random direction over all of them), in
# float64, and prints a report. Lesson 4 looks inside it.

# %%
with tinycnn.use_floatx("float64"):
    checked = tinycnn.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")
report = tinycnn.gradcheck(checked, rng.standard_normal((2, 9, 8, 3)), progress=False)
print(report)

# %% [markdown]
# ## Checks

# %%
# the col2im counts: 3x3 stride 1 -> 9 in the middle, 1 in the corner; sum = windows * 9
c31 = counts[3, 1]
assert c31[4, 4] == 9 and c31[0, 0] == 1 and c31[0, 3] == 3 and c31.sum() == 36 * 9
c32 = counts[3, 2]
assert set(np.unique(c32)) == {0, 1, 2, 4} and (c32[-1] == 0).all() and (c32[:, -1] == 0).all()
np.testing.assert_array_equal(counts[2, 2], np.ones((8, 8)))

# one upstream 1 stamps the kernel on its window, unrotated
expected = np.zeros((7, 7))
expected[2:5, 4:7] = kernel_demo[:, :, 0, 0]
np.testing.assert_array_equal(dx_one[0, :, :, 0], expected)

# stride 2, 'valid' on 9 rows: (9 - 3) // 2 + 1 = 4 windows reach row 8; on 8 columns,
# 3 windows cover columns 0..6, so column 7 is never read and its gradient is exactly 0
dk, db, dx, layer, dx_layer = results[2, "valid"]
assert (dx_layer[:, :, 7, :] == 0).all() and np.abs(dx_layer[:, :, 6, :]).min() > 0

# the layer passes its own gradient check (input, kernel and bias)
assert report.ok, report
assert {r.name for r in report.results} == {"x", "kernel", "bias"}
assert report.max_rel_error < 1e-6
print("all checks passed; gradcheck max rel. error", f"{report.max_rel_error:.1e}")
