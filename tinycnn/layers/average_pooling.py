"""AveragePooling2D and GlobalAveragePooling2D: the mean of each window, channel by channel.

Shapes (channels-last, as Keras):
    x       (N, H, W, C)          input images
    y       (N, Ho, Wo, C)        AveragePooling2D: Ho = (H + pad - ph) // sh + 1 (conv_arithmetic.py)
    y       (N, C)                GlobalAveragePooling2D: one window, the whole image
    count   (Ho, Wo)              how many real (not padding) pixels each window holds

With 'valid' padding every window holds ph * pw real pixels. 'same' pads with
zeros and divides by the real pixels only (as TensorFlow and Keras): a corner
window that is half padding is the mean of its real half, not half of it.

Forward loops over the ph * pw offsets (i, j) of a window, as MaxPooling2D does:
for a fixed offset, every window's pixel (i, j) is one strided slice of x,

    total = sum over (i, j) of x[:, i : i + sh*Ho : sh, j : j + sw*Wo : sw]   (N, Ho, Wo, C)
    y     = total / count

Backward: y is a sum of pixels times 1 / count, so each input pixel receives
dy / count from every window that holds it (added up where windows overlap):

    for each offset (i, j):
        dx[:, i : i + sh*Ho : sh, j : j + sw*Wo : sw] += dy / count

The arithmetic is plain array slicing on ``xp`` (NumPy or CuPy alike); no fast
CPU twin, since the loop runs over ph * pw offsets, not over pixels.
"""

from __future__ import annotations

from .. import conv_arithmetic
from ..backend import get_array_module
from .base import Layer
from .pooling import Pooling2D


def _window_counts(size: int, before: int, k: int, stride: int, out: int):
    """Real pixels in each of the ``out`` windows along one axis of ``size`` pixels
    padded with ``before`` zeros: a list of ``out`` ints."""
    counts = []
    for o in range(out):
        start = o * stride - before  # first pixel of the window, in unpadded coordinates
        counts.append(min(start + k, size) - max(start, 0))
    return counts


class AveragePooling2D(Pooling2D):
    """Average-pooling over channels-last images.

    Args: those of :class:`~tinycnn.layers.pooling.Pooling2D` (pool_size,
    strides=None, padding="valid"); "same" zero-pads and divides by the real pixels
    of each window, as TensorFlow.
    """

    def _counts(self, xp, h: int, w: int, dtype):
        """(Ho, Wo, 1) array: the real pixels in each window (ph * pw everywhere for
        'valid'); the outer product of the row counts and the column counts."""
        (pt, _), (pl, _) = self._paddings(h, w)
        ho, wo = conv_arithmetic.output_hw(self.padding, (h, w), self.pool_size, self.strides)
        rows = _window_counts(h, pt, self.pool_size[0], self.strides[0], ho)
        cols = _window_counts(w, pl, self.pool_size[1], self.strides[1], wo)
        counts = xp.asarray(rows, dtype=dtype)[:, None] * xp.asarray(cols, dtype=dtype)[None, :]
        return counts[:, :, None]  # broadcasts over (N, Ho, Wo, C)

    # ---- forward and backward ----------------------------------------------------------
    def _forward(self, x, training):
        xp = get_array_module(x)
        n, h, w, c = x.shape
        pads = self._paddings(h, w)
        if pads != ((0, 0), (0, 0)):
            x = xp.pad(x, ((0, 0), *pads, (0, 0)))  # zeros add nothing to a window's sum
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        ho, wo, _ = self.compute_output_shape((h, w, c))
        total = xp.zeros((n, ho, wo, c), dtype=x.dtype)
        for i in range(ph):
            for j in range(pw):
                total += x[:, i : i + sh * ho : sh, j : j + sw * wo : sw]
        counts = self._counts(xp, h, w, x.dtype)
        self.cache = (counts, x.shape, pads)
        return total / counts

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        xp = get_array_module(dy)
        counts, padded_shape, pads = self.cache
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        _, ho, wo, _ = dy.shape
        share = dy / counts  # what each pixel of a window receives
        dx = xp.zeros(padded_shape, dtype=dy.dtype)
        for i in range(ph):
            for j in range(pw):
                dx[:, i : i + sh * ho : sh, j : j + sw * wo : sw] += share
        (pt, pb), (pl, pr) = pads
        return dx[:, pt : padded_shape[1] - pb, pl : padded_shape[2] - pr]


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over the whole image: (N, H, W, C) -> (N, C).

    Often replaces Flatten before the last Dense layer: the classifier then sees
    C numbers per image whatever H and W are.
    """

    input_layout = "(N, H, W, C)"

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)

    def _forward(self, x, training):
        self.cache = x.shape
        return x.mean(axis=(1, 2))

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        xp = get_array_module(dy)
        n, h, w, c = self.cache
        # y = sum / (H * W): every pixel of a channel receives dy / (H * W)
        share = dy / (h * w)  # (N, C)
        return xp.broadcast_to(share[:, None, None, :], (n, h, w, c)).copy()


AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
