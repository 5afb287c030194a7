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
# # Lesson 1: convolution by hand
#
# A convolutional layer slides a small window of weights, the **kernel**, over an image and
# takes a dot product at every position. In this lesson we write it three times:
#
# 1. with plain loops, exactly as the formula reads;
# 2. with **im2col**: unfold every window into a row of a matrix, then one matrix multiply;
# 3. with `tinycnn.layers.Conv2D`, and check that all three agree to the last digits.
#
# Then we apply two classic hand-made filters (Sobel, blur) to a Fashion-MNIST picture and
# time the three versions.
#
# **Notation** (channels-last, as Keras and tinycnn): a batch of images $x$ of shape
# $(N, H, W, C)$, a kernel $K$ of shape $(k_h, k_w, C, F)$ (F filters), a bias $b$ of
# shape $(F,)$, a stride $s$. The output $y$ has shape $(N, H_o, W_o, F)$ with
#
# $$y_{n, o_h, o_w, f} = b_f + \sum_{i=0}^{k_h-1} \sum_{j=0}^{k_w-1} \sum_{c=0}^{C-1}
#   x_{n,\; o_h s + i,\; o_w s + j,\; c}\; K_{i, j, c, f},
#   \qquad H_o = \left\lfloor \frac{H + p_h - k_h}{s} \right\rfloor + 1$$
#
# where $p_h$ is the total padding added to the rows (0 for `"valid"`). Strictly this is a
# *cross-correlation* (the kernel is not flipped); deep-learning libraries all call it
# convolution, and since the kernel is learned the difference does not matter.
#
# Set `TINYCNN_QUICK=1` (as the tests do) to run on a small subset in seconds.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinycnn
from tinycnn import conv_arithmetic
from tinycnn.datasets import fashion_mnist

QUICK = os.environ.get("TINYCNN_QUICK", "") not in ("", "0")
rng = np.random.default_rng(0)
print("quick subset" if QUICK else "full run")

# %% [markdown]
# ## 1. Loops: the formula, word for word
#
# Six nested loops would do: images $n$, output rows $o_h$, output columns $o_w$, filters
# $f$, and the three sums. We let NumPy do the innermost three sums (`np.sum` over the
# patch times the filter), so the loops left are the four that produce one output number
# each.


# %%
def conv_loops(x, kernel, bias, stride=1):
    """y[n, oh, ow, f] = b[f] + sum_{i,j,c} x[n, oh*s+i, ow*s+j, c] * K[i, j, c, f].

    x (N, H, W, C), kernel (kh, kw, C, F), bias (F,) -> y (N, Ho, Wo, F); no padding.
    """
    n_img, h, w, _ = x.shape
    kh, kw, _, n_filt = kernel.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n_img, ho, wo, n_filt), dtype=x.dtype)
    for n in range(n_img):
        for oh in range(ho):
            for ow in range(wo):
                patch = x[n, oh * stride : oh * stride + kh, ow * stride : ow * stride + kw, :]
                for f in range(n_filt):
                    y[n, oh, ow, f] = np.sum(patch * kernel[:, :, :, f]) + bias[f]
    return y


x_small = rng.standard_normal((2, 7, 7, 3))  # 2 images, 7x7, 3 channels
k_small = rng.standard_normal((3, 3, 3, 4))  # 4 filters of 3x3x3
b_small = rng.standard_normal(4)
y_loops = conv_loops(x_small, k_small, b_small)
print("x", x_small.shape, "-> y", y_loops.shape)  # Ho = (7 - 3) // 1 + 1 = 5

# %% [markdown]
# ## 2. im2col: one row per window, then one matrix multiply
#
# Every output pixel $(n, o_h, o_w)$ is the dot product of *one* patch of $k_h k_w C$
# numbers with each filter. Write each patch as a row of a matrix $X_{col}$ of shape
# $(N H_o W_o,\; k_h k_w C)$, and each filter as a column of $K_{mat}$ =
# `kernel.reshape(kh*kw*C, F)`. Then the whole layer is one matrix product:
#
# $$Y_{mat} = X_{col}\, K_{mat} + b, \qquad Y_{mat} \in \mathbb{R}^{N H_o W_o \times F}$$
#
# and `reshape(N, Ho, Wo, F)` gives back the images. The row order inside a patch must be
# the order of `kernel.reshape`: $(i, j, c)$, channel fastest. A matrix multiply runs at
# the speed of the BLAS library (many GFLOP/s); the price is memory, since every input pixel
# is copied into up to $k_h k_w$ rows.


# %%
def im2col_simple(x, kh, kw, stride=1):
    """(N, H, W, C) -> (N*Ho*Wo, kh*kw*C): row (n, oh, ow) is the patch at (oh*s, ow*s)."""
    n_img, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((n_img, ho, wo, kh * kw * c), dtype=x.dtype)
    for oh in range(ho):
        for ow in range(wo):
            patch = x[:, oh * stride : oh * stride + kh, ow * stride : ow * stride + kw, :]
            cols[:, oh, ow, :] = patch.reshape(n_img, -1)  # (i, j, c) order, c fastest
    return cols.reshape(n_img * ho * wo, kh * kw * c)


def conv_im2col(x, kernel, bias, stride=1):
    n_img, h, w, _ = x.shape
    kh, kw, _, n_filt = kernel.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = im2col_simple(x, kh, kw, stride)  # (N*Ho*Wo, kh*kw*C)
    y = cols @ kernel.reshape(-1, n_filt) + bias  # (N*Ho*Wo, F)
    return y.reshape(n_img, ho, wo, n_filt)


y_im2col = conv_im2col(x_small, k_small, b_small)
np.testing.assert_allclose(y_im2col, y_loops, rtol=1e-12, atol=1e-12)
print("im2col == loops, largest difference", np.abs(y_im2col - y_loops).max())

# %% [markdown]
# **Which input pixels fill which column?** Take one 5x5 image with one channel and number
# its pixels 0..24. A 3x3 kernel with stride 1 has $3 \times 3 = 9$ positions, so
# $X_{col}$ has 9 rows (one per output pixel) and 9 columns (one per kernel entry
# $(i, j)$). Each cell of the matrix below shows the number of the input pixel copied there.
# Reading down a column: kernel entry $(i, j)$ meets the pixels of a shifted 3x3 block, which
# is exactly why tinycnn's own `im2col` (in `tinycnn/kernels/reference.py`) loops over the
# 9 kernel offsets and copies one strided slice each, instead of over the output pixels.

# %%
numbers = np.arange(25, dtype=float).reshape(1, 5, 5, 1)
cols_numbers = im2col_simple(numbers, 3, 3)  # (9, 9)

fig, (ax_in, ax_cols) = plt.subplots(1, 2, figsize=(10, 4.4), width_ratios=[1, 1.6])
ax_in.imshow(numbers[0, :, :, 0], cmap="tab20", vmin=0, vmax=25)
for (r, c), v in np.ndenumerate(numbers[0, :, :, 0]):
    ax_in.text(c, r, int(v), ha="center", va="center", fontsize=11)
ax_in.add_patch(plt.Rectangle((0.5, -0.5), 3, 3, fill=False, lw=3, ec="k"))  # window at (0, 1)
ax_in.set_title("input 5x5, pixels numbered\n(box: the window of output pixel (0, 1))")
ax_in.set_xticks([]), ax_in.set_yticks([])
ax_cols.imshow(cols_numbers, cmap="tab20", vmin=0, vmax=25)
for (r, c), v in np.ndenumerate(cols_numbers):
    ax_cols.text(c, r, int(v), ha="center", va="center", fontsize=10)
ax_cols.add_patch(plt.Rectangle((-0.5, 0.5), 9, 1, fill=False, lw=3, ec="k"))  # row 1
ax_cols.set_xticks(range(9), [f"({i},{j})" for i in range(3) for j in range(3)], fontsize=8)
ax_cols.set_yticks(range(9), [f"({oh},{ow})" for oh in range(3) for ow in range(3)], fontsize=8)
ax_cols.set_xlabel("column = kernel entry (i, j)")
ax_cols.set_ylabel("row = output pixel (oh, ow)")
ax_cols.set_title("im2col matrix: which input pixel fills each cell")
fig.tight_layout()

# %% [markdown]
# Pixel 12, the centre, appears 9 times (it lies in every window); a corner pixel appears
# once. Keep this count in mind: in lesson 2 the backward pass adds gradients back along
# the same copies.
#
# ## 3. The library: `tinycnn.layers.Conv2D`
#
# `Conv2D` does the same im2col and matrix multiply (on the CPU a compiled kernel computes
# it block by block, which saves the memory). We give it our kernel and bias with
# `set_weights` and compare. We compute in float64 so that "equal" can mean 12 digits.

# %%
with tinycnn.use_floatx("float64"):
    conv = tinycnn.layers.Conv2D(4, 3)
    conv.build(x_small.shape[1:])
conv.set_weights([k_small, b_small])
y_layer = tinycnn.to_numpy(conv.forward(x_small))
np.testing.assert_allclose(y_layer, y_loops, rtol=1e-10, atol=1e-12)
print("Conv2D == loops, largest difference", np.abs(y_layer - y_loops).max())

# stride 2 and 'same' padding: pad as Conv2D does, then the same loops
with tinycnn.use_floatx("float64"):
    conv_s2 = tinycnn.layers.Conv2D(4, 3, strides=2, padding="same")
    conv_s2.build(x_small.shape[1:])
conv_s2.set_weights([k_small, b_small])
pads = conv_arithmetic.paddings("same", (7, 7), (3, 3), (2, 2))
x_padded = np.pad(x_small, ((0, 0), *pads, (0, 0)))
y_s2_loops = conv_loops(x_padded, k_small, b_small, stride=2)
y_s2_layer = tinycnn.to_numpy(conv_s2.forward(x_small))
np.testing.assert_allclose(y_s2_layer, y_s2_loops, rtol=1e-10, atol=1e-12)
print("'same', stride 2: padding", pads, "output", y_s2_layer.shape, "(ceil(7 / 2) = 4)")

# %% [markdown]
# ## 4. Hand-made filters on a Fashion-MNIST picture
#
# Before networks learned their kernels, image processing used fixed ones:
#
# $$K_{\text{Sobel}-x} = \begin{pmatrix} -1 & 0 & 1 \\ -2 & 0 & 2 \\ -1 & 0 & 1 \end{pmatrix},
# \qquad K_{\text{Sobel}-y} = K_{\text{Sobel}-x}^\top,
# \qquad K_{\text{blur}} = \frac{1}{16}\begin{pmatrix} 1 & 2 & 1 \\ 2 & 4 & 2 \\ 1 & 2 & 1
# \end{pmatrix}$$
#
# Sobel-x responds to a change from left to right (a vertical edge: positive where it gets
# brighter to the right, negative where darker), Sobel-y to horizontal edges, and the blur
# averages a pixel with its neighbours (its weights sum to 1, so a flat area keeps its value).
# The first layer of a trained network often learns filters much like these (lesson 6).
# One `Conv2D` with three filters applies all three at once.
#
# The loader never downloads here: without the data it stops with a message that says where
# it looked.

# %%
(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(download=False, verbose=False)
n_keep = 256 if QUICK else 2048
images = tinycnn.preprocessing.prepare_images(x_test[:n_keep], dtype="float64")  # (n, 28, 28, 1)
labels = y_test[:n_keep]

sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
blur = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float) / 16
filters = np.stack([sobel_x, sobel_x.T, blur], axis=-1)[:, :, None, :]  # (3, 3, 1, 3)

with tinycnn.use_floatx("float64"):
    hand_made = tinycnn.layers.Conv2D(3, 3, padding="same", use_bias=False)
    hand_made.build((28, 28, 1))
hand_made.set_weights([filters])
responses = tinycnn.to_numpy(hand_made.forward(images[:8]))  # (8, 28, 28, 3)

pick = 0
fig, axes = plt.subplots(1, 5, figsize=(14, 3.2))
panels = [
    (images[pick, :, :, 0], f"input: {fashion_mnist.CLASS_NAMES[labels[pick]]}", "gray"),
    (responses[pick, :, :, 0], "Sobel-x (vertical edges)", "RdBu_r"),
    (responses[pick, :, :, 1], "Sobel-y (horizontal edges)", "RdBu_r"),
    (np.hypot(responses[pick, :, :, 0], responses[pick, :, :, 1]), "edge strength", "magma"),
    (responses[pick, :, :, 2], "blur", "gray"),
]
for ax, (img, title, cmap) in zip(axes, panels, strict=True):
    if cmap == "RdBu_r":  # signed: a symmetric scale, 0 is white
        lim = np.abs(img).max()
        im = ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    else:
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()

# %% [markdown]
# ## 5. How fast is each version?
#
# The same convolution (8 filters of 3x3 on 28x28 grayscale images) three ways. The loops
# run one small `np.sum` per output number, about $N \cdot 26 \cdot 26 \cdot 8$ Python-level
# calls; im2col does one copy per window and one matrix multiply; `Conv2D` uses tinycnn's
# compiled CPU kernel. (Lesson 8 goes further: Winograd, threads, the GPU.)

# %%
batch = images[: 8 if QUICK else 64].astype(np.float32)
k_time = rng.standard_normal((3, 3, 1, 8)).astype(np.float32)
b_time = np.zeros(8, dtype=np.float32)
conv_time = tinycnn.layers.Conv2D(8, 3)
conv_time.build((28, 28, 1))
conv_time.set_weights([k_time, b_time])
conv_time.forward(batch)  # the first call may compile or load the kernel: not timed


def best_of(fn, repeats):
    """The fastest of a few runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


t_loops, out_loops = best_of(lambda: conv_loops(batch, k_time, b_time), 1)
t_im2col, out_im2col = best_of(lambda: conv_im2col(batch, k_time, b_time), 5)
t_layer, out_layer = best_of(lambda: tinycnn.to_numpy(conv_time.forward(batch)), 5)
timings = {"loops": t_loops, "im2col (ours)": t_im2col, "Conv2D": t_layer}
for name, t in timings.items():
    print(f"{name:>14}: {t * 1e3:9.2f} ms  ({t / len(batch) * 1e6:8.1f} us per image)")

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(timings), [t * 1e3 for t in timings.values()], color=["C3", "C1", "C2"])
ax.set_xscale("log")
ax.set_xlabel(f"milliseconds for {len(batch)} images (log scale)")
ax.set_title("the same convolution, three ways")
ax.invert_yaxis()
fig.tight_layout()

# %% [markdown]
# ## Checks
#
# These cells fail if the library or this notebook is wrong.
#
# * the three versions agree (above, and here on the timed batch in float32);
# * the output-size formula: $H_o = \lfloor (28 - 3)/1 \rfloor + 1 = 26$, and
#   $\lceil 7/2 \rceil = 4$ with `"same"` and stride 2;
# * im2col's picture: pixel 12 (the centre of the 5x5 image) fills 9 cells, a corner pixel 1;
# * Sobel-x on a step image (0 on the left half, 1 on the right) gives exactly 4 on the two
#   columns beside the step ($1 + 2 + 1$) and 0 elsewhere; the blur keeps a constant image
#   constant;
# * the loops are the slowest of the three.

# %%
np.testing.assert_allclose(out_im2col, out_loops, rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(out_layer, out_loops, rtol=1e-4, atol=1e-5)
assert out_layer.shape == (len(batch), 26, 26, 8)
assert y_s2_layer.shape == (2, 4, 4, 4)

counts = np.bincount(cols_numbers.astype(int).ravel(), minlength=25)
assert counts[12] == 9 and counts[0] == 1 and counts.sum() == 81, counts

step = np.zeros((1, 6, 8, 1))
step[:, :, 4:] = 1.0
with tinycnn.use_floatx("float64"):
    edge = tinycnn.layers.Conv2D(1, 3, use_bias=False)
    edge.build((6, 8, 1))
edge.set_weights([sobel_x[:, :, None, None]])
response = tinycnn.to_numpy(edge.forward(step))[0, :, :, 0]  # (4, 6): windows at columns 0..5
expected = np.zeros((4, 6))
expected[:, [2, 3]] = 4.0  # the windows that straddle the step
np.testing.assert_array_equal(response, expected)

flat = np.full((1, 10, 10, 1), 0.7)
blurred = tinycnn.to_numpy(hand_made.forward(flat))[0, 1:-1, 1:-1, 2]  # inside: no padding
np.testing.assert_allclose(blurred, 0.7, rtol=1e-12)

assert t_loops > t_im2col and t_loops > t_layer, timings
print("all checks passed")
