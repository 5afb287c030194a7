# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 8: Speed and backends
#
# The same convolution can be computed in very different ways. They all give the
# same numbers (up to rounding), but their running times differ by orders of
# magnitude. In this lesson we time five ways on one convolution:
#
# 1. **loops**: one dot product per output pixel and filter, in Python;
# 2. **im2col, reference**: unfold every patch into a row of a matrix, then one matrix
#    multiply (`tinycnn/kernels/reference.py`, the code that also runs on a GPU);
# 3. **im2col, blocked**: the same arithmetic, a few images at a time so the matrix stays
#    in the CPU cache, on every core (`tinycnn/kernels/cpu_conv.py`);
# 4. **Winograd F(2x2, 3x3)**: the same convolution with 2.25x fewer multiplications
#    (`tinycnn/kernels/winograd.py`);
# 5. **CuPy** on a GPU, when there is one.
#
# Then we look at what im2col costs in memory, and check that every path computes the
# same thing.
#
# A convolution of a batch $x$ of shape $(N, H, W, C)$ with $F$ filters of size
# $k_h \times k_w \times C$ produces $y$ of shape $(N, H_o, W_o, F)$:
#
# $$y_{n,i,j,f} = b_f + \sum_{u=0}^{k_h-1}\sum_{v=0}^{k_w-1}\sum_{c=0}^{C-1}
#   x_{n,\,i+u,\,j+v,\,c}\; w_{u,v,c,f}$$
#
# Each output number is a sum of $k_h k_w C$ products, so the whole convolution costs
#
# $$\text{FLOP} = 2\, N H_o W_o\, k_h k_w C\, F$$
#
# (a multiply and an add per product). How fast a path is, is how many of those it
# gets done per second.

# %%
import os
import time
import tracemalloc

import tinycnn  # before NumPy: it sets OPENBLAS_THREAD_TIMEOUT (see tinycnn/__init__.py)

# isort: split
import matplotlib.pyplot as plt
import numpy as np

from tinycnn import backend, kernels
from tinycnn.kernels import cpu_conv, winograd

QUICK = os.environ.get("TINYCNN_QUICK", "") not in ("", "0")
REPEATS = 3 if QUICK else 10  # timings: the best of this many runs
print(
    "quick mode" if QUICK else "full mode", "| fast CPU kernels:", kernels.fast_kernels_available()
)

# %% [markdown]
# ## The convolution we time
#
# We take the seed network's second convolution, the most expensive layer of a
# training step: 64 input channels, 64 filters of $3 \times 3$. Its input is
# $13 \times 13$, but the $2 \times 2$ max-pooling after it reads only the top-left
# $10 \times 10$ of its $11 \times 11$ output, which depends only on the top-left
# $12 \times 12$ of the input; that is the part tinycnn computes (an even output size,
# which Winograd needs, see below). So: $x$ is $(32, 12, 12, 64)$, the kernel
# $(3, 3, 64, 64)$, $y$ is $(32, 10, 10, 64)$.

# %%
rng = np.random.default_rng(0)
N, H, W, C, F, K = 32, 12, 12, 64, 64, 3
x = rng.standard_normal((N, H, W, C)).astype(np.float32)
kernel = (rng.standard_normal((K, K, C, F)) * np.sqrt(2 / (K * K * C))).astype(np.float32)
bias = (0.1 * rng.standard_normal(F)).astype(np.float32)
Ho, Wo = H - K + 1, W - K + 1
flop = 2 * N * Ho * Wo * K * K * C * F
print(f"x {x.shape}, kernel {kernel.shape} -> y ({N}, {Ho}, {Wo}, {F})")
print(f"{flop / 1e6:.1f} MFLOP for the forward pass ({flop / N / 1e6:.2f} per image)")


def best_time(f, repeats=REPEATS):
    """The shortest of ``repeats`` runs of f(), in seconds (the least disturbed by
    other programs: this machine is shared), after one untimed warm-up run."""
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


# %% [markdown]
# ## 1. Loops
#
# The formula, written as it reads: for each image, output pixel and filter, multiply
# the $k_h \times k_w \times C$ patch by the filter and add up. NumPy does the innermost
# sum (576 products), Python the four outer loops: $2 \times 10 \times 10 \times 64 =
# 12{,}800$ NumPy calls for two images. It is far too slow for a whole batch, so we time
# two images and report the time per image.


# %%
def conv_loops(x, kernel, bias):
    """y[n, i, j, f] = b[f] + sum over the patch of x times filter f, one number at a time."""
    n_images, h, w, _ = x.shape
    kh, kw, _, filters = kernel.shape
    ho, wo = h - kh + 1, w - kw + 1
    y = np.empty((n_images, ho, wo, filters), dtype=x.dtype)
    for n in range(n_images):
        for i in range(ho):
            for j in range(wo):
                patch = x[n, i : i + kh, j : j + kw, :]  # (kh, kw, C)
                for f in range(filters):
                    y[n, i, j, f] = np.sum(patch * kernel[:, :, :, f]) + bias[f]
    return y


LOOP_IMAGES = 2
seconds = {}  # path -> seconds per image, forward
seconds["loops"] = best_time(lambda: conv_loops(x[:LOOP_IMAGES], kernel, bias), 1) / LOOP_IMAGES
print(f"loops: {1e3 * seconds['loops']:.1f} ms per image")

# %% [markdown]
# ## 2. im2col: a convolution as one matrix multiply
#
# Every output pixel reads one $k_h \times k_w \times C$ patch. im2col copies each patch
# into one row of a matrix $X_{col}$ of shape $(N H_o W_o,\; k_h k_w C)$; the kernel,
# reshaped, is a matrix $W_{mat}$ of shape $(k_h k_w C,\; F)$, and then
#
# $$Y = X_{col}\, W_{mat} + b \qquad (N H_o W_o \times F).$$
#
# One big matrix multiply (GEMM) is what a CPU does best: the BLAS library keeps
# numbers in registers and cache and reaches close to the processor's peak. The price is
# the copy: every input pixel appears in up to $k_h k_w = 9$ rows.
#
# `kernels.conv2d_forward` dispatches to the reference (`reference.py`) when the fast
# kernels are off.

# %%
with kernels.use_fast_kernels(False):
    y_reference = kernels.conv2d_forward(x, kernel, bias, stride=1, relu=False)
    seconds["im2col\nreference"] = (
        best_time(lambda: kernels.conv2d_forward(x, kernel, bias, stride=1, relu=False)) / N
    )
print(f"im2col, reference: {1e3 * seconds['im2col' + chr(10) + 'reference']:.3f} ms per image")

# %% [markdown]
# ## 3 and 4. The fast CPU kernels: blocked im2col and Winograd
#
# With the fast kernels on (the default when numba is installed), a NumPy array goes to
# `cpu_conv.conv2d_forward`. It cuts the batch into shares that the cores take in turn,
# and each share into blocks of a few images whose im2col matrix fits in the core's
# cache (`cpu_conv.BLOCK_BYTES`, 1 MB): the big matrix is never built.
#
# For a $3 \times 3$ kernel with stride 1, an even output size and at least
# `cpu_conv.WINOGRAD_MIN_CHANNELS` input channels, each block goes through Winograd's
# $F(2 \times 2, 3 \times 3)$ instead. A $2 \times 2$ tile of output needs a
# $4 \times 4$ tile $d$ of input; directly that is $2 \cdot 2 \cdot 3 \cdot 3 = 36$
# multiplications per channel pair. Winograd's identity needs 16:
#
# $$Y = A^T \Big[ \big(G\, g\, G^T\big) \odot \big(B^T d\, B\big) \Big] A$$
#
# with $g$ the $3 \times 3$ kernel, $\odot$ the element-by-element product, and small
# constant matrices $B^T$ $(4 \times 4)$, $G$ $(4 \times 3)$, $A^T$ $(2 \times 4)$ whose
# products are only additions. Over many channels the $\odot$ becomes 16 matrix multiplies,
# one per position of the $4 \times 4$ tile. Let us check the identity on one tile:

# %%
d = rng.standard_normal((4, 4))  # one input tile, one channel
g = rng.standard_normal((3, 3))  # one 3x3 kernel
direct = np.array([[np.sum(d[i : i + 3, j : j + 3] * g) for j in range(2)] for i in range(2)])
U = winograd.G @ g @ winograd.G.T  # the kernel, transformed once (4x4)
V = winograd.BT @ d @ winograd.BT.T  # the input tile, transformed (additions only)
by_winograd = winograd.AT @ (U * V) @ winograd.AT.T  # 16 multiplies, then additions
print("direct:\n", direct, "\nWinograd:\n", by_winograd)
print("B^T =\n", winograd.BT, "\nG =\n", winograd.G, "\nA^T =\n", winograd.AT)
winograd_tile_error = np.max(np.abs(direct - by_winograd))

# %% [markdown]
# `cpu_conv.conv_algorithm` says which of the two a convolution gets. The seed
# network's first convolution (1 input channel) stays with im2col: with few channels the
# transforms cost more than the multiplications they save. To time blocked im2col on our
# 64-channel convolution we raise the channel threshold for a moment (the module
# constant's documented switch).

# %%
algorithm_conv1 = cpu_conv.conv_algorithm((3, 3, 1, 64), 1, (26, 26))
algorithm_conv2 = cpu_conv.conv_algorithm(kernel.shape, 1, (Ho, Wo))
print("conv1 (3x3x1 -> 64, 26x26 output):", algorithm_conv1)
print("conv2 (3x3x64 -> 64, 10x10 output):", algorithm_conv2)


def with_winograd(enabled, f):
    """Run f() with Winograd allowed (the default) or not."""
    saved = cpu_conv.WINOGRAD_MIN_CHANNELS
    cpu_conv.WINOGRAD_MIN_CHANNELS = saved if enabled else 10**9
    try:
        return f()
    finally:
        cpu_conv.WINOGRAD_MIN_CHANNELS = saved


def fast_forward():
    return kernels.conv2d_forward(x, kernel, bias, stride=1, relu=False)


y_blocked = with_winograd(False, fast_forward)
y_winograd = with_winograd(True, fast_forward)
seconds["im2col\nblocked"] = with_winograd(False, lambda: best_time(fast_forward)) / N
seconds["Winograd\nblocked"] = with_winograd(True, lambda: best_time(fast_forward)) / N
for path in ("im2col\nblocked", "Winograd\nblocked"):
    print(f"{path.replace(chr(10), ', ')}: {1e3 * seconds[path]:.3f} ms per image")

# %% [markdown]
# ## The backward pass
#
# Training runs backward too: $\partial L / \partial W = X_{col}^T\, \partial L/\partial Y$
# and $\partial L/\partial X = \mathrm{col2im}(\partial L/\partial Y\; W_{mat}^T)$, two more
# GEMMs of the same size (see lesson 2). We time forward and backward together for the
# three matrix-multiply paths.

# %%
dy = rng.standard_normal(y_reference.shape).astype(np.float32)


def forward_backward():
    y = kernels.conv2d_forward(x, kernel, bias, stride=1, relu=False)
    return kernels.conv2d_backward(
        x, kernel, y, dy, stride=1, relu=False, with_bias=True, input_grad=True
    )


with kernels.use_fast_kernels(False):
    grads_reference = forward_backward()
    seconds_step = {"im2col\nreference": best_time(forward_backward) / N}
grads_blocked = with_winograd(False, forward_backward)
grads_winograd = with_winograd(True, forward_backward)
seconds_step["im2col\nblocked"] = with_winograd(False, lambda: best_time(forward_backward)) / N
seconds_step["Winograd\nblocked"] = with_winograd(True, lambda: best_time(forward_backward)) / N

# %% [markdown]
# ## 5. CuPy on a GPU
#
# A model or an array moved to the `"cupy"` backend computes on the GPU with the same
# reference code: `reference.py` is written against an array module `xp` that is NumPy
# or CuPy. GPU calls return before the GPU has finished, so a timing must wait for it
# (`backend.synchronize`). Without a GPU this part is skipped.

# %%
HAVE_GPU = backend.cupy_available()
y_gpu = grads_gpu = None
if HAVE_GPU:
    x_gpu, kernel_gpu, bias_gpu, dy_gpu = (
        backend.to_backend(a, "cupy") for a in (x, kernel, bias, dy)
    )

    def gpu_forward():
        y = kernels.conv2d_forward(x_gpu, kernel_gpu, bias_gpu, stride=1, relu=False)
        backend.synchronize(y)
        return y

    def gpu_forward_backward():
        y = kernels.conv2d_forward(x_gpu, kernel_gpu, bias_gpu, stride=1, relu=False)
        g = kernels.conv2d_backward(
            x_gpu, kernel_gpu, y, dy_gpu, stride=1, relu=False, with_bias=True, input_grad=True
        )
        backend.synchronize(y)
        return g

    y_gpu = backend.to_numpy(gpu_forward())
    grads_gpu = [backend.to_numpy(g) for g in gpu_forward_backward()]
    seconds["CuPy\n(GPU)"] = best_time(gpu_forward) / N
    seconds_step["CuPy\n(GPU)"] = best_time(gpu_forward_backward) / N
    print(f"CuPy: {1e3 * seconds['CuPy' + chr(10) + '(GPU)']:.4f} ms per image forward")
else:
    print("No usable GPU (CuPy missing or no CUDA device): the CuPy timings are skipped.")

# %% [markdown]
# ## The timings side by side
#
# On the left a logarithmic axis: the loops are hundreds of times slower than any
# matrix-multiply path.
# The numbers in the bars are the throughput, $\text{FLOP}/\text{time}$, in GFLOP/s
# (Winograd does fewer multiplications, so its "GFLOP/s" counts the work im2col would do).

# %%
fig, (ax_fwd, ax_step) = plt.subplots(1, 2, figsize=(11, 4))
per_image_flop = flop / N
for ax, table, title, scale in (
    (ax_fwd, seconds, "forward", 1),
    (ax_step, seconds_step, "forward + backward", 3),
):
    names = list(table)
    ms = [1e3 * table[name] for name in names]
    colors = [
        "tab:red" if n == "loops" else "tab:green" if "GPU" in n else "tab:blue" for n in names
    ]
    bars = ax.bar(names, ms, color=colors)
    if "loops" in table:  # 100s of times slower than the rest: a log axis
        ax.set_yscale("log")
        ax.set_ylim(top=max(ms) * 8)
    else:
        ax.set_ylim(top=max(ms) * 1.25)
    ax.set_ylabel("milliseconds per image" + (" (log scale)" if "loops" in table else ""))
    ax.set_title(f"conv 12x12x64 -> 10x10x64, 3x3: {title}")
    for bar, name in zip(bars, names, strict=True):
        gflops = scale * per_image_flop / table[name] / 1e9
        ax.annotate(f"{gflops:.1f}\nGFLOP/s", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
fig.tight_layout()
plt.show()

for name, s in seconds.items():
    print(f"{name.replace(chr(10), ' '):22s} forward {1e3 * s:9.3f} ms/image", end="")
    if name in seconds_step:
        print(f"   forward+backward {1e3 * seconds_step[name]:8.3f} ms/image", end="")
    print()

# %% [markdown]
# What to expect on the 2-core machine the project is measured on (docs/performance.md):
# the loops take about 40 ms per image; im2col is some 500 times faster (about 0.07 ms
# per image forward, some 100 GFLOP/s). For the forward pass alone, at this small batch,
# the reference's single big GEMM is as fast as the blocked one (its 7 MB matrix is
# written once and read once). The blocks pay off in the backward pass, which goes over
# the unfolded input twice more and writes its gradient, and at larger batches; and
# Winograd, with 16 multiplications instead of 36, is the fastest CPU path for this
# layer (forward + backward about 0.6x the time of im2col; a training step of the seed
# network about 0.77x). Single timings on a shared machine swing by 30% or more, and
# the blocked paths, which use every core, suffer most when another program is busy: if
# your blocked im2col bar stands above the reference's in the forward + backward plot,
# that is what happened (run the two cells again). Compare ratios, not milliseconds. On a GPU the whole batch is one launch of a few
# kernels, and a batch this small mostly measures the launch overhead.
#
# ## What im2col costs in memory
#
# The unfolded matrix has $N H_o W_o$ rows of $k_h k_w C$ numbers:
#
# $$\text{bytes}(X_{col}) = N\, H_o W_o\, k_h k_w\, C \times \text{itemsize}
#   \;\approx\; k_h k_w \times \text{bytes}(x) \quad (H_o \approx H).$$
#
# For a $3 \times 3$ kernel that is nine copies of the input. We compute it for our
# convolution, check it against the array `reference.im2col` really builds, and measure
# the peak memory of each path with `tracemalloc` (NumPy reports its allocations to it).


# %%
def im2col_bytes(n, h, w, c, k=3, itemsize=4):
    """Bytes of the im2col matrix of n images (h, w, c) for a k x k, stride-1 'valid' conv."""
    return n * (h - k + 1) * (w - k + 1) * k * k * c * itemsize


cols = kernels.im2col(x, K, K)
print(f"x: {x.nbytes / 1e6:.2f} MB, im2col matrix {cols.shape}: {cols.nbytes / 1e6:.2f} MB "
      f"(formula: {im2col_bytes(N, H, W, C) / 1e6:.2f} MB), ratio {cols.nbytes / x.nbytes:.2f}")  # fmt: skip
del cols


def peak_bytes(f):
    """The peak of memory newly allocated (through NumPy) while f() runs."""
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


with kernels.use_fast_kernels(False):
    peak_reference = peak_bytes(
        lambda: kernels.conv2d_forward(x, kernel, bias, stride=1, relu=False)
    )
peak_fast = with_winograd(False, lambda: peak_bytes(fast_forward))
y_bytes = y_reference.nbytes
print(f"peak while convolving: reference {peak_reference / 1e6:.2f} MB, "
      f"blocked {peak_fast / 1e6:.2f} MB (the output alone is {y_bytes / 1e6:.2f} MB)")  # fmt: skip

# %% [markdown]
# The blocked path's work arrays are kept per thread from call to call, so once warmed up
# it allocates little more than its output. The reference builds the whole matrix each
# call. How the matrix grows with the image size and the batch, for the 64-channel layer
# (a $3 \times 3$ kernel on $H \times H \times 64$ inputs), against the 1 MB block the
# fast kernels work in and a typical 2 MB per-core L2 cache:

# %%
sizes = np.array([8, 16, 28, 56, 112, 224])
batches = np.array([1, 8, 32, 64, 128, 256])
fig, (ax_size, ax_batch) = plt.subplots(1, 2, figsize=(11, 4))
for n in (1, 32, 128):
    ax_size.plot(
        sizes, [im2col_bytes(n, s, s, 64) / 2**20 for s in sizes], "o-", label=f"im2col, batch {n}"
    )
ax_size.plot(sizes, [32 * s * s * 64 * 4 / 2**20 for s in sizes], "k--", label="input x, batch 32")
for ax in (ax_size, ax_batch):
    ax.axhline(
        cpu_conv.BLOCK_BYTES / 2**20, color="tab:red", lw=1, label="a block of cpu_conv (1 MiB)"
    )
    ax.axhline(2, color="tab:gray", lw=1, ls=":", label="L2 cache of one core (2 MiB)")
    ax.set_yscale("log")
    ax.set_ylabel("MiB")
ax_size.set_xscale("log")
ax_size.set_xticks(sizes, [str(s) for s in sizes], minor=False)
ax_size.minorticks_off()
ax_size.set_xlabel("image size H = W (64 channels, 3x3 kernel)")
ax_size.set_title("im2col matrix vs image size")
ax_size.legend(fontsize=8)
for s in (13, 28, 56):
    ax_batch.plot(
        batches, [im2col_bytes(n, s, s, 64) / 2**20 for n in batches], "o-", label=f"{s}x{s}x64"
    )
ax_batch.set_xscale("log", base=2)
ax_batch.set_xticks(batches, [str(n) for n in batches])
ax_batch.set_xlabel("batch size N")
ax_batch.set_title("im2col matrix vs batch size (grows linearly)")
ax_batch.legend(fontsize=8)
fig.tight_layout()
plt.show()
print(
    f"224x224x64 at batch 128: {im2col_bytes(128, 224, 224, 64) / 2**30:.1f} GiB of im2col matrix"
)

# %% [markdown]
# At ImageNet sizes the matrix of a single layer reaches gigabytes: that is why real
# libraries convolve in tiles (as `cpu_conv.py` does), use implicit GEMM on GPUs (the
# patches are gathered on the fly, never stored), or Winograd and FFT methods.
#
# ## One training step of the seed network
#
# The whole network, forward, backward and the Adam update: the reference path runs
# each layer on its own with the NumPy kernels; the fast path also fuses each
# Conv2D(relu) + MaxPooling2D pair (`models/fusion.py`) and uses Winograd for conv2.

# %%
step_batch = 32 if QUICK else 64
images = rng.random((step_batch, 28, 28, 1), dtype=np.float32)
labels = rng.integers(0, 10, step_batch)
step_seconds = {}
for name, fast in (("reference kernels", False), ("fast kernels", True)):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with kernels.use_fast_kernels(fast):
        step_seconds[name] = best_time(
            lambda m=model: m.train_on_batch(images, labels), 2 if QUICK else 5
        )
    print(f"{name}: {1e3 * step_seconds[name]:.1f} ms per step of {step_batch} images")
speedup = step_seconds["reference kernels"] / step_seconds["fast kernels"]
print(f"the fast kernels make a training step {speedup:.1f}x faster")

# %% [markdown]
# ## Checks
#
# Every path must compute the same convolution. In float32 each sum of 576 products
# is rounded in a different order by each path (and Winograd multiplies transformed
# numbers), so they agree to about $10^{-5}$ relative, not bit for bit.

# %%
# the forward pass: reference == blocked im2col == Winograd == loops
np.testing.assert_allclose(y_blocked, y_reference, rtol=1e-4, atol=1e-4)
np.testing.assert_allclose(y_winograd, y_reference, rtol=1e-4, atol=1e-4)
y_loops = conv_loops(x[:LOOP_IMAGES], kernel, bias)
np.testing.assert_allclose(y_loops, y_reference[:LOOP_IMAGES], rtol=1e-4, atol=1e-4)
# ... and the layer itself gives the same
layer = tinycnn.layers.Conv2D(F, K, input_shape=(H, W, C))
layer.build((H, W, C))
layer.set_weights([kernel, bias])
np.testing.assert_allclose(tinycnn.to_numpy(layer.forward(x)), y_reference, rtol=1e-4, atol=1e-4)

# the backward pass: dkernel, dbias, dx of every path agree
for grads in (grads_blocked, grads_winograd):
    for got, want in zip(grads, grads_reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())

# Winograd's identity on one tile is exact up to float64 rounding
assert winograd_tile_error < 1e-12, winograd_tile_error
assert (algorithm_conv1, algorithm_conv2) == ("im2col", "winograd")

# the im2col formula is the matrix the reference builds: 9 * (10/12)^2 = 6.25x the input here
assert im2col_bytes(N, H, W, C) == N * Ho * Wo * K * K * C * 4 == kernels.im2col(x, K, K).nbytes
assert im2col_bytes(N, H, W, C) / x.nbytes == K * K * Ho * Wo / (H * W) == 6.25
assert 0.9 * im2col_bytes(N, H, W, C) <= peak_reference  # the reference builds the matrix
assert peak_fast < 0.5 * im2col_bytes(N, H, W, C)  # the blocked path never does

# the loops are far slower than any matrix-multiply path (a 10x margin for a busy machine)
assert seconds["loops"] > 10 * max(seconds[p] for p in seconds if p != "loops"), seconds

# NumPy and CuPy give the same numbers, when there is a GPU
if HAVE_GPU:
    np.testing.assert_allclose(y_gpu, y_reference, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads_gpu, grads_reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
print("all checks passed" + ("" if HAVE_GPU else " (CuPy comparison skipped: no GPU)"))
