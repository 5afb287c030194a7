"""conv_arithmetic.py: output sizes and padding of a sliding window, against hand counts."""

from __future__ import annotations

import math

import pytest

from tinycnn import conv_arithmetic as ca
from tinycnn.layers import Conv2D, MaxPooling2D


@pytest.mark.parametrize(
    ("size", "k", "stride", "expected"),
    [
        (28, 3, 1, 26),  # the seed network's first convolution
        (13, 3, 1, 11),  # its second
        (26, 2, 2, 13),  # its first pool
        (11, 2, 2, 5),  # its second: the last row is dropped (floor)
        (7, 3, 2, 3),  # windows at 0, 2, 4
        (3, 3, 1, 1),  # the window fills the image
    ],
)
def test_output_size_counts_the_window_positions(size, k, stride, expected):
    positions = [start for start in range(0, size, stride) if start + k <= size]
    assert ca.output_size(size, k, stride) == expected == len(positions)


@pytest.mark.parametrize(("size", "k", "stride"), [(28, 3, 1), (7, 3, 2), (6, 2, 2), (5, 4, 3)])
def test_same_padding_gives_ceil_size_over_stride(size, k, stride):
    before, after = ca.same_padding(size, k, stride)
    assert ca.output_size(size + before + after, k, stride) == math.ceil(size / stride)
    assert after - before in (0, 1)  # the odd pixel goes after, as in TensorFlow


def test_paddings_and_output_hw_for_both_modes():
    assert ca.paddings("valid", (7, 6), (3, 3), (2, 2)) == ((0, 0), (0, 0))
    assert ca.paddings("same", (7, 6), (3, 3), (2, 2)) == ((1, 1), (0, 1))
    assert ca.padded_hw("same", (7, 6), (3, 3), (2, 2)) == (9, 7)
    assert ca.output_hw("valid", (7, 6), (3, 3), (2, 2)) == (3, 2)
    assert ca.output_hw("same", (7, 6), (3, 3), (2, 2)) == (4, 3)
    assert ca.output_hw("valid", (11, 11), (2, 2), (2, 2)) == (5, 5)


def test_the_layers_use_it():
    assert Conv2D(2, 3, strides=2, padding="same").compute_output_shape((7, 6, 1)) == (4, 3, 2)
    assert MaxPooling2D(3, 2, padding="same").compute_output_shape((7, 6, 5)) == (4, 3, 5)
    assert MaxPooling2D().compute_output_shape((11, 11, 64)) == (5, 5, 64)


def test_pair_and_padding_arguments():
    assert ca.pair(3, "k") == (3, 3) and ca.pair((2, 3), "k") == (2, 3)
    assert ca.check_padding("SAME", "p") == "same"
    with pytest.raises(ValueError, match=r"k must be a positive int or a pair of them, got 0"):
        ca.pair(0, "k")
    with pytest.raises(ValueError, match=r"k must be a positive int or a pair of them"):
        ca.pair((3, 3, 3), "k")
    with pytest.raises(ValueError, match=r"p must be 'valid' or 'same', got 'full'"):
        ca.check_padding("full", "p")
    with pytest.raises(ValueError, match=r"p must be 'valid' or 'same', got None"):
        ca.check_padding(None, "p")
