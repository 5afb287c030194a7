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
# # Lesson 6: Looking inside the network
#
# A trained network is 862,410 numbers. This lesson turns some of them into pictures:
#
# 1. the **filters** of the first convolution: what local pattern each one detects;
# 2. the **feature maps**: where in an image each filter finds its pattern, layer by layer;
# 3. three answers to "**why coat?**": which pixels the score of the class *Coat* depends
#    on, by the gradient (saliency), by Grad-CAM, and by hiding parts of the image
#    (occlusion).
#
# Every gradient here comes from tinycnn's own backward pass, the one derived in lessons 2
# and 3: explaining a prediction needs no other machinery than training does.
#
# The lesson is self-contained: it first trains the seed network briefly (with
# `TINYCNN_QUICK=1`, 2 epochs on 5,400 images: about 82% test accuracy in some 10 seconds;
# without it, 3 epochs on all 54,000 training images: about 90%, a couple of minutes).
# The better trained, the cleaner the pictures; lesson 5's full run reaches 91.8%.

# %%
import os

import tinycnn  # before NumPy: it sets OPENBLAS_THREAD_TIMEOUT (see tinycnn/__init__.py)

# isort: split
import matplotlib.pyplot as plt
import numpy as np

from tinycnn import viz
from tinycnn.datasets import fashion_mnist
from tinycnn.preprocessing import prepare_images

QUICK = os.environ.get("TINYCNN_QUICK", "") not in ("", "0")
CLASS_NAMES = fashion_mnist.CLASS_NAMES
COAT = CLASS_NAMES.index("Coat")

(x_train_raw, y_train_raw), (x_test_raw, y_test_raw) = fashion_mnist.load_data(download=False)
n_train, epochs = (6_000, 2) if QUICK else (60_000, 3)
x_train = prepare_images(x_train_raw[:n_train])
y_train = y_train_raw[:n_train].astype(np.int64)
x_test = prepare_images(x_test_raw[:2000])
y_test = y_test_raw[:2000].astype(np.int64)

model = tinycnn.models.fashion_mnist_cnn(seed=0)
initial_kernel = model.layers[0].get_weights()[0].copy()  # to see what training changed
model.compile(optimizer=tinycnn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
history = model.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_split=0.1,
                    verbose=2, seed=0)  # fmt: skip
test_loss, test_accuracy = model.evaluate(x_test, y_test)
print(f"test accuracy {test_accuracy:.3f} on {len(x_test)} test images")
model.summary()

# %% [markdown]
# ## 1. The first layer's filters
#
# The first convolution has 64 filters $w_f$ of $3 \times 3 \times 1$. Its output at pixel
# $(i, j)$ is the correlation of the filter with the patch there, plus a bias, through ReLU:
#
# $$a_{i,j,f} = \max\Big(0,\; b_f + \sum_{u,v} x_{i+u,\,j+v}\, w_{u,v,f}\Big).$$
#
# So a filter responds most to a patch that looks like itself: a filter that is positive on
# its left column and negative on its right responds to a bright-to-dark vertical edge, an
# all-positive one to bright regions. Blue is negative, red positive, white 0. A $3 \times 3$
# filter is small, so the patterns are simple: edges in a few directions, spots, gradients.

# %%
conv1 = model.layers[0]
fig = viz.show_filters(conv1, scale="per tile", ncols=16)
plt.show()
kernel = conv1.get_weights()[0]  # (3, 3, 1, 64)
change = np.linalg.norm(kernel - initial_kernel) / np.linalg.norm(initial_kernel)
print(f"training moved the first layer's kernel by {change:.0%} of its initial size")

# %% [markdown]
# ## 2. Feature maps
#
# Each filter, slid over the whole image, gives a **feature map**: channel $f$ of the
# layer's output, bright where filter $f$ found its pattern. `model.activations(x)` returns
# every layer's output, computed layer by layer. After each max-pooling the maps are half
# as large; the second convolution combines the 64 maps of the first into 64 new ones,
# each from a $3 \times 3 \times 64$ neighbourhood, so its patterns are larger (its receptive
# field in the image is $8 \times 8$ pixels) and more abstract. Here are the first 16
# channels of each convolution and pooling layer for one coat:

# %%
predicted = model.predict(x_test).argmax(axis=1)
coat_index = int(np.flatnonzero((y_test == COAT) & (predicted == COAT))[0])  # a coat it gets right
coat = x_test[coat_index]  # (28, 28, 1)
fig = viz.show_feature_maps(model, coat, max_channels=16)
plt.show()

# %% [markdown]
# And for one image of each class, the same channels side by side: six channels of the
# first convolution and six of the second (its most active ones on these ten images). Many first-layer filters respond to brightness
# alone and their maps all look like the image; we show the six whose maps vary most
# within an image relative to their mean (standard deviation over mean, among the more
# active half of the channels): the edge and texture detectors. The first layer's maps
# still look like the clothes; the second layer's are coarser and differ more between
# classes (a trouser's legs, a bag's top edge, a shoe's sole): that is what the dense
# layers read.

# %%
one_per_class = np.array([np.flatnonzero(y_test == k)[0] for k in range(10)])
images = x_test[one_per_class]
acts = model.activations(images)
first, second = acts["conv2d"], acts["conv2d_1"]  # (10, 26, 26, 64), (10, 11, 11, 64)
mean_1, std_1 = first.mean(axis=(0, 1, 2)), first.std(axis=(1, 2)).mean(axis=0)
active = mean_1 >= np.median(mean_1)
channels_1 = np.argsort(np.where(active, std_1 / (mean_1 + 1e-6), -np.inf))[::-1][:6]
channels_2 = np.argsort(second.mean(axis=(0, 1, 2)))[::-1][:6]
fig, axes = plt.subplots(10, 13, figsize=(13, 10.5), layout="constrained")
for k in range(10):
    axes[k, 0].imshow(images[k, :, :, 0], cmap="gray", interpolation="nearest")
    axes[k, 0].set_ylabel(CLASS_NAMES[k], fontsize=8)
    for col, c in enumerate(channels_1, start=1):
        axes[k, col].imshow(first[k, :, :, c], cmap="viridis", vmin=0, vmax=first[..., c].max(),
                              interpolation="nearest")  # fmt: skip
    for col, c in enumerate(channels_2, start=7):
        axes[k, col].imshow(second[k, :, :, c], cmap="viridis", vmin=0, vmax=second[..., c].max(),
                              interpolation="nearest")  # fmt: skip
for col, c in enumerate(channels_1, start=1):
    axes[0, col].set_title(f"conv2d\nch {c}", fontsize=8)
for col, c in enumerate(channels_2, start=7):
    axes[0, col].set_title(f"conv2d_1\nch {c}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("one image per class: first-layer maps (26x26) and second-layer maps (11x11), "
             "one colour scale per channel", fontsize=10)  # fmt: skip
plt.show()

# %% [markdown]
# ## 3. Why "coat"? Saliency by the gradient
#
# The network's score for class $c$ is its logit $z_c(x)$. Near the image $x$, a first-order
# Taylor expansion says how the score moves when the pixels move:
#
# $$z_c(x + \delta) \approx z_c(x) + \nabla_x z_c(x) \cdot \delta .$$
#
# The **saliency map** (Simonyan et al., 2013) is that gradient $\partial z_c / \partial x$,
# one number per pixel, computed by the backward pass with the one-hot seed
# $\partial z_c / \partial z = e_c$ instead of the loss's gradient
# (`model.input_gradient(x, c)`). Red pixels raise the coat score when brightened, blue ones
# lower it. It is sharp but noisy: a gradient is a very local answer.

# %%
fig = viz.show_saliency(model, coat, COAT, method="gradient", class_names=CLASS_NAMES)
plt.show()
gradient_map = fig.tinycnn_data["map"]
coat_probabilities = fig.tinycnn_data["probabilities"]

# %% [markdown]
# ## Grad-CAM
#
# Grad-CAM (Selvaraju et al., 2017) asks the last convolution instead of the pixels. Its
# output $A$ is $(h, w, K) = (11, 11, 64)$: $K$ feature maps that the rest of the network
# turns into scores. Weigh each map by how much the score depends on it, on average, and
# keep the positive part:
#
# $$\alpha_k = \frac{1}{h w} \sum_{i,j} \frac{\partial z_c}{\partial A_{i,j,k}}, \qquad
#   \text{CAM}_c = \max\Big(0,\; \sum_k \alpha_k A_{:,:,k}\Big) \quad (h \times w).$$
#
# The map is coarse ($11 \times 11$, drawn over the $28 \times 28$ image) but smooth: it
# shows *regions*, where the class's features are.

# %%
fig = viz.show_saliency(model, coat, COAT, method="gradcam", class_names=CLASS_NAMES)
plt.show()
gradcam = fig.tinycnn_data["map"]

# %% [markdown]
# Grad-CAM by hand, with the layers' own forward and backward: the activations of
# `conv2d_1` for $A$, then the remaining layers forward from $A$ and backward from the
# one-hot seed $e_c$ down to $A$.

# %%
A = model.activations(coat[None])["conv2d_1"]  # (1, 11, 11, 64)
tail = model.layers[3:]  # max_pooling2d_1, flatten, dense, dense_1
a = A
for layer in tail:
    a = layer.forward(a)
seed = np.zeros_like(a)
seed[0, COAT] = 1.0
g = seed
for layer in reversed(tail):
    g = layer.backward(g)
alpha = g[0].mean(axis=(0, 1))  # (64,)
gradcam_by_hand = np.maximum((A[0] * alpha).sum(axis=-1), 0)
print(
    "Grad-CAM by hand equals viz.gradcam_map:",
    np.allclose(gradcam_by_hand, gradcam, rtol=1e-4, atol=1e-6),
)

# %% [markdown]
# ## Occlusion
#
# The third answer uses no gradient at all (Zeiler and Fergus, 2014): hide a $7 \times 7$
# square of the image, classify the occluded copy, and record how much the probability of
# "coat" drops,
#
# $$\Delta(s) = p_c(x) - p_c(x \text{ with square } s \text{ hidden}),$$
#
# for every position of the square (stride 3 pixels; each pixel gets the mean of the
# squares covering it). A large drop means the network needed what was there. It costs one
# forward pass per position, and it measures something closer to "what if" than a
# gradient does. What "hidden" means matters: Fashion-MNIST's background is black (0), so
# we hide with black (`fill=0`), which removes what was there and leaves the background
# unchanged: a square over background only changes nothing (its drop is 0), so a
# background pixel's value comes only from squares that also reach the coat (the faint
# colour beside the sleeves). A grey square, the usual choice for photographs, would
# *add* a grey patch to the black background, a shape the network never saw in training,
# and the map would light up in the empty corners too.

# %%
fig = viz.show_saliency(model, coat, COAT, method="occlusion", class_names=CLASS_NAMES,
                        patch=7, stride=3, fill=0.0)  # fmt: skip
plt.show()
occlusion = fig.tinycnn_data["map"]
print(f"p(coat) = {coat_probabilities[COAT]:.3f}; the largest drop when hiding a square: "
      f"{occlusion.max():.3f}, the largest rise: {-occlusion.min():.3f}")  # fmt: skip

# %% [markdown]
# The three maps answer different questions (how the score changes for a tiny change of
# each pixel; which regions of the deepest feature maps support the class; what is lost
# when a region is removed), so they need not agree pixel for pixel. Where they agree, in
# our run mostly on the collar and the opening at the top (less on the body and the
# sleeves), is where a coat differs from a pullover or a shirt.
#
# ## Where the network looks, class by class
#
# The gradient saliency of one image per class, for its true class (red raises the score):

# %%
saliency = model.input_gradient(images, np.arange(10))[..., 0]  # (10, 28, 28)
fig, axes = plt.subplots(2, 10, figsize=(14, 3.2), layout="constrained")
for k in range(10):
    limit = np.abs(saliency[k]).max()
    axes[0, k].imshow(images[k, :, :, 0], cmap="gray", interpolation="nearest")
    axes[0, k].set_title(CLASS_NAMES[k], fontsize=8)
    axes[1, k].imshow(saliency[k], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("d score(true class) / d pixel, per-image symmetric scale", fontsize=9)
plt.show()

# %% [markdown]
# ## Checks

# %%
# the filter picture shows the kernel itself (one input channel: no averaging)
np.testing.assert_array_equal(
    viz.show_filters(conv1).tinycnn_data["tiles"], kernel[:, :, 0, :].transpose(2, 0, 1)
)
plt.close("all")
assert change > 0.05, change  # training changed the filters

# model.activations follows the same path as model.predict (the fused fast path there)
np.testing.assert_allclose(acts["dense_1"], model.predict(images), rtol=1e-4, atol=1e-4)
# ... and the first layer's maps are the formula of section 1, computed by hand
w, b = conv1.get_weights()
for f in (0, int(channels_1[0])):
    by_hand = np.zeros((26, 26))
    for u in range(3):
        for v in range(3):
            by_hand += images[3, u : u + 26, v : v + 26, 0] * w[u, v, 0, f]
    np.testing.assert_allclose(
        first[3, :, :, f], np.maximum(by_hand + b[f], 0), rtol=1e-4, atol=1e-5
    )

# the saliency map is the input gradient, one number per pixel; a float64 copy of the
# network agrees with it and with central finite differences of the logit
assert gradient_map.shape == (28, 28) and np.abs(gradient_map).max() > 0
with tinycnn.use_floatx("float64"):
    model64 = tinycnn.models.fashion_mnist_cnn(seed=0)
model64.set_weights([wt.astype(np.float64) for wt in model.get_weights()])
coat64 = coat.astype(np.float64)
grad64 = model64.input_gradient(coat64, COAT)[..., 0]
np.testing.assert_allclose(grad64, gradient_map, rtol=1e-3, atol=1e-3 * np.abs(grad64).max())
h = 1e-5
for pixel in np.argsort(np.abs(grad64).ravel())[::-1][:5]:  # the 5 most salient pixels
    i, j = divmod(int(pixel), 28)
    plus, minus = coat64.copy(), coat64.copy()
    plus[i, j, 0] += h
    minus[i, j, 0] -= h
    numeric = (model64.predict(plus[None])[0, COAT] - model64.predict(minus[None])[0, COAT]) / (
        2 * h
    )
    assert abs(numeric - grad64[i, j]) <= 1e-5 * max(1.0, abs(grad64[i, j])), (
        i,
        j,
        numeric,
        grad64[i, j],
    )

# Grad-CAM: one non-negative number per position of conv2d_1's output, equal to the formula
assert gradcam.shape == (11, 11) and (gradcam >= 0).all() and gradcam.max() > 0
np.testing.assert_allclose(gradcam_by_hand, gradcam, rtol=1e-4, atol=1e-6)

# occlusion: hiding the most important square lowers p(coat); recomputed by hand there
assert occlusion.shape == (28, 28) and occlusion.max() > 0
i, j = np.unravel_index(np.argmax(occlusion), occlusion.shape)
top, left = min(max(i - 3, 0), 21), min(max(j - 3, 0), 21)
hidden = coat.copy()
hidden[top : top + 7, left : left + 7] = 0.0
p_hidden = tinycnn.to_numpy(tinycnn.softmax(model.predict(hidden[None])))[0, COAT]
assert p_hidden < coat_probabilities[COAT], (p_hidden, coat_probabilities[COAT])

# the network was trained enough for these pictures to mean something
assert coat_probabilities.argmax() == COAT, coat_probabilities
assert test_accuracy >= (0.75 if QUICK else 0.88), test_accuracy
print("all checks passed")
