"""plot_confusion_matrix: the counts, the row-normalised matrix, and the panels."""

from __future__ import annotations

import numpy as np
import pytest

from tinycnn import viz

Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])


def test_counts_and_normalised_values(tmp_path):
    fig = viz.plot_confusion_matrix(Y_TRUE, Y_PRED, ["a", "b", "c"])
    fig.savefig(tmp_path / "cm.png")
    counts, normalized = fig.tinycnn_data["counts"], fig.tinycnn_data["normalized"]
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    np.testing.assert_allclose(normalized, [[2 / 3, 1 / 3, 0], [0, 0.5, 0.5], [0.25, 0, 0.75]])
    left, right = fig.axes[:2]  # then their colorbars
    assert np.array_equal(left.get_images()[0].get_array(), counts)
    assert np.allclose(right.get_images()[0].get_array(), normalized)
    assert "counts" in left.get_title() and "row-normalised" in right.get_title()
    assert [t.get_text() for t in left.get_xticklabels()] == ["a", "b", "c"]
    texts = [t.get_text() for t in left.texts]
    assert texts == ["2", "1", "0", "0", "1", "1", "1", "0", "3"]


def test_scores_are_reduced_with_argmax_and_fix_the_class_count():
    scores = np.eye(4)[Y_PRED] * 5.0  # one-hot scores over 4 classes, class 3 never used
    fig = viz.plot_confusion_matrix(Y_TRUE, scores)
    assert fig.tinycnn_data["counts"].shape == (4, 4)
    assert fig.tinycnn_data["counts"][:3, :3].tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    # the empty row of class 3 normalises to zeros, not NaN
    assert fig.tinycnn_data["normalized"][3].tolist() == [0, 0, 0, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="y_true has 9 labels but y_pred has 2"):
        viz.plot_confusion_matrix(Y_TRUE, [0, 1])
    with pytest.raises(ValueError, match="class 2 appears but only 2 class_names"):
        viz.plot_confusion_matrix(Y_TRUE, Y_PRED, ["a", "b"])
    with pytest.raises(TypeError, match="integers"):
        viz.plot_confusion_matrix(Y_TRUE.astype(float), Y_PRED)
