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
# # Lesson 7: Training diagnostics
#
# When training goes wrong, the loss curve says *that* it went wrong, rarely *why*. This
# lesson looks at the numbers inside the network while it trains:
#
# 1. the **activations** of every layer, and how their scale follows from the
#    initialisation;
# 2. the **gradients** of every layer, from tinycnn's backward pass;
# 3. the **update-to-weight ratio** $\lVert \Delta W \rVert / \lVert W \rVert$ of each
#    step (about $10^{-3}$ is the classic rule of thumb for a healthy rate);
# 4. **dead ReLUs**: units that output 0 for every image, and so never learn again;
# 5. a **learning-rate sweep** that shows all of the above going wrong together;
# 6. what **batch normalization** changes.
#
# All runs start from the same initial weights and see the same batches, so they differ
# only in what we vary. With `TINYCNN_QUICK=1` each run is 30 steps of 64 images (the
# whole lesson: about half a minute on 2 cores); without it, 150 steps, and the curves
# separate further, but the conclusions are the same.

# %%
import math
import os

import tinycnn  # before NumPy: it sets OPENBLAS_THREAD_TIMEOUT (see tinycnn/__init__.py)

# isort: split
import matplotlib.pyplot as plt
import numpy as np

from tinycnn.datasets import fashion_mnist
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D, ReLU
from tinycnn.preprocessing import prepare_images

QUICK = os.environ.get("TINYCNN_QUICK", "") not in ("", "0")
STEPS = 30 if QUICK else 150
BATCH = 64

(x_raw, y_raw), _ = fashion_mnist.load_data(download=False)
n = STEPS * BATCH
x_train = prepare_images(x_raw[:n])
y_train = y_raw[:n].astype(np.int64)
batches = [(x_train[i : i + BATCH], y_train[i : i + BATCH]) for i in range(0, n, BATCH)]
x_probe = prepare_images(x_raw[-256:])  # 256 images no run trains on, to look at activations
print(f"{STEPS} steps of {BATCH} images per run")

# %% [markdown]
# ## 1. Activations, and the scale the initialisation gives them
#
# A layer computes $z = \sum_{i=1}^{n_{in}} w_i a_i$ over its $n_{in}$ inputs (for a
# convolution, $n_{in} = k_h k_w C$). With weights drawn independently of the inputs, with
# mean 0 and variance $\mathrm{Var}(w)$,
#
# $$\mathrm{Var}(z) = n_{in}\, \mathrm{Var}(w)\, \mathbb{E}[a^2].$$
#
# Glorot's uniform initialisation (tinycnn's and Keras's default) takes
# $\mathrm{Var}(w) = \frac{2}{n_{in} + n_{out}}$, so $n_{in} \mathrm{Var}(w)$ lies between 0
# and 2 (it is 1 when $n_{in} = n_{out}$): the variance neither explodes nor vanishes from
# layer to layer (He's $\frac{2}{n_{in}}$ also makes up for the half that ReLU zeroes). `model.activations(x)` returns every layer's output; here is the
# distribution of each, for the untrained seed network.

# %%
model = tinycnn.models.fashion_mnist_cnn(seed=0)
initial_weights = model.get_weights()
acts = model.activations(x_probe)
fig, axes = plt.subplots(1, len(acts), figsize=(16, 2.8), layout="constrained")
for ax, (name, a) in zip(axes, acts.items(), strict=True):
    zero = (a == 0).mean()
    ax.hist(a.ravel(), bins=60, color="tab:blue")
    ax.set_yscale("log")
    ax.set_title(f"{name}\nstd {a.std():.3f}, {zero:.0%} zeros", fontsize=8)
    ax.set_xlabel("output value", fontsize=8)
fig.suptitle("activations of the untrained network, 256 images (count, log scale)", fontsize=10)
plt.show()

# the variance formula, for the logits: z = dense_1(a), a = the 512 outputs of dense
a_dense, logits = acts["dense"], acts["dense_1"]
n_in, n_out = 512, 10
predicted_std = math.sqrt(n_in * 2 / (n_in + n_out) * (a_dense**2).mean())
w_std = model.layers[-1].get_weights()[0].std()
print(f"logits: measured std {logits.std():.4f}; formula {predicted_std:.4f} with Var(w) = 2/(n_in+n_out);"
      f" {math.sqrt(n_in * w_std**2 * (a_dense**2).mean()):.4f} with the drawn weights' variance")  # fmt: skip

# %% [markdown]
# The logits are small (std about 0.1), so the untrained network's softmax is nearly uniform
# and its loss is $\ln 10$ (lesson 5). About half of every ReLU layer's outputs are exactly 0
# (the tall bar at 0 in each histogram; the titles give the share): that is ReLU's job. What would be alarming is a layer whose outputs are *all* 0, or a
# standard deviation that grows or shrinks by a large factor at every layer.
#
# ## 2. Gradients, layer by layer
#
# One training step, written out: the forward pass in training mode, the loss, then the
# backward pass one layer at a time, keeping the gradient that flows into each layer's
# output, $\partial L / \partial a^{(l)}$, and each layer's weight gradient
# $\partial L / \partial W^{(l)}$ (`layer.grads`). The backward pass starts from softmax
# cross-entropy's gradient
#
# $$\frac{\partial L}{\partial z_{n,k}} = \frac{p_{n,k} - [k = y_n]}{N},$$
#
# whose rows sum to 0. Gradients span many orders of magnitude, so we histogram
# $\log_{10} |g|$.

# %%
xb, yb = batches[0]
model.compile(optimizer=tinycnn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
logits_b = model.forward(xb, training=True)
loss_b = float(model.loss.forward(logits_b, yb))
dlogits = model.loss.backward()
flowing = {}  # layer name -> dL/d(its output)
g = dlogits
for k in range(len(model.layers) - 1, -1, -1):
    layer = model.layers[k]
    flowing[layer.name] = g
    g = layer.backward(g, input_grad=k > 0)
weight_grads = {
    layer.name: layer.grads["kernel"].copy() for layer in model.layers if "kernel" in layer.grads
}

# the same gradients from model.backward (which may run fused Conv2D + pooling steps)
model.loss.forward(model.forward(xb, training=True), yb)
model.backward(model.loss.backward(), input_grad=False)
same_as_model_backward = all(
    np.allclose(layer.grads["kernel"], weight_grads[layer.name], rtol=1e-5, atol=1e-8)
    for layer in model.layers
    if "kernel" in layer.grads
)

fig, axes = plt.subplots(2, 4, figsize=(14, 5), layout="constrained")
for ax, (name, grad) in zip(axes[0], weight_grads.items(), strict=True):
    values = np.abs(grad[grad != 0])
    ax.hist(np.log10(values), bins=60, color="tab:orange")
    ax.set_title(f"dL/dW of {name}\nrms {np.sqrt((grad**2).mean()):.1e}", fontsize=8)
    ax.set_xlabel("log10 |g|", fontsize=8)
for ax, name in zip(axes[1], ["max_pooling2d", "max_pooling2d_1", "dense", "dense_1"], strict=True):
    grad = flowing[name]
    values = np.abs(grad[grad != 0])
    ax.hist(np.log10(values), bins=60, color="tab:green")
    ax.set_title(f"dL/d(output of {name})\n{(grad == 0).mean():.0%} exactly 0", fontsize=8)
    ax.set_xlabel("log10 |g|", fontsize=8)
fig.suptitle(f"gradients of one batch at initialisation (loss {loss_b:.3f}); "
             "top: weights, bottom: activations", fontsize=10)  # fmt: skip
plt.show()

# %% [markdown]
# The gradient at the logits has two clusters: $(p_{y} - 1)/N \approx -0.9/64$ at each image's
# true class, and $p_k / N \approx 0.1/64$ at the nine others. Where a ReLU output was 0, or an
# input lost its max-pooling window, the gradient is exactly 0: backpropagation only passes
# through the units that were active. Had the gradients of the
# first layers been many orders of magnitude smaller than the last layer's (vanishing) or
# larger (exploding), the histograms would show it at once.
#
# ## 3-5. A learning-rate sweep, watching the update ratio and the dead units
#
# Now the same network, from the same initial weights, trained with Adam at six learning
# rates. At every step we record the loss and, for each layer with a kernel,
#
# $$r = \frac{\lVert W_{t+1} - W_t \rVert}{\lVert W_t \rVert}.$$
#
# Adam's step is $\eta\, \hat m / (\sqrt{\hat v} + \epsilon)$, about $\pm\eta$ per weight
# when the gradient keeps its sign; on the very first step $\eta\,\mathrm{sign}(g)$ (the
# bias-corrected moments are $g$ and $g^2$), less only for the weights whose gradient is
# as small as $\epsilon$ allows. So $r \approx \eta / \mathrm{rms}(W)$:
# the ratio depends on the weights' scale, and the rule of thumb $r \approx 10^{-3}$ is a
# rough guide, best read together with the loss.
#
# A unit is **dead** when it outputs 0 for every image of the probe set: its gradient is
# then 0 for every image, no step can revive it, and the network has lost it for good.
# For a convolution we count channels: a channel is dead when it is 0 at every position
# of every probe image.


# %%
def train_run(model, lr, steps=STEPS):
    """Train ``model`` with Adam(lr) on the shared batches; return the losses and the
    update ratio of each kernel at each step, (steps, layers)."""
    model.compile(optimizer=tinycnn.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    kernels = [layer for layer in model.layers if "kernel" in layer.params]
    losses, ratios = [], []
    for xb, yb in batches[:steps]:
        logits = model.forward(xb, training=True)
        losses.append(float(model.loss.forward(logits, yb)))
        model.backward(model.loss.backward(), input_grad=False)
        before = [layer.params["kernel"].copy() for layer in kernels]
        model.optimizer.step(model.layers)
        ratios.append([np.linalg.norm(layer.params["kernel"] - w) / np.linalg.norm(w)
                       for layer, w in zip(kernels, before, strict=True)])  # fmt: skip
    return np.array(losses), np.array(ratios)


def dead_share(model, names):
    """For each layer name: the share of its units (channels) that are 0 for every probe image."""
    outputs = model.activations(x_probe)
    shares = {}
    for name in names:
        a = outputs[name]
        per_unit = a.max(axis=tuple(range(a.ndim - 1)))  # the largest output of each unit
        shares[name] = float((per_unit <= 0).mean())
    return shares


RELU_LAYERS = ["conv2d", "conv2d_1", "dense"]
KERNEL_LAYERS = ["conv2d", "conv2d_1", "dense", "dense_1"]
rates = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
runs = {}
for lr in rates:
    m = tinycnn.models.fashion_mnist_cnn(seed=0)
    losses, ratios = train_run(m, lr)
    runs[lr] = {"loss": losses, "ratio": ratios, "dead": dead_share(m, RELU_LAYERS)}
    print(f"lr {lr:.0e}: loss {losses[0]:.3f} -> {losses[-10:].mean():.3f} (mean of the last 10 steps);"
          f" dead {', '.join(f'{k} {v:.0%}' for k, v in runs[lr]['dead'].items())}")  # fmt: skip
dead_at_start = dead_share(tinycnn.models.fashion_mnist_cnn(seed=0), RELU_LAYERS)
print("dead before training:", dead_at_start)


# %%
def smooth(values, width=5):
    """A moving average, to see a trend through the noise of single batches."""
    return np.convolve(values, np.ones(width) / width, mode="valid")


fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
colors = plt.cm.viridis(np.linspace(0, 0.9, len(rates)))
for lr, color in zip(rates, colors, strict=True):
    axes[0].plot(runs[lr]["loss"], color=color, alpha=0.25)
    axes[0].plot(np.arange(4, STEPS), smooth(runs[lr]["loss"]), color=color, label=f"lr {lr:.0e}")
axes[0].axhline(math.log(10), color="gray", ls="--", lw=1, label="ln 10")
axes[0].set(title="loss per step (faint) and its 5-step mean", xlabel="step", ylabel="loss",
            ylim=(0, 4))  # fmt: skip
axes[0].legend(fontsize=8)
median_ratio = np.array([np.median(runs[lr]["ratio"], axis=0) for lr in rates])  # (rates, layers)
for j, name in enumerate(KERNEL_LAYERS):
    axes[1].loglog(rates, median_ratio[:, j], "o-", label=name)
axes[1].axhspan(3e-4, 3e-3, color="tab:green", alpha=0.15, label="about 1e-3")
axes[1].set(title="update / weight ratio (median over the steps)", xlabel="learning rate",
            ylabel="||dW|| / ||W||")  # fmt: skip
axes[1].legend(fontsize=8)
width = 0.25
for j, name in enumerate(RELU_LAYERS):
    axes[2].bar(np.arange(len(rates)) + (j - 1) * width, [runs[lr]["dead"][name] for lr in rates],
                width, label=name)  # fmt: skip
axes[2].set_xticks(np.arange(len(rates)), [f"{lr:.0e}" for lr in rates])
axes[2].set(title=f"dead ReLU units after {STEPS} steps", xlabel="learning rate",
            ylabel="share of units (channels) dead", ylim=(0, 1.05))  # fmt: skip
axes[2].legend(fontsize=8)
plt.show()

# %% [markdown]
# Read the three pictures together:
#
# * at $10^{-4}$ the ratio is about $10^{-3}$, every convolution channel lives (the dense
#   layer's dead share is mostly units already silent on the probe images before training,
#   printed above), but the loss falls slowly: too timid for a run this short;
# * $3 \cdot 10^{-4}$ to $3 \cdot 10^{-3}$ learn fastest (Adam's default $10^{-3}$ among them),
#   with median ratios of about $10^{-3}$ to $2 \cdot 10^{-2}$, growing with the rate (lower in the
#   150-step runs of the full data than in the 30-step quick ones): above the rule of thumb,
#   which was made for plain SGD and long runs. Adam moves every weight by about $\eta$ at first, and the
#   ratio falls as training goes on (the next picture);
# * at $10^{-2}$ the first steps change the weights by 15-30% each (the first step's ratio is
#   $\eta / \mathrm{rms}(W)$), the loss jumps far above $\ln 10$, and most channels of the
#   second convolution die; what survives still learns, more slowly;
# * at $3 \cdot 10^{-2}$ nearly everything dies: with every ReLU silent the logits are the
#   last biases alone, and the loss settles near $\ln 10$, the loss of a network that
#   knows nothing. A loss stuck at $\ln 10$ after a spike is the signature of a dead network.
#
# Below, the update ratio of each layer along the run at Adam's default rate: large at
# first (Adam's first steps are $\pm\eta$ on every weight), then smaller as the gradients of
# successive batches start to disagree in sign and $\hat m / \sqrt{\hat v}$ shrinks.

# %%
fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
for j, name in enumerate(KERNEL_LAYERS):
    ax.semilogy(runs[1e-3]["ratio"][:, j], label=name)
ax.axhline(1e-3, color="gray", ls="--", lw=1)
ax.set(title="update / weight ratio per step, Adam at 1e-3", xlabel="step", ylabel="||dW|| / ||W||")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 6. What batch normalization changes
#
# Batch normalization (Ioffe and Szegedy, 2015) normalises each channel of a convolution's
# output with the statistics of the current batch, then lets the network rescale it:
#
# $$\mu_c = \frac{1}{M}\sum_{m} z_{m,c}, \quad
#   \sigma_c^2 = \frac{1}{M}\sum_{m} (z_{m,c} - \mu_c)^2, \quad
#   \hat z_{m,c} = \frac{z_{m,c} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}, \quad
#   y_{m,c} = \gamma_c \hat z_{m,c} + \beta_c,$$
#
# over the $M = N H W$ values of channel $c$ in the batch. Whatever the weights before it
# do, its output starts every step with mean $\beta_c$ and standard deviation about
# $\gamma_c$: a large update to the convolution's kernel can no longer blow up or silence
# the layers after it. (At inference it uses moving averages of $\mu$ and $\sigma^2$
# instead, so that a prediction does not depend on the rest of the batch.)
#
# The same network with a `BatchNormalization` after each convolution (and the ReLU moved
# after it):


# %%
def seed_network_with_bn(seed=0):
    return tinycnn.Sequential(
        [
            Conv2D(64, 3, input_shape=(28, 28, 1)),
            BatchNormalization(),
            ReLU(),
            MaxPooling2D(2),
            Conv2D(64, 3),
            BatchNormalization(),
            ReLU(),
            MaxPooling2D(2),
            Flatten(),
            Dense(512, activation="relu"),
            Dense(10),
        ],
        seed=seed,
    )


def training_mode_outputs(model, x):
    """Every layer's output in training mode (batch statistics), without changing the
    model: the moving averages the pass updates are put back afterwards."""
    saved = model.get_weights()
    outputs, a = {}, x
    for layer in model.layers:
        a = layer.forward(a, training=True)
        outputs[layer.name] = a
    model.clear_caches()
    model.set_weights(saved)
    return outputs


bn_model = seed_network_with_bn()
bn_model.summary()
out = training_mode_outputs(bn_model, batches[0][0])
z, y_bn = out["conv2d_1"], out["batch_normalization_1"]  # before and after the normalisation
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), layout="constrained")
for ax, values, title in (
    (axes[0], z, "conv2d_1 output (before BN)"),
    (axes[1], y_bn, "batch_normalization_1 output"),
):
    ax.errorbar(
        np.arange(64), values.mean(axis=(0, 1, 2)), yerr=values.std(axis=(0, 1, 2)), fmt="o", ms=3
    )
    ax.set(title=f"{title}: mean +- std of each channel", xlabel="channel")
plt.show()

# %%
bn_runs = {}
for lr in (1e-3, 1e-2, 3e-2):
    m = seed_network_with_bn()
    losses, ratios = train_run(m, lr)
    bn_runs[lr] = {"loss": losses, "dead": dead_share(m, ["re_lu", "re_lu_1", "dense"])}
    print(f"with BN, lr {lr:.0e}: loss {losses[0]:.3f} -> {losses[-10:].mean():.3f};"
          f" dead {', '.join(f'{k} {v:.0%}' for k, v in bn_runs[lr]['dead'].items())}")  # fmt: skip

fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), layout="constrained", sharey=True)
for ax, lr in zip(axes, bn_runs, strict=True):
    ax.plot(np.arange(4, STEPS), smooth(runs[lr]["loss"]), label="seed network")
    ax.plot(np.arange(4, STEPS), smooth(bn_runs[lr]["loss"]), label="with BatchNormalization")
    ax.axhline(math.log(10), color="gray", ls="--", lw=1)
    ax.set(title=f"Adam, lr {lr:.0e} (5-step mean)", xlabel="step", ylim=(0, 4))
    ax.legend(fontsize=8)
axes[0].set_ylabel("loss")
plt.show()

# %% [markdown]
# What to see: with batch normalization every channel leaves the layer centred with unit
# spread, whatever its kernel did (above: the channels' means and spreads before and after).
# Its first losses are higher (normalised activations are larger than the seed network's
# small ones, and so are the first logits), and the spike after the first large steps is
# higher too. At Adam's default rate it then learns a little faster. The difference that
# matters is at $3 \cdot 10^{-2}$: nearly all the seed network's channels die and its loss stays
# at $\ln 10$, while the normalised network loses some channels but keeps enough of them to
# recover and learn. BN normalises only the convolutions' outputs, though: the dense layer's
# own pre-activations are not normalised, and with the larger inputs BN hands it, it loses
# more units than in the seed network, about half or more at every rate (the printed
# shares). Robustness to the learning rate, and with it faster training, is why batch
# normalization became standard in deep networks; for one this shallow it is a convenience,
# not a necessity (the seed network reaches 91.8% without it).
#
# ## Checks

# %%
# 1. the variance formula predicts the scale of the untrained network's logits
assert abs(logits.std() / predicted_std - 1) < 0.25, (logits.std(), predicted_std)
# 2. softmax cross-entropy's gradient: (p - onehot) / N, rows summing to 0; the last bias's
#    gradient is its column sum; layer-by-layer backward equals model.backward
p = tinycnn.to_numpy(tinycnn.softmax(logits_b))
onehot = np.eye(10)[yb]
np.testing.assert_allclose(dlogits, (p - onehot) / len(yb), rtol=1e-5, atol=1e-7)
assert np.abs(dlogits.sum(axis=1)).max() < 1e-6
np.testing.assert_allclose(
    model.layers[-1].grads["bias"], dlogits.sum(axis=0), rtol=1e-5, atol=1e-7
)
assert same_as_model_backward
# 3. Adam's first step: m = (1 - b1) g and v = (1 - b2) g^2, so each weight moves by
#    lr * sqrt(1 - b2) |g| / (sqrt(1 - b2) |g| + eps), which is lr unless |g| is tiny;
#    the first ratio is therefore proportional to lr
for j, name in enumerate(KERNEL_LAYERS):
    g = weight_grads[name].astype(np.float64)
    step_sizes = 1e-3 * math.sqrt(1 - 0.999) * np.abs(g) / (math.sqrt(1 - 0.999) * np.abs(g) + 1e-7)
    expected = np.linalg.norm(step_sizes) / np.linalg.norm(initial_weights[2 * j])
    assert abs(runs[1e-3]["ratio"][0, j] / expected - 1) < 0.005, (
        name,
        runs[1e-3]["ratio"][0, j],
        expected,
    )
    assert abs(runs[1e-2]["ratio"][0, j] / runs[1e-3]["ratio"][0, j] - 10) < 0.1
# 4. the sweep: a moderate rate learns best; the largest rates kill units and learn nothing
final = {lr: runs[lr]["loss"][-10:].mean() for lr in rates}
best = min(final, key=final.get)
assert best in (3e-4, 1e-3, 3e-3), final
assert final[1e-3] < final[1e-4] and final[1e-3] < 0.5 * math.log(10), final
assert final[3e-2] > 0.8 * math.log(10), final  # stuck near ln 10
assert runs[3e-2]["dead"]["conv2d_1"] > 0.5 > runs[1e-3]["dead"]["conv2d_1"], runs
assert max(runs[1e-3]["dead"].values()) < 0.5
# ... and the numbers the text reads off the pictures: the ratio at 1e-4 is about 1e-3,
# 3e-4 to 3e-3 give medians of 1e-3 to 2e-2, growing with the rate; the first step at 1e-2
# moves about 15-30%;
# no convolution channel dies at 1e-4; BN's dense layer loses about half or more
assert 5e-4 < median_ratio[0].min() and median_ratio[0].max() < 3e-3, median_ratio
assert 8e-4 < median_ratio[1:4].min() and median_ratio[1:4].max() < 3e-2, median_ratio
assert np.all(np.diff(median_ratio[:4].mean(axis=1)) > 0), median_ratio
assert 0.12 < runs[1e-2]["ratio"][0].min() and runs[1e-2]["ratio"][0].max() < 0.4, runs[1e-2]
assert runs[1e-4]["dead"]["conv2d"] == runs[1e-4]["dead"]["conv2d_1"] == 0.0, runs[1e-4]
# 5. batch normalization: in training mode each channel is normalised by the batch's own
#    statistics, sigma = sqrt(var / (var + epsilon)) for gamma = 1, beta = 0
np.testing.assert_allclose(y_bn.mean(axis=(0, 1, 2)), 0, atol=1e-4)
var = z.var(axis=(0, 1, 2))
np.testing.assert_allclose(y_bn.std(axis=(0, 1, 2)), np.sqrt(var / (var + 1e-3)), rtol=1e-3)
#    and it survives the learning rate that kills the seed network
bn_final = {lr: bn_runs[lr]["loss"][-10:].mean() for lr in bn_runs}
assert bn_final[3e-2] < final[3e-2] - 0.3, (bn_final, final)
assert bn_runs[3e-2]["dead"]["re_lu_1"] < runs[3e-2]["dead"]["conv2d_1"], (bn_runs, runs)
assert min(bn_runs[lr]["dead"]["dense"] for lr in bn_runs) > 0.4, bn_runs
assert bn_runs[1e-3]["dead"]["dense"] > runs[1e-3]["dead"]["dense"], (bn_runs, runs)
print("all checks passed")
