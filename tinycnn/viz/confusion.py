"""The confusion matrix as a picture: which classes the model mistakes for which.

Row i, column j counts the images of true class i predicted as class j, so the
diagonal holds the correct answers. Counts (left) show where the most images go
wrong; the row-normalised matrix (right: each row divided by its total, the per-class
recall on the diagonal) compares classes fairly when they have different sizes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy

from ..metrics import confusion_matrix
from .checks import class_indices

# Numbers are written in the cells up to this many classes; beyond, they would not fit.
MAX_ANNOTATED = 20


def plot_confusion_matrix(y_true, y_pred, class_names=None):
    """Counts and row-normalised confusion matrices, side by side.

    Args:
        y_true: true class indices ``(N,)`` (or one-hot / scores ``(N, classes)``).
        y_pred: predicted class indices ``(N,)``, or scores ``(N, classes)`` (argmax).
        class_names: one name per class; they also fix the number of classes.

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"counts"`` ``(C, C)`` (from
        ``tinycnn.metrics.confusion_matrix``) and ``"normalized"`` (rows sum to 1, a row
        without images is all 0).
    """
    true = class_indices(y_true, "plot_confusion_matrix: y_true")
    predicted = class_indices(y_pred, "plot_confusion_matrix: y_pred")
    if len(true) != len(predicted):
        raise ValueError(
            f"plot_confusion_matrix: y_true has {len(true)} labels but y_pred has "
            f"{len(predicted)}; they must be one per image."
        )
    classes = _num_classes(true, predicted, y_pred, class_names)
    counts = confusion_matrix(true, predicted, classes)
    totals = counts.sum(axis=1, keepdims=True)
    normalized = numpy.divide(counts, totals, out=numpy.zeros(counts.shape), where=totals > 0)
    names = (
        [str(n) for n in class_names] if class_names is not None else list(map(str, range(classes)))
    )

    size = max(4.5, 0.45 * classes + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size), layout="constrained")
    panels = (
        (axes[0], counts, "counts", "d"),
        (axes[1], normalized, "row-normalised (recall on diagonal)", ".2f"),
    )
    for ax, matrix, title, fmt in panels:
        top = 1.0 if matrix is normalized else max(int(matrix.max(initial=0)), 1)
        image = ax.imshow(matrix, cmap="Blues", interpolation="nearest", vmin=0, vmax=top)
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set(title=title, xlabel="predicted class", ylabel="true class")
        ax.set_xticks(range(classes), names, rotation=45, ha="right")
        ax.set_yticks(range(classes), names)
        if classes <= MAX_ANNOTATED:
            _annotate(ax, matrix, fmt)
    fig.suptitle(f"confusion matrix of {int(counts.sum())} images (rows: true class)")
    fig.tinycnn_data = {"counts": counts, "normalized": normalized, "class_names": names}
    return fig


def _num_classes(true, predicted, y_pred, class_names) -> int:
    if class_names is not None:
        classes = len(class_names)
        largest = max(int(true.max(initial=0)), int(predicted.max(initial=0)))
        if largest >= classes:
            raise ValueError(
                f"plot_confusion_matrix: class {largest} appears but only {classes} "
                "class_names were given."
            )
        return classes
    scores = numpy.ndim(y_pred) == 2
    found = max(int(true.max(initial=-1)), int(predicted.max(initial=-1))) + 1
    return max(found, numpy.shape(y_pred)[1] if scores else 0, 1)


def _annotate(ax, matrix, fmt: str) -> None:
    """Each cell's value, white on dark cells and black on light ones."""
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in numpy.ndenumerate(matrix):
        colour = "white" if value > threshold else "black"
        ax.text(j, i, format(value, fmt), ha="center", va="center", color=colour, fontsize=8)
