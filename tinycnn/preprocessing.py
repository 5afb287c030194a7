"""Turning raw images into what the layers expect.

The layers want floating-point images of shape ``(N, H, W, C)`` in a small range.
Datasets ship ``uint8`` pixels in [0, 255] of shape ``(N, H, W)`` for grayscale.
This conversion is done here, on purpose, by the user: layers never rescale
silently, so a model trained on [0, 1] is never fed [0, 255] by accident.
"""

from __future__ import annotations

import numpy

from . import backend


def prepare_images(images, dtype: str | None = None):
    """Scale ``uint8`` images to [0, 1] floats and give them a channel axis.

    Args:
        images: ``(N, H, W)`` (grayscale) or ``(N, H, W, C)``, uint8 in [0, 255].
        dtype: float type of the result; default ``tinycnn.floatx()`` (float32).
    Returns:
        A NumPy array ``(N, H, W, 1)`` or ``(N, H, W, C)`` of ``dtype``, values in [0, 1].
    """
    images = numpy.asarray(images)
    if images.dtype != numpy.uint8:
        raise TypeError(
            f"prepare_images expects uint8 pixels in [0, 255], got {images.dtype}. "
            "Images that are already floats need no scaling."
        )
    if images.ndim == 3:
        images = images[..., numpy.newaxis]  # grayscale: add the channel axis C = 1
    if images.ndim != 4:
        raise ValueError(
            f"prepare_images expects (N, H, W) or (N, H, W, C) images, got shape {images.shape}."
        )
    dtype = dtype or backend.floatx()
    return images.astype(dtype) / numpy.array(255, dtype=dtype)
