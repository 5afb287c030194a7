"""MaxPooling2D: the largest value of each window, channel by channel.

Shapes (channels-last, as Keras):
    x       (N, H, W, C)          input images
    y       (N, Ho, Wo, C)        Ho = (H + pad - ph) // sh + 1 (conv_arithmetic.py)
    argmax  (N, Ho, Wo, C) int8   where in its window each maximum was: i * pw + j

With 'valid' padding a last partial window is dropped (floor: 11 -> 5 for a 2x2
pool); 'same' pads with -inf, which never wins, so that Ho = ceil(H / sh).

Forward loops over the ph * pw offsets (i, j) of a window, not over the output
pixels: for a fixed offset, every window's pixel (i, j) is one strided slice of x,
so the maximum is taken slice by slice (the same trick as im2col in conv2d.py):

    for each offset (i, j) after (0, 0), whose slice y starts as:
        window = x[:, i : i + sh*Ho : sh, j : j + sw*Wo : sw]         (N, Ho, Wo, C)
        better = (window > y) | isnan(window)    (strict: the first maximum wins a tie)
        y      = where(better, window, y);  argmax = where(better, i * pw + j, argmax)

Backward sends each output gradient to the one input that was the maximum, and 0
to every other input (added up where windows overlap, stride < pool):

    for each offset (i, j):
        dx[:, i : i + sh*Ho : sh, j : j + sw*Wo : sw] += where(argmax == i * pw + j, dy, 0)

Both are written out in kernels/reference.py (``maxpool_forward``,
``maxpool_backward``); on the CPU a compiled twin computes the same in one pass.
"""

from __future__ import annotations

from .. import conv_arithmetic, kernels
from ..backend import get_array_module
from .base import Layer


class Pooling2D(Layer):
    """What every 2-D pooling layer shares: its window, strides and padding, and the
    shapes they give. Subclasses write ``_forward``/``_backward`` (max, average...).

    Args:
        pool_size: window (ph, pw); an int means square.
        strides: step of the window; ``None`` means equal to ``pool_size`` (Keras).
        padding: "valid" (drop partial windows) or "same" (pad so Ho = ceil(H / sh)).
    """

    input_layout = "(N, H, W, C)"

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        kind = type(self).__name__
        self.pool_size = conv_arithmetic.pair(pool_size, f"{kind} pool_size")
        self.strides = conv_arithmetic.pair(
            strides if strides is not None else self.pool_size, f"{kind} strides"
        )
        self.padding = conv_arithmetic.check_padding(padding, f"{kind} padding")

    # ---- shapes (the formulas: conv_arithmetic.py) ----------------------------------------
    def _paddings(self, h: int, w: int):
        """((top, bottom), (left, right)) padding for an h x w input."""
        return conv_arithmetic.paddings(self.padding, (h, w), self.pool_size, self.strides)

    def compute_output_shape(self, input_shape):
        h, w, c = input_shape
        ho, wo = conv_arithmetic.output_hw(self.padding, (h, w), self.pool_size, self.strides)
        return (ho, wo, c)

    def _check_sample_shape(self, shape):
        if len(shape) != 3:
            return
        h, w, _ = shape
        padded_h, padded_w = conv_arithmetic.padded_hw(
            self.padding, (h, w), self.pool_size, self.strides
        )
        if padded_h < self.pool_size[0] or padded_w < self.pool_size[1]:
            raise ValueError(
                f"{self._label()}: the {self.pool_size[0]}x{self.pool_size[1]} pool is larger "
                f"than the {h}x{w} input."
            )

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPooling2D(Pooling2D):
    """Max-pooling over channels-last images ('same' pads with -inf, which never wins).

    Args: those of :class:`Pooling2D` (pool_size, strides=None, padding="valid").
    """

    # ---- forward and backward ----------------------------------------------------------
    def _forward(self, x, training):
        pads = self._paddings(x.shape[1], x.shape[2])
        if pads != ((0, 0), (0, 0)):
            xp = get_array_module(x)
            # -inf padding never wins a max, so 'same' windows see only real pixels
            x = xp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-xp.inf)
        # the offset loop of the module docstring (reference.maxpool_forward)
        y, argmax = kernels.maxpool_forward(x, *self.pool_size, *self.strides)
        self.cache = (argmax, x.shape, pads)
        return y

    def _backward(self, dy, input_grad):
        if not input_grad:
            return None
        argmax, padded_shape, pads = self.cache
        # each gradient to its window's maximum (reference.maxpool_backward)
        dx = kernels.maxpool_backward(dy, argmax, padded_shape, *self.pool_size, *self.strides)
        (pt, pb), (pl, pr) = pads
        return dx[:, pt : padded_shape[1] - pb, pl : padded_shape[2] - pr]


MaxPool2D = MaxPooling2D
