"""show_feature_maps: the channels of model.activations for one image."""

from __future__ import annotations

import numpy as np
import pytest
from viz_models import small_cnn

from tinycnn import viz


def test_every_conv_and_pool_layer(images, tmp_path):
    model = small_cnn()
    fig = viz.show_feature_maps(model, images[0])
    fig.savefig(tmp_path / "maps.png")
    outputs = model.activations(images[:1])
    assert fig.tinycnn_data["layers"] == ["conv2d", "max_pooling2d", "conv2d_1"]  # not dense
    for name, maps in fig.tinycnn_data["maps"].items():
        np.testing.assert_array_equal(maps, outputs[name][0])
    # row 0 (conv2d, 4 channels): its tiles are the channels, on a sequential colormap
    for k in range(4):
        image = fig.axes[k].get_images()[0]
        np.testing.assert_array_equal(image.get_array(), outputs["conv2d"][0, ..., k])
        assert image.get_cmap().name == "viridis"


@pytest.mark.parametrize("which", ["conv2d_1", 2, -3, "object"])
def test_one_layer_by_name_index_or_object(images, which):
    model = small_cnn()
    layer = model.layers[2] if which == "object" else which
    fig = viz.show_feature_maps(model, images[:1], layer=layer)  # a batch of one works too
    assert fig.tinycnn_data["layers"] == ["conv2d_1"]
    maps = fig.tinycnn_data["maps"]["conv2d_1"]
    assert maps.shape == (4, 4, 6)
    for k in range(6):
        np.testing.assert_array_equal(fig.axes[k].get_images()[0].get_array(), maps[..., k])


def test_bad_arguments(images):
    model = small_cnn()
    with pytest.raises(ValueError, match=r"no layer named 'conv'; the model's layers: \['conv2d'"):
        viz.show_feature_maps(model, images[0], layer="conv")
    with pytest.raises(IndexError, match="out of range: the model has 5 layers"):
        viz.show_feature_maps(model, images[0], layer=5)
    with pytest.raises(ValueError, match="not feature maps.*'conv2d', 'max_pooling2d', 'conv2d_1'"):
        viz.show_feature_maps(model, images[0], layer="dense")
    with pytest.raises(ValueError, match=r"not a layer of this model"):
        viz.show_feature_maps(model, images[0], layer=small_cnn().layers[0])
    with pytest.raises(ValueError, match=r"expected one image, got a batch of 8"):
        viz.show_feature_maps(model, images)
    with pytest.raises(ValueError, match=r"channel axis: image\[\.\.\., None\]"):
        viz.show_feature_maps(model, images[0, ..., 0])
    with pytest.raises(TypeError, match="must hold floats"):
        viz.show_feature_maps(model, (images[0] * 255).astype("uint8"))
