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
# # Lesson 4: the gradient-checking lab
#
# A backward pass written by hand can be wrong in ways training does not show: the loss
# still goes down, only more slowly, or the network learns a little less. The one reliable
# test is to compare it with the definition of a derivative, computed numerically. This lab
# looks at how to do that well:
#
# 1. how the error depends on the step $h$: a **U-shaped curve**, in float64 and float32;
# 2. **kinks** (ReLU at 0, ties in max-pooling), where a finite step measures the wrong slope;
# 3. which relative errors mean "correct" and which mean "bug": a **thresholds table**;
# 4. a student's **custom layer**, checked with `tinycnn.gradcheck`, and a buggy one, caught.
#
# For a function $L(\theta)$, Taylor's theorem gives the two classic estimates of
# $L'(\theta)$:
#
# $$\underbrace{\frac{L(\theta + h) - L(\theta)}{h}}_{\text{forward}} = L' + \frac{h}{2}L''
# + O(h^2), \qquad \underbrace{\frac{L(\theta + h) - L(\theta - h)}{2h}}_{\text{central}}
# = L' + \frac{h^2}{6}L''' + O(h^4).$$
#
# The central difference is far more accurate for the same $h$. But $h$ cannot be made
# arbitrarily small: each value of $L$ carries a rounding error of about
# $\varepsilon\,|L|$ ($\varepsilon = 2.2 \times 10^{-16}$ in float64, $1.2 \times 10^{-7}$
# in float32), and dividing by $2h$ magnifies it. The total error of the central difference
# is about
#
# $$E(h) \approx \frac{h^2}{6}|L'''| + \frac{\varepsilon\,|L|}{h}, \qquad \text{smallest at }
# h^* \approx \left(\frac{3\varepsilon |L|}{|L'''|}\right)^{1/3}:$$
#
# roughly $10^{-5}$ in float64 and $10^{-2}$ in float32, where the best reachable error is
# about $\varepsilon^{2/3}$: $10^{-11}$ against $10^{-5}$.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinycnn
from tinycnn.layers import Conv2D, Dense, Flatten, Layer, MaxPooling2D, ReLU

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The U-shaped curve
#
# Take a small convolution with a smooth activation (tanh: no kinks yet) and the scalar
# $L = \sum y \odot G$ for a fixed random $G$; then $\partial L/\partial K$ is exactly what
# `backward(G)` computes. We nudge five kernel weights by $\pm h$ for $h$ from $10^{-12}$ to
# $1$ and compare with the analytic gradient (computed in float64), with the relative error
#
# $$\text{rel}(a, n) = \frac{|a - n|}{|a| + |n|}.$$
#
# The float32 curve runs the same layer, weights rounded to float32, computing $L$ in float32.

# %%
x = rng.standard_normal((2, 8, 8, 3))
with tinycnn.use_floatx("float64"):
    layer64 = Conv2D(4, 3, activation="tanh")
    layer64.build(x.shape[1:], rng=0)
with tinycnn.use_floatx("float32"):
    layer32 = Conv2D(4, 3, activation="tanh")
    layer32.build(x.shape[1:], rng=0)
layer32.set_weights(layer64.get_weights())
G = rng.standard_normal((2, 6, 6, 4))  # the upstream gradient, y's shape

layer64.forward(x, training=True)
layer64.backward(G)
analytic = tinycnn.to_numpy(layer64.grads["kernel"]).copy()
picked = [tuple(rng.integers(0, s) for s in analytic.shape) for _ in range(5)]


def loss(layer, xs, g):
    """L = sum(y * G), in the layer's own precision."""
    y = layer.forward(xs.astype(layer.dtype))
    return float((y * g.astype(layer.dtype)).sum(dtype=layer.dtype))


def numeric(layer, index, h, central=True):
    """The finite-difference estimate of dL/dK[index], perturbing the weight in place."""
    kernel = layer.params["kernel"]
    old = kernel[index].copy()
    kernel[index] = old + h
    plus = loss(layer, x, G)
    kernel[index] = old - h if central else old
    minus = loss(layer, x, G)
    kernel[index] = old
    return (plus - minus) / (2 * h if central else h)


def rel(a, n):
    return abs(a - n) / max(abs(a) + abs(n), 1e-300)


steps = np.logspace(-12, 0, 37)
curves = {"float64, central": [], "float64, forward": [], "float32, central": []}
for h in steps:
    for name, layer, central in [
        ("float64, central", layer64, True),
        ("float64, forward", layer64, False),
        ("float32, central", layer32, True),
    ]:
        errors = [rel(analytic[i], numeric(layer, i, h, central)) for i in picked]
        curves[name].append(np.median(errors))
curves = {name: np.array(errs) for name, errs in curves.items()}
best = {name: (steps[np.argmin(errs)], errs.min()) for name, errs in curves.items()}
for name, (h_best, err) in best.items():
    print(f"{name:17s}: best h {h_best:.0e}, median rel. error there {err:.1e}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.6))
for (name, errs), style in zip(curves.items(), ["o-", "s--", "^-"], strict=True):
    ax.loglog(steps, np.maximum(errs, 1e-17), style, ms=4, label=name)
eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
ax.loglog(steps, steps**2, ":", color="gray", lw=1)
ax.text(2e-4, 1e-11, "$h^2$ (truncation)", color="gray")
ax.loglog(steps, eps64 / steps, ":", color="gray", lw=1)
ax.text(1e-11, 1e-8, r"$\varepsilon_{64}/h$ (rounding)", color="gray")
ax.set_ylim(1e-14, 2)
ax.set_xlabel("step h")
ax.set_ylabel("median relative error (5 weights)")
ax.set_title("finite differences against the analytic gradient of Conv2D(tanh)")
ax.legend()
ax.grid(True, which="major", alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Read the curve from the right: large $h$, the truncation term $h^2$ (slope 2; slope 1 for
# the forward difference) dominates; small $h$, rounding $\varepsilon/h$ (slope -1). The
# bottom of the U is where they meet. In float32 the whole rounding line sits about
# $\varepsilon_{32}/\varepsilon_{64} \approx 5 \times 10^8$ times higher: the best error is about
# $10^{-5}$ (a median over five weights; single weights do worse) at $h \approx 10^{-3}$, and
# $h = 10^{-6}$, excellent in float64, gives an error of about $10^{-1}$; below about
# $10^{-7}$ the change of $L$ is lost in float32's rounding of $L$ (and, for steps smaller
# still, $\theta + h = \theta$): the estimate is 0, a relative error of 1. That is why `tinycnn.gradcheck` always checks a **float64 copy** of a float32 layer, and
# why a float32 check cannot ask for much better than $10^{-3}$.
#
# `tinycnn.gradcheck` uses $h = 10^{-6}$ for a layer and a further trick: it subtracts the two
# *outputs* before summing against $G$, so outputs the nudged weight does not touch cancel
# exactly and the rounding does not grow with the size of the layer; and it discounts the
# rounding it can bound (an error of 0 means "equal within rounding").
#
# ## 2. Kinks
#
# ReLU has no derivative at 0 and max-pooling none at a tie. A step that crosses the kink
# measures an average of the two slopes. For $\mathrm{relu}(x)$ at $x = 3 \times 10^{-7}$
# with $h = 10^{-6}$: $(\mathrm{relu}(x + h) - \mathrm{relu}(x - h))/2h = (1.3 \times
# 10^{-6} - 0)/(2 \times 10^{-6}) = 0.65$, while the true slope there is 1. A correct layer
# "fails" a naive check:

# %%
x_kink = np.array([[3e-7, -2e-7, 0.5, -0.5, 0.8, 1.0, -1.0, 0.2, 0.3, -0.4, 0.6, 0.7]])
relu = ReLU()
with tinycnn.use_floatx("float64"):
    relu.forward(x_kink, training=True)
    relu_analytic = tinycnn.to_numpy(relu.backward(np.ones_like(x_kink)))
h = 1e-6
naive = (np.maximum(x_kink + h, 0) - np.maximum(x_kink - h, 0)) / (2 * h)
naive_errors = np.abs(naive - relu_analytic) / np.maximum(
    np.abs(naive) + np.abs(relu_analytic), 1e-8
)
print("x            ", x_kink[0, :4], "...")
print("analytic     ", relu_analytic[0, :4], "...")
print("naive numeric", naive[0, :4], "...")
print("naive worst rel. error", naive_errors.max())

relu_report = tinycnn.gradcheck(ReLU(), x_kink, progress=False)
print(relu_report)

# %% [markdown]
# `gradcheck` records, for every evaluation, which side of each kink the layer is on (the
# ReLU masks, the max-pool winners). When $x \pm h$ changes that pattern it measures on the
# base point's side (a one-sided difference) or again with $h/10$ and $h/100$; only if every
# step crosses is the element skipped, and more than 10% skipped makes the verdict
# INCONCLUSIVE rather than OK. Above: the two elements within $h$ of 0 were re-measured, and
# the layer passes. The practical advice: check on random inputs, not on images with many
# exact zeros, and on max-pooling inputs without ties.
#
# ## 3. Thresholds: what a relative error means
#
# | relative error (float64) | verdict |
# |---|---|
# | $> 10^{-2}$ | the backward pass is wrong |
# | $10^{-4}$ to $10^{-2}$ | suspicious: only a kink or float32 excuses it |
# | $10^{-7}$ to $10^{-4}$ | acceptable for a network with kinks, a plain textbook check |
# | $< 10^{-7}$ | correct |
# | 0 (tinycnn's measure) | equal within the rounding gradcheck can bound |
#
# `tinycnn.gradcheck` passes below `tol = 1e-6`, per element
# $\max(|a-n| - r, 0)/\max(|a| + |n|,\ 10^{-3} \max|a|,\ 10^{-8})$ with $r$ the rounding bound: the
# floor keeps a tiny gradient next to large ones from being judged on its own scale. What
# the built-in layers reach:

# %%
x_img = rng.permutation(2 * 8 * 8 * 3).reshape(2, 8, 8, 3) / 50.0 - 1.9  # distinct: no ties
builtin = {
    "Conv2D(4, 3, relu)": (Conv2D(4, 3, activation="relu"), x_img),
    "Conv2D(4, 3, strides=2, same)": (Conv2D(4, 3, strides=2, padding="same"), x_img),
    "MaxPooling2D(2)": (MaxPooling2D(2), x_img),
    "Dense(5, tanh)": (Dense(5, activation="tanh"), x_img.reshape(2, -1)),
    "ReLU": (ReLU(), x_img),
}
table = {}
for name, (lay, xs) in builtin.items():
    report = tinycnn.gradcheck(lay, xs, progress=False)
    table[name] = report
print(f"{'layer':32s} {'verdict':8s} {'max rel. error':>14s}  elements checked")
for name, report in table.items():
    print(
        f"{name:32s} {report.verdict:8s} {report.max_rel_error:14.1e}  {report.checked} of {report.total}"
    )
print(
    f"{'(U-curve) float64 central':32s} {'':8s} {best['float64, central'][1]:14.1e}  at h = {best['float64, central'][0]:.0e}"
)
print(
    f"{'(U-curve) float32 central':32s} {'':8s} {best['float32, central'][1]:14.1e}  at h = {best['float32, central'][0]:.0e}"
)

# %% [markdown]
# ## 4. Your own layer
#
# A custom layer subclasses `tinycnn.layers.Layer` and writes three methods: `build`
# creates its weights with `self.add_weight(name, shape, initializer)`, `forward` computes
# $y$ and keeps what backward needs, and `backward` fills `self.grads[name]` and returns
# $\partial L/\partial x$. Here, a per-channel scale and shift (the affine part of batch
# normalization):
#
# $$y_{\dots, c} = \gamma_c\, x_{\dots, c} + \beta_c, \qquad
# \frac{\partial L}{\partial \gamma_c} = \sum_{\dots} G_{\dots,c}\, x_{\dots,c}, \quad
# \frac{\partial L}{\partial \beta_c} = \sum_{\dots} G_{\dots,c}, \quad
# \frac{\partial L}{\partial x} = G \odot \gamma.$$
#
# ($\gamma$ starts random, not at 1: with $\gamma = 1$ a backward that forgot to multiply by
# $\gamma$ would pass every check.)


# %%
def uniform_around_one(shape, rng, dtype):
    """An initializer: (shape, rng, dtype) -> array; rng is the model's seeded stream."""
    return rng.uniform(0.5, 1.5, size=shape).astype(dtype)


class ChannelAffine(Layer):
    """y = gamma * x + beta, one gamma and one beta per channel (the last axis)."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.add_weight("gamma", (channels,), uniform_around_one)
        self.add_weight("beta", (channels,), "zeros")

    def forward(self, x, training=False):
        self.cache = x
        return self.params["gamma"] * x + self.params["beta"]

    def backward(self, dy):
        x = self.cache
        batch_axes = tuple(range(dy.ndim - 1))  # every axis but the channels
        self.grads["gamma"] = (dy * x).sum(axis=batch_axes)
        self.grads["beta"] = dy.sum(axis=batch_axes)
        return dy * self.params["gamma"]


x_custom = rng.standard_normal((2, 5, 5, 3))
good_report = tinycnn.gradcheck(ChannelAffine(), x_custom, progress=False)
print(good_report)

# %% [markdown]
# And inside a model, end to end with softmax cross-entropy (the check then uses $h =
# 10^{-5}$ on the loss, a single number):

# %%
model = tinycnn.Sequential(
    [Conv2D(3, 3, input_shape=(8, 8, 2)), ChannelAffine(), Flatten(), Dense(4)], seed=0
)
x_model = rng.standard_normal((3, 8, 8, 2))
model_report = tinycnn.gradcheck(model, x_model, np.array([0, 1, 3]), progress=False)
print(model_report)

# %% [markdown]
# ### A buggy layer, caught
#
# A classic slip: averaging over the batch where the formula sums. The shapes are right, the
# code runs, training would even work (with a smaller effective learning rate for $\gamma$),
# and only the gradient check notices. It also says *which* array is wrong:


# %%
class BuggyChannelAffine(ChannelAffine):
    def backward(self, dy):
        x = self.cache
        batch_axes = tuple(range(dy.ndim - 1))
        self.grads["gamma"] = (dy * x).mean(axis=batch_axes)  # BUG: mean, not sum
        self.grads["beta"] = dy.sum(axis=batch_axes)
        return dy * self.params["gamma"]


bad_report = tinycnn.gradcheck(BuggyChannelAffine(), x_custom, progress=False)
print(bad_report)

fig, ax = plt.subplots(figsize=(7, 2.8))
names = ["x", "gamma", "beta"]
values = [max(bad_report[n].max_rel_error, 1e-17) for n in names]
good_values = [max(good_report[n].max_rel_error, 1e-17) for n in names]
pos = np.arange(3)
ax.bar(pos - 0.2, good_values, width=0.4, label="ChannelAffine")
ax.bar(pos + 0.2, values, width=0.4, color="C3", label="BuggyChannelAffine")
ax.axhline(1e-6, color="k", ls="--", lw=1)
ax.text(2.45, 2e-6, "tol 1e-6", ha="right")
ax.set_yscale("log")
ax.set_ylim(1e-18, 10)
ax.set_xticks(pos, names)
ax.set_ylabel("max relative error (0 shown at 1e-17)")
ax.set_title("gradcheck per array: the bug is in gamma's gradient")
ax.legend(loc="center left")
fig.tight_layout()

# %% [markdown]
# ## Checks

# %%
# the U-curve: float64 central differences reach 1e-8 or better at a moderate h ...
h64, err64 = best["float64, central"]
assert err64 < 1e-8 and 1e-7 <= h64 <= 1e-2, best
# ... and are much worse at both ends of the range (rounding on the left, truncation right)
assert curves["float64, central"][0] > 1e3 * err64 and curves["float64, central"][-1] > 1e3 * err64
# central beats forward at its best; float32's best is far worse, at a larger h
assert err64 < best["float64, forward"][1] / 10
h32, err32 = best["float32, central"]
assert err32 > 1e3 * err64 and h32 > h64 and 1e-6 < err32 < 1e-1, best
# h = 1e-6, gradcheck's step: excellent in float64, useless in float32 (as the text says)
at_1e6 = np.argmin(np.abs(np.log10(steps) + 6))
assert curves["float64, central"][at_1e6] < 1e-8 and curves["float32, central"][at_1e6] > 1e-2
assert curves["float32, central"][0] == 1.0  # h = 1e-12: the float32 estimate is 0

# kinks: the naive estimate is wrong at the element 3e-7 from the kink (0.65, not 1) ...
np.testing.assert_allclose(naive[0, 0], 0.65, rtol=1e-6)
assert naive_errors.max() > 0.1
# ... and gradcheck re-measures it and passes
assert relu_report.ok and relu_report["x"].remeasured >= 2, relu_report

# every built-in layer passes, and the custom layer does, alone and in a model
for name, report in table.items():
    assert report.ok and report.max_rel_error < 1e-6, f"{name}:\n{report}"
assert good_report.ok, good_report
assert model_report.ok, model_report

# the bug is caught, and located: gamma fails, x and beta pass
assert not bad_report.ok and bad_report.verdict == "FAILED"
assert bad_report["gamma"].max_rel_error > 0.5
assert bad_report["x"].max_rel_error < 1e-6 and bad_report["beta"].max_rel_error < 1e-6
print("all checks passed")
