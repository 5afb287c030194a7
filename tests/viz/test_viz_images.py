"""show_images: the grid, the titles, and the wrong predictions marked in red."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from tinycnn import viz

RED = to_rgba("tab:red")


def test_titles_and_wrong_predictions_marked(images, tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    predictions = np.array([0, 1, 1, 0, 1, 2, 2, 1])  # images 2 and 6 wrong
    fig = viz.show_images(images, labels, predictions, class_names=["cat", "dog", "emu"])
    fig.savefig(tmp_path / "images.png")
    data = fig.tinycnn_data
    assert data["wrong"].tolist() == [False, False, True, False, False, False, True, False]
    assert data["titles"][:3] == ["cat", "dog", "dog\n(emu)"]
    np.testing.assert_array_equal(data["images"], images)
    for k, ax in enumerate(fig.axes[:8]):
        wrong = k in (2, 6)
        assert (to_rgba(ax.title.get_color()) == RED) == wrong
        assert (ax.spines["left"].get_edgecolor() == RED) == wrong
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), images[k, ..., 0])


def test_scores_labels_rgb_and_limits(images):
    rgb = np.repeat(images[:4], 3, axis=-1)
    scores = np.eye(3)[[0, 2, 1, 1]]
    fig = viz.show_images(rgb, labels=[0, 1, 1, 1], predictions=scores, ncols=2)
    assert fig.tinycnn_data["predictions"].tolist() == [0, 2, 1, 1]
    assert fig.tinycnn_data["titles"] == ["0", "2\n(1)", "1", "1"]
    assert fig.tinycnn_data["images"].shape == (4, 12, 12, 3)
    fig = viz.show_images(images[..., 0], max_images=3)  # (N, H, W) without labels
    assert len(fig.tinycnn_data["images"]) == 3 and fig.tinycnn_data["titles"] == ["", "", ""]


def test_bad_arguments(images):
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) with C = 1 or 3.*x\[None\]"):
        viz.show_images(images[0, ..., 0])
    with pytest.raises(ValueError, match="labels has 3 entries for 8 images"):
        viz.show_images(images, labels=[0, 1, 2])
    with pytest.raises(TypeError, match="must be integers"):
        viz.show_images(images, labels=np.zeros(8))
