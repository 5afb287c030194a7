"""Occlusion: hide part of the image and see how much the class probability drops.

A grey square slides over the image; for each position the model classifies the
occluded copy. Where hiding the pixels lowers the probability of the class most,
the model was looking (Zeiler and Fergus, 2014). No gradient is involved, only
forward passes, so it works for any model, at the price of one image per position.
Each pixel's value is the mean drop over the positions whose square covers it.
"""

from __future__ import annotations

import itertools

import numpy

from .checks import check_class, one_class, one_image, probabilities


def occlusion_map(model, image, label, patch=None, stride=None, fill=0.0) -> numpy.ndarray:
    """The drop in the probability of class ``label`` when each pixel is hidden, ``(H, W)``.

    Args:
        model: a ``Sequential`` whose output is the class scores (or probabilities).
        image: one image ``(H, W, C)`` or ``(1, H, W, C)``.
        label: the class (an index, or one image's scores: argmax).
        patch: the side of the square (a quarter of the image's smaller side by default).
        stride: its step (half the patch by default); the last square touches the edge.
        fill: the value of the hidden pixels: 0 by default, the black background of
            Fashion-MNIST (hiding then removes what was there, and a square over the
            background changes nothing); 0.5 (grey) suits photographs in [0, 1].

    Positive values: hiding there lowers the probability; negative: raises it.
    """
    x = one_image(model, image, "occlusion_map")[0]  # (H, W, C)
    klass = one_class(label, "occlusion_map")
    check_class(klass, model, "occlusion_map")
    height, width = x.shape[:2]
    patch = patch or max(1, min(height, width) // 4)
    stride = stride or max(1, patch // 2)
    if not 1 <= patch <= min(height, width) or stride < 1:
        raise ValueError(
            f"occlusion_map: patch must lie in [1, {min(height, width)}] and stride be at least "
            f"1, got patch={patch}, stride={stride}."
        )
    corners = list(itertools.product(_starts(height, patch, stride), _starts(width, patch, stride)))
    occluded = numpy.repeat(x[None], len(corners), axis=0)
    for n, (top, left) in enumerate(corners):
        occluded[n, top : top + patch, left : left + patch] = fill
    base = probabilities(model, x[None])[0, klass]
    drops = base - probabilities(model, occluded)[:, klass]
    total, count = numpy.zeros((height, width)), numpy.zeros((height, width))
    for drop, (top, left) in zip(drops, corners, strict=True):
        total[top : top + patch, left : left + patch] += drop
        count[top : top + patch, left : left + patch] += 1
    return total / count  # every pixel is covered at least once


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Where the square starts along one axis: every ``stride``, the last one flush
    with the edge so that every pixel is covered."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts
