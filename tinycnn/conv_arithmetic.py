"""Convolution arithmetic: the sizes a sliding window makes, for the layers and the kernels.

Conv2D and MaxPooling2D slide a kh x kw window over an image, ``stride`` pixels at a
time; the kernels compute what the layers promise. Both need the same few formulas,
kept here once (the names follow Dumoulin & Visin, "A guide to convolution arithmetic
for deep learning", 2016; Keras keeps them in ``conv_utils``, Chainer in ``utils/conv.py``).

Along one axis of ``size`` pixels, a window of ``k`` pixels moving by ``stride``:

    'valid' (no padding)   out = (size - k) // stride + 1     a partial last window is dropped
    'same'                 out = ceil(size / stride)           zero padding added around to get it

For example 28 pixels, k = 3, stride 1: 'valid' gives 26 outputs, 'same' gives 28 (one
pixel of padding on each side). A 2x2 pool with stride 2 on 11 pixels gives 5 ('valid').
"""

from __future__ import annotations

PADDINGS = ("valid", "same")


def pair(value, what: str) -> tuple[int, int]:
    """A window size or stride as (rows, columns): 3 means (3, 3), as in Keras."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}.")
    return pair


def check_padding(padding, what: str) -> str:
    """``padding`` as one of PADDINGS (any case is accepted, like Keras)."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in PADDINGS:
        raise ValueError(f"{what} must be 'valid' or 'same', got {mode!r}.")
    return mode


def output_size(size: int, k: int, stride: int) -> int:
    """Number of positions a window of ``k`` pixels takes in ``size`` pixels (no padding)."""
    return (size - k) // stride + 1


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) that makes the output ceil(size / stride), as Keras/TF do.

    When the total is odd, the extra pixel goes after (bottom/right), like TensorFlow.
    """
    out = -(-size // stride)  # ceil division
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def paddings(padding: str, hw, window, strides):
    """((top, bottom), (left, right)): the padding of an ``hw`` = (H, W) image for a
    (kh, kw) ``window`` moving by ``strides`` = (sh, sw); zeros for 'valid'."""
    if padding == "valid":
        return (0, 0), (0, 0)
    (h, w), (kh, kw), (sh, sw) = hw, window, strides
    return same_padding(h, kh, sh), same_padding(w, kw, sw)


def padded_hw(padding: str, hw, window, strides) -> tuple[int, int]:
    """(H, W) of an ``hw`` image once padded: the sizes the window slides over."""
    (top, bottom), (left, right) = paddings(padding, hw, window, strides)
    return hw[0] + top + bottom, hw[1] + left + right


def output_hw(padding: str, hw, window, strides) -> tuple[int, int]:
    """(Ho, Wo): how many window positions fit in an ``hw`` = (H, W) image, padded."""
    h, w = padded_hw(padding, hw, window, strides)
    return output_size(h, window[0], strides[0]), output_size(w, window[1], strides[1])
