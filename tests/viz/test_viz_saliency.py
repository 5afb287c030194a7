"""Saliency maps on models whose answer is known by hand: the gradient, Grad-CAM and
occlusion, and show_saliency drawing them."""

from __future__ import annotations

import numpy as np
import pytest
from viz_models import linear_model, small_cnn

import tinycnn
from tinycnn import viz
from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D


def one_pixel_model():
    """Class 1's score is 3 * x[4, 7] - 2 * x[9, 2] and nothing else; class 0's is 0."""
    weights = np.zeros((12, 12, 1, 2))
    weights[4, 7, 0, 1], weights[9, 2, 0, 1] = 3.0, -2.0
    return linear_model(weights.reshape(-1, 2), (12, 12, 1))


def test_gradient_is_the_weight_of_each_pixel(images, tmp_path):
    model = one_pixel_model()
    saliency = viz.saliency_map(model, images[0], 1)
    expected = np.zeros((12, 12))
    expected[4, 7], expected[9, 2] = 3.0, -2.0
    np.testing.assert_allclose(saliency, expected, atol=1e-6)
    assert np.unravel_index(np.abs(saliency).argmax(), saliency.shape) == (4, 7)
    fig = viz.show_saliency(model, images[0], 1, class_names=["zero", "one"])
    fig.savefig(tmp_path / "gradient.png")
    np.testing.assert_allclose(fig.tinycnn_data["map"], expected, atol=1e-6)
    drawn = fig.axes[1].get_images()[0]
    assert drawn.get_cmap().name == "RdBu_r" and drawn.get_clim() == (-3.0, 3.0)  # symmetric
    assert "d score(one) / d pixel" in fig.axes[1].get_title()


def test_gradcam_by_hand():
    """Conv2D(2 filters, 1x1, kernel [1, 2], relu) -> Flatten -> Dense: for x > 0 the
    feature maps are A0 = x and A1 = 2x, and dscore_c/dA is the dense weights of class c;
    Grad-CAM = relu(mean(W0_c) * x + mean(W1_c) * 2x), written out here."""
    rng = np.random.default_rng(1)
    model = tinycnn.Sequential(
        [Conv2D(2, 1, activation="relu", input_shape=(5, 6, 1)), Flatten(), Dense(3)], seed=0
    )
    model.layers[0].set_weights([np.array([[[[1.0, 2.0]]]], "float32"), np.zeros(2, "float32")])
    dense = rng.normal(size=(5 * 6 * 2, 3)).astype("float32")
    model.layers[2].set_weights([dense, np.zeros(3, "float32")])
    x = rng.uniform(0.1, 1.0, size=(5, 6, 1)).astype("float32")
    for klass in range(3):
        alpha = dense[:, klass].reshape(5, 6, 2).mean(axis=(0, 1))
        expected = np.maximum(alpha[0] * x[..., 0] + alpha[1] * 2 * x[..., 0], 0)
        cam = viz.gradcam_map(model, x, klass)
        np.testing.assert_allclose(cam, expected, rtol=1e-5, atol=1e-6)
    assert model.layers[0].cache is None  # caches cleared afterwards


def test_gradcam_finds_the_region_that_matters_and_uses_the_last_conv(images, tmp_path):
    model = small_cnn()
    assert viz.gradcam.target_layer(model) == 2  # conv2d_1, the last Conv2D
    cam = viz.gradcam_map(model, images[0], 1)
    assert cam.shape == (4, 4) and cam.min() >= 0
    np.testing.assert_array_equal(cam, viz.gradcam_map(model, images[0], 1, layer="conv2d_1"))
    pooled = viz.gradcam_map(model, images[0], 1, layer="max_pooling2d")
    assert pooled.shape == (5, 5)
    fig = viz.show_saliency(model, images[0], 1, method="gradcam")
    fig.savefig(tmp_path / "gradcam.png")
    assert fig.tinycnn_data["layer"] == "conv2d_1"
    np.testing.assert_array_equal(fig.tinycnn_data["map"], cam)
    assert fig.axes[1].get_images()[0].get_cmap().name == "viridis"
    with pytest.raises(ValueError, match="not feature maps.*'conv2d', 'max_pooling2d', 'conv2d_1'"):
        viz.gradcam_map(model, images[0], 1, layer="flatten")


def test_gradcam_equals_the_model_gradient_through_the_later_layers(images):
    """After conv2d_1 come Flatten and Dense only, so dscore/dA is the dense weights of
    the class, reshaped to A's shape: Grad-CAM written out from the model's weights."""
    model = small_cnn(seed=3)
    x = images[0].astype("float64")
    cam = viz.gradcam_map(model, x, 2, layer="conv2d_1")
    a = model.activations(x[None])["conv2d_1"][0].astype("float64")  # (4, 4, 6)
    # the layers after conv2d_1 are Flatten and Dense: the score is linear in A
    w = model.layers[4].get_weights()[0][:, 2].reshape(4, 4, 6)
    expected = np.maximum((a * w.mean(axis=(0, 1))).sum(axis=-1), 0)
    np.testing.assert_allclose(cam, expected, rtol=1e-5, atol=1e-7)


def test_occlusion_drop_is_where_the_object_is(tmp_path):
    """Class 1's score is 4 times the brightness of the 4x4 block at rows 8-11, columns
    2-5; the image is that block on black. Hiding the block (fill 0) drops p(class 1);
    hiding any square that misses the block changes nothing."""
    weights = np.zeros((16, 16, 1, 2))
    weights[8:12, 2:6, 0, 1] = 4.0 / 16
    model = linear_model(weights.reshape(-1, 2), (16, 16, 1))
    x = np.zeros((16, 16, 1), "float32")
    x[8:12, 2:6] = 1.0
    p_full = 1 / (1 + np.exp(-4.0))  # softmax of the scores (0, 4)
    # squares tiling the image (stride = patch): one hides the block exactly
    drop = viz.occlusion_map(model, x, 1, patch=4, stride=4, fill=0.0)
    # the block straddles two squares (columns 0-3 and 4-7 of rows 8-11): hiding either
    # leaves half the block, a score of 2; hiding any other square changes nothing
    p_half = 1 / (1 + np.exp(-2.0))
    expected = np.zeros((16, 16))
    expected[8:12, 0:8] = p_full - p_half
    np.testing.assert_allclose(drop, expected, atol=1e-6)
    # overlapping squares: the mean drop over the squares covering each pixel
    drop = viz.occlusion_map(model, x, 1, patch=4, stride=2, fill=0.0)
    assert drop.shape == (16, 16)
    assert np.unravel_index(drop.argmax(), drop.shape) in {
        (r, c) for r in range(8, 12) for c in range(2, 6)
    }
    assert np.all(drop[:4] == 0) and np.all(drop[:, 10:] == 0)  # squares that miss it
    fig = viz.show_saliency(model, x, 1, method="occlusion", patch=4, stride=2, fill=0.0)
    fig.savefig(tmp_path / "occlusion.png")
    np.testing.assert_array_equal(fig.tinycnn_data["map"], drop)
    np.testing.assert_allclose(fig.tinycnn_data["probabilities"], [1 - p_full, p_full], rtol=1e-5)


def test_occlusion_hides_with_black_by_default():
    """The default square is black (fill 0), Fashion-MNIST's background: a square over the
    background alone changes nothing, where a grey one would add a shape."""
    weights = np.zeros((16, 16, 1, 2))
    weights[8:12, 2:6, 0, 1] = 4.0 / 16
    weights[0:4, 12:16, 0, 0] = 1.0  # class 0 reacts to light in the empty top right
    model = linear_model(weights.reshape(-1, 2), (16, 16, 1))
    x = np.zeros((16, 16, 1), "float32")
    x[8:12, 2:6] = 1.0
    default = viz.occlusion_map(model, x, 1, patch=4, stride=4)
    np.testing.assert_array_equal(
        default, viz.occlusion_map(model, x, 1, patch=4, stride=4, fill=0.0)
    )
    assert np.all(default[0:4, 12:16] == 0)
    grey = viz.occlusion_map(model, x, 1, patch=4, stride=4, fill=0.5)
    assert np.all(grey[0:4, 12:16] > 0.1)  # the grey square in the empty corner "matters"


def test_occlusion_default_patch_covers_every_pixel(images):
    drop = viz.occlusion_map(small_cnn(), images[0], 0)  # patch 3, stride 1 on 12x12
    assert drop.shape == (12, 12) and np.isfinite(drop).all()


def test_label_from_scores_and_bad_arguments(images):
    model = one_pixel_model()
    scores = np.array([[0.1, 0.9]], "float32")
    np.testing.assert_array_equal(
        viz.saliency_map(model, images[0], scores), viz.saliency_map(model, images[0], 1)
    )
    with pytest.raises(ValueError, match="method must be one of"):
        viz.show_saliency(model, images[0], 1, method="smoothgrad")
    with pytest.raises(ValueError, match="class 2 does not exist: the model has 2 classes"):
        viz.saliency_map(model, images[0], 2)
    with pytest.raises(ValueError, match="one class index"):
        viz.saliency_map(model, images[0], np.array([0, 1]))
    with pytest.raises(ValueError, match="no layer with feature maps"):
        viz.gradcam_map(model, images[0], 1)
    with pytest.raises(ValueError, match="patch must lie in"):
        viz.occlusion_map(model, images[0], 1, patch=13)


def test_on_either_backend(images, backend_name):
    model = small_cnn().to(backend_name)
    x = tinycnn.to_backend(images[0], backend_name)
    for method in ("gradient", "gradcam", "occlusion"):
        fig = viz.show_saliency(model, x, 1, method=method)
        assert np.isfinite(fig.tinycnn_data["map"]).all()


def test_gradcam_is_cam_for_a_global_pooling_model():
    """Conv2D -> Dropout -> GlobalAveragePooling2D -> Dense, unbuilt, on RGB images: the
    score is sum_k W[k, c] * mean_ij A[i, j, k], so Grad-CAM's alpha_k is W[k, c] / (h w)
    and the map is CAM (Zhou et al., 2016). Dropout stays off (inference mode)."""
    model = tinycnn.Sequential(
        [Conv2D(5, 3, activation="relu"), Dropout(0.5), GlobalAveragePooling2D(), Dense(4)],
        seed=1,
    )
    x = np.random.default_rng(2).random((9, 8, 3)).astype("float32")
    cam = viz.gradcam_map(model, x, 2)  # builds the model from the image
    a = model.activations(x[None])["conv2d"][0]  # (7, 6, 5)
    w = model.layers[3].get_weights()[0][:, 2]
    np.testing.assert_allclose(cam, np.maximum(a @ w / (7 * 6), 0), rtol=1e-5, atol=1e-7)
    fig = viz.show_saliency(model, x, 2, method="gradcam")
    assert fig.tinycnn_data["layer"] == "conv2d"
    assert viz.saliency_map(model, x, 2).shape == (9, 8)  # gradient, summed over R, G, B


# ---- viz.occlusion_map: the last square flush with the edge ---------------------------------
def corner_block_model():
    """Class 1's score is 4 times the mean brightness of the 4x4 block in the bottom-right
    corner (rows and columns 6-9) of a 10x10 image; class 0's is 0."""
    kernel = np.zeros((10, 10, 1, 2), "float32")
    kernel[6:, 6:, 0, 1] = 4.0 / 16
    model = tinycnn.Sequential([Flatten(input_shape=(10, 10, 1)), Dense(2)], seed=0)
    model.set_weights([kernel.reshape(-1, 2), np.zeros(2, "float32")])
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))  # softmax of the scores (0, z), class 1


def test_occlusion_covers_the_edge_the_stride_skips():
    """mutant viz-occlusion-no-last-edge. Patch 4, stride 4 on 10 pixels: squares start at
    0 and 4, and a last one at 6, flush with the edge, covers rows (columns) 8 and 9."""
    x = np.zeros((10, 10, 1), "float32")
    x[6:, 6:] = 1.0
    drop = viz.occlusion_map(corner_block_model(), x, 1, patch=4, stride=4, fill=0.0)
    assert drop.shape == (10, 10) and np.isfinite(drop).all()
    # pixel (9, 9): only the square at (6, 6) covers it, and it hides the whole block
    np.testing.assert_allclose(drop[9, 9], sigmoid(4.0) - 0.5, rtol=1e-5)
    # pixel (5, 5): only the square at (4, 4), which hides 4 of the block's 16 pixels
    np.testing.assert_allclose(drop[5, 5], sigmoid(4.0) - sigmoid(3.0), rtol=1e-5)
    assert drop[0, 0] == 0.0  # the square at (0, 0) misses the block
