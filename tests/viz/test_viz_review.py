"""Regressions found by reviewing the pictures on models other than the seed network:
RGB filters in colour, signed feature maps on a diverging scale, short class_names
and one image passed to show_images caught, and the notes a figure owes its reader."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import viz
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Flatten, GlobalAveragePooling2D


def test_rgb_filters_are_drawn_in_colour_with_grey_at_zero():
    model = tinycnn.Sequential([Conv2D(5, 3, input_shape=(10, 10, 3)), Flatten(), Dense(2)], seed=0)
    kernel = model.layers[0].get_weights()[0]  # (3, 3, 3, 5)
    fig = viz.show_filters(model.layers[0])
    tiles, limit = fig.tinycnn_data["tiles"], fig.tinycnn_data["limits"][0]
    assert tiles.shape == (5, 3, 3, 3)  # the weights themselves, not their mean
    np.testing.assert_array_equal(tiles[2], kernel[..., 2])
    assert limit == pytest.approx(np.abs(kernel).max())
    drawn = fig.axes[2].get_images()[0].get_array()
    assert drawn.shape == (3, 3, 3)  # an RGB picture
    np.testing.assert_allclose(drawn, 0.5 + kernel[..., 2] / (2 * limit), rtol=1e-6)
    assert drawn.min() >= 0 and drawn.max() <= 1
    assert "as RGB" in fig.get_suptitle() and "grey = 0" in fig.get_suptitle()


def test_signed_feature_maps_use_a_symmetric_diverging_scale():
    # a convolution without activation, then BatchNormalization: values of both signs
    model = tinycnn.Sequential(
        [
            Conv2D(3, 3, activation="relu", input_shape=(9, 9, 1)),
            Conv2D(4, 3),
            BatchNormalization(),
            GlobalAveragePooling2D(),
        ],
        seed=0,
    )
    image = np.random.default_rng(0).random((9, 9, 1)).astype("float32")
    fig = viz.show_feature_maps(model, image)  # the two Conv2D rows
    relu_row, signed_row = fig.axes[0].get_images()[0], fig.axes[4].get_images()[0]
    assert relu_row.get_cmap().name == "viridis"  # >= 0: sequential, as before
    maps = fig.tinycnn_data["maps"]["conv2d_1"]
    assert maps.min() < 0 < maps.max()
    limit = np.abs(maps).max()
    assert signed_row.get_cmap().name == "RdBu_r"
    assert signed_row.get_clim() == pytest.approx((-limit, limit))  # white is 0
    one = viz.show_feature_maps(model, image, layer="conv2d_1")
    assert one.axes[0].get_images()[0].get_clim() == pytest.approx((-limit, limit))
    assert "symmetric diverging" in one.get_suptitle()


def test_a_dense_layer_or_an_mlp_has_no_feature_maps_to_draw():
    mlp = tinycnn.Sequential([Flatten(input_shape=(6, 6, 1)), Dense(4), Dense(3)], seed=0)
    image = np.zeros((6, 6, 1), "float32")
    with pytest.raises(ValueError, match="no layer outputs feature maps"):
        viz.show_feature_maps(mlp, image)
    with pytest.raises(ValueError, match=r"a vector.*no layer with feature maps"):
        viz.show_feature_maps(mlp, image, layer=1)
    with pytest.raises(ValueError, match="Grad-CAM needs a convolution"):
        viz.show_saliency(mlp, image, 0, method="gradcam")


def test_show_images_rejects_too_few_class_names(images):
    with pytest.raises(ValueError, match="class 5 appears but only 3 class_names"):
        viz.show_images(images[:4], [0, 1, 5, 2], class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class 4 appears"):
        viz.show_images(images[:2], [0, 1], np.eye(5)[[0, 4]], class_names=["a", "b", "c"])
    fig = viz.show_images(images[:2], [0, 1], class_names=["a", "b", "c"])  # more is fine
    assert fig.tinycnn_data["titles"] == ["a", "b"]


def test_show_saliency_rejects_class_names_of_the_wrong_length():
    model = tinycnn.Sequential([Flatten(input_shape=(4, 4, 1)), Dense(3)], seed=0)
    with pytest.raises(ValueError, match="2 class_names for a model with 3 classes"):
        viz.show_saliency(model, np.zeros((4, 4, 1), "float32"), 0, class_names=["a", "b"])


def test_one_image_passed_to_show_images_is_not_read_as_a_batch(images):
    # (12, 12, 1) used to be drawn as twelve images 12 pixels high and 1 wide
    with pytest.raises(ValueError, match=r"looks like one image.*x\[None\]"):
        viz.show_images(images[0])
    fig = viz.show_images(images[0][None], [3])
    assert len(fig.tinycnn_data["images"]) == 1 and fig.tinycnn_data["titles"] == ["3"]


def test_a_truncated_grid_says_how_many_images_it_leaves_out(images):
    many = np.repeat(images, 13, axis=0)  # 104 images
    fig = viz.show_images(many, np.zeros(104, int))
    assert len(fig.tinycnn_data["images"]) == 64
    assert fig.get_suptitle() == "the first 64 of 104 images (max_images=64)"
    assert viz.show_images(images).get_suptitle() == ""  # all shown: no note


def test_history_of_one_epoch_marks_each_step_on_whole_numbers():
    history = tinycnn.callbacks.History()
    history.history = {"loss": [2.0]}
    history.batch_history = {"loss": [2.2, 1.8]}
    history.epoch = [0]
    fig = viz.plot_history(history)
    line = fig.axes[1].get_lines()[0]
    assert line.get_marker() == "."  # two points: each visible
    ticks = fig.axes[1].get_xticks()
    assert np.all(ticks == np.round(ticks))  # no step 1.5
