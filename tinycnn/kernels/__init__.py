"""Array kernels the layers call: im2col/col2im, max-pooling, ReLU.

Each kernel has a readable reference (``reference.py``, NumPy and CuPy alike).
"""

from .reference import (  # noqa: F401
    adam_update,
    col2im,
    conv_output_size,
    im2col,
    maxpool_backward,
    maxpool_forward,
    relu_backward,
    relu_forward,
)
