"""MaxPooling2D: the largest value of each window, channel by channel.

Shapes: x (N, H, W, C) -> y (N, Ho, Wo, C), Ho = (H - ph) // sh + 1 with 'valid'
padding (floor: 11 -> 5 for a 2x2 pool), Ho = ceil(H / sh) with 'same'.
The backward pass sends each output gradient to the one input that was the maximum
(the first one in a tie); every other input gets zero.
"""

from __future__ import annotations

from .. import kernels
from ..backend import get_array_module
from .base import Layer
from .conv2d import _pair, same_padding


class MaxPooling2D(Layer):
    """Max-pooling over channels-last images.

    Args:
        pool_size: window (ph, pw); an int means square.
        strides: step of the window; ``None`` means equal to ``pool_size`` (Keras).
        padding: "valid" (drop partial windows) or "same" (pad with -inf).
    """

    input_layout = "(N, H, W, C)"

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = _pair(pool_size, "MaxPooling2D pool_size")
        self.strides = _pair(
            strides if strides is not None else self.pool_size, "MaxPooling2D strides"
        )
        padding = padding.lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"MaxPooling2D padding must be 'valid' or 'same', got {padding!r}.")
        self.padding = padding

    def _pads(self, h, w):
        if self.padding == "valid":
            return (0, 0), (0, 0)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        return same_padding(h, ph, sh), same_padding(w, pw, sw)

    def compute_output_shape(self, input_shape):
        h, w, c = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        (pt, pb), (pl, pr) = self._pads(h, w)
        ho = kernels.conv_output_size(h + pt + pb, ph, sh)
        wo = kernels.conv_output_size(w + pl + pr, pw, sw)
        return (ho, wo, c)

    def _check_sample_shape(self, shape):
        if len(shape) != 3:
            return
        h, w, _ = shape
        (pt, pb), (pl, pr) = self._pads(h, w)
        if h + pt + pb < self.pool_size[0] or w + pl + pr < self.pool_size[1]:
            raise ValueError(
                f"{self._label()}: the {self.pool_size[0]}x{self.pool_size[1]} pool is larger "
                f"than the {h}x{w} input."
            )

    def _forward(self, x, training):
        pads = self._pads(x.shape[1], x.shape[2])
        if pads != ((0, 0), (0, 0)):
            xp = get_array_module(x)
            # -inf padding never wins a max, so 'same' windows see only real pixels
            x = xp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-xp.inf)
        y, argmax = kernels.maxpool_forward(x, *self.pool_size, *self.strides)
        self.cache = (argmax, x.shape, pads)
        return y

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        argmax, padded_shape, pads = self.cache
        dx = kernels.maxpool_backward(dy, argmax, padded_shape, *self.pool_size, *self.strides)
        (pt, pb), (pl, pr) = pads
        return dx[:, pt : padded_shape[1] - pb, pl : padded_shape[2] - pr]

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


MaxPool2D = MaxPooling2D
