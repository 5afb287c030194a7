"""Tests for tinycnn.preprocessing.prepare_images and tinycnn.metrics, on small
inputs whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.metrics import (
    confusion_matrix,
    format_confusion_matrix,
    format_per_class,
    per_class_accuracy,
)
from tinycnn.preprocessing import prepare_images


# ---- prepare_images -------------------------------------------------------------------------------
def test_grayscale_images_get_a_channel_axis_and_scale_to_unit_range():
    images = np.array([[[0, 51], [102, 255]], [[255, 0], [0, 0]]], dtype=np.uint8)
    out = prepare_images(images)
    assert out.shape == (2, 2, 2, 1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(
        out[0, :, :, 0], np.array([[0.0, 0.2], [0.4, 1.0]], dtype=np.float32)
    )
    assert out.min() == 0.0 and out.max() == 1.0


def test_all_256_values_map_to_value_over_255():
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = prepare_images(values)
    np.testing.assert_allclose(out.ravel(), np.arange(256) / 255.0, rtol=1e-7, atol=0)
    assert np.all(np.diff(out.ravel()) > 0)  # strictly increasing: no two levels merge


def test_color_images_keep_their_channels():
    images = np.full((3, 4, 5, 3), 255, dtype=np.uint8)
    out = prepare_images(images)
    assert out.shape == (3, 4, 5, 3)
    assert np.all(out == 1.0)


def test_dtype_argument_and_floatx():
    images = np.zeros((1, 2, 2), dtype=np.uint8)
    assert prepare_images(images, dtype="float64").dtype == np.float64
    with tinycnn.use_floatx("float64"):
        assert prepare_images(images).dtype == np.float64
    assert prepare_images(images).dtype == np.float32


def test_the_input_is_not_modified_and_lists_work():
    images = np.array([[[7, 9]]], dtype=np.uint8)
    prepare_images(images)
    assert images.dtype == np.uint8 and images.tolist() == [[[7, 9]]]
    # a plain list of ints is int64, not uint8: refused like any other dtype
    with pytest.raises(TypeError, match="uint8"):
        prepare_images([[[7, 9]]])


def test_an_empty_batch():
    out = prepare_images(np.zeros((0, 28, 28), dtype=np.uint8))
    assert out.shape == (0, 28, 28, 1) and out.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint16, np.int8])
def test_non_uint8_images_are_refused(dtype):
    with pytest.raises(TypeError, match="uint8") as info:
        prepare_images(np.zeros((2, 4, 4), dtype=dtype))
    assert np.dtype(dtype).name in str(info.value)


@pytest.mark.parametrize("shape", [(28, 28), (784,), (2, 4, 4, 1, 1), ()])
def test_wrong_number_of_axes_is_refused(shape):
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, C\)"):
        prepare_images(np.zeros(shape, dtype=np.uint8))


# ---- confusion matrix and per-class accuracy ----------------------------------------------------------
Y_TRUE = [0, 1, 2, 2, 1, 0]
Y_PRED = [0, 2, 2, 2, 0, 0]
CM = [[2, 0, 0], [1, 0, 1], [0, 0, 2]]


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    assert cm.tolist() == CM
    assert cm.sum() == len(Y_TRUE)


def test_confusion_matrix_with_absent_classes_and_no_samples():
    cm = confusion_matrix(np.array([1, 1]), np.array([3, 1]), 4)
    assert cm.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    empty = confusion_matrix(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 2)
    assert empty.tolist() == [[0, 0], [0, 0]]


def test_confusion_matrix_matches_a_double_loop():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 10), expected)


def test_confusion_matrix_refuses_labels_out_of_range():
    with pytest.raises(ValueError):
        confusion_matrix([0], [5], 3)


def test_per_class_accuracy():
    acc = per_class_accuracy(np.array(CM))
    np.testing.assert_array_equal(acc, [1.0, 0.0, 1.0])
    acc = per_class_accuracy(np.array([[3, 1], [0, 0]]))  # class 1 has no samples
    np.testing.assert_array_equal(acc, [0.75, 0.0])


# ---- text tables -------------------------------------------------------------------------------------
NAMES = ["a", "bb", "Ankle boot"]


def test_format_per_class():
    assert format_per_class(np.array(CM), NAMES).splitlines() == [
        "class       correct / total  accuracy",
        "a                 2 / 2       100.00%",
        "bb                0 / 2         0.00%",
        "Ankle boot        2 / 2       100.00%",
    ]


def test_format_per_class_with_fractions():
    cm = np.array([[1, 2], [0, 3]])
    assert format_per_class(cm, ["shirts", "y"]).splitlines() == [
        "class   correct / total  accuracy",
        "shirts        1 / 3        33.33%",
        "y             3 / 3       100.00%",
    ]


def test_format_per_class_columns_line_up_with_short_names():
    lines = format_per_class(np.array([[1, 2], [0, 3]]), ["x", "y"]).splitlines()
    assert len({line.index("/") for line in lines}) == 1


def test_format_confusion_matrix():
    assert format_confusion_matrix(np.array(CM), NAMES).splitlines() == [
        "true \\ pred       a      bb Ankle b",
        "a                 2       0       0",
        "bb                1       0       1",
        "Ankle boot        0       0       2",
    ]


def test_format_confusion_matrix_widens_for_large_counts():
    cm = np.array([[12345678, 0], [1, 2]])
    lines = format_confusion_matrix(cm, ["p", "q"]).splitlines()
    assert lines == [
        "true \\ pred        p        q",
        "p           12345678        0",
        "q                  1        2",
    ]
    assert len({len(line) for line in lines}) == 1  # columns line up
