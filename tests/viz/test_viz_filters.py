"""show_filters: each tile is the kernel of one filter, on a symmetric diverging scale."""

from __future__ import annotations

import numpy as np
import pytest
from viz_models import small_cnn

import tinycnn
from tinycnn import viz
from tinycnn.layers import Conv2D


def test_first_layer_tiles_are_the_kernels(tmp_path):
    layer = small_cnn().layers[0]  # kernel (3, 3, 1, 4)
    fig = viz.show_filters(layer)
    fig.savefig(tmp_path / "filters.png")
    kernel = layer.get_weights()[0]
    tiles = fig.tinycnn_data["tiles"]
    assert tiles.shape == (4, 3, 3)
    for f in range(4):
        np.testing.assert_array_equal(tiles[f], kernel[:, :, 0, f])
        image = fig.axes[f].get_images()[0]
        np.testing.assert_array_equal(image.get_array(), kernel[:, :, 0, f])
        assert image.get_cmap().name == "RdBu_r"
        assert image.get_clim() == (-np.abs(kernel).max(), np.abs(kernel).max())  # shared
    assert "shared scale" in fig.get_suptitle() and "single input channel" in fig.get_suptitle()


def test_deeper_layer_averages_channels_and_per_tile_scale():
    layer = small_cnn().layers[2]  # kernel (2, 2, 4, 6)
    fig = viz.show_filters(layer, scale="per tile")
    kernel = layer.get_weights()[0]
    np.testing.assert_allclose(fig.tinycnn_data["tiles"], kernel.mean(axis=2).transpose(2, 0, 1))
    for f, ax in enumerate(fig.axes[:6]):
        limit = np.abs(kernel[:, :, :, f].mean(axis=2)).max()
        np.testing.assert_allclose(ax.get_images()[0].get_clim(), (-limit, limit))
    assert (
        "per-tile scale" in fig.get_suptitle() and "mean of 4 input channels" in fig.get_suptitle()
    )


def test_bad_arguments():
    model = small_cnn()
    with pytest.raises(TypeError, match="expected a Conv2D layer.*Dense"):
        viz.show_filters(model.layers[-1])
    with pytest.raises(ValueError, match="not built yet"):
        viz.show_filters(Conv2D(3, 3))
    with pytest.raises(ValueError, match="scale must be one of"):
        viz.show_filters(model.layers[0], scale="per-tile")


def test_weights_on_either_backend(backend_name):
    model = small_cnn().to(backend_name)
    fig = viz.show_filters(model.layers[0])
    kernel = tinycnn.to_numpy(model.layers[0].params["kernel"])
    np.testing.assert_array_equal(fig.tinycnn_data["tiles"], kernel[:, :, 0].transpose(2, 0, 1))
