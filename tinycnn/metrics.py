"""Classification metrics on NumPy arrays: accuracy, confusion matrix, per-class tables."""

from __future__ import annotations

import numpy


def confusion_matrix(y_true, y_pred, num_classes: int) -> numpy.ndarray:
    """``cm[i, j]`` = number of samples of true class i predicted as class j; ``(C, C)``."""
    y_true, y_pred = numpy.asarray(y_true), numpy.asarray(y_pred)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.dtype.kind not in "iu":
            raise TypeError(
                f"confusion_matrix: {name} must hold integer class labels, got {labels.dtype}."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} must lie in [0, {num_classes - 1}], got values "
                f"from {labels.min()} to {labels.max()}."
            )
    # int64 before the arithmetic below: true * C + predicted overflows uint8 labels
    # from 17 classes on (16 * 17 + 16 = 288 > 255, uint8's largest value)
    y_true, y_pred = y_true.astype(numpy.int64), y_pred.astype(numpy.int64)
    cm = numpy.zeros((num_classes, num_classes), dtype=numpy.int64)
    # each (true, predicted) pair is a flat index true * C + predicted; count them all at once
    flat = numpy.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    cm += flat.reshape(num_classes, num_classes)
    return cm


def per_class_accuracy(cm: numpy.ndarray) -> numpy.ndarray:
    """Fraction of each true class predicted correctly (the diagonal over the row sums)."""
    totals = cm.sum(axis=1)
    return numpy.divide(numpy.diag(cm), totals, out=numpy.zeros(len(cm)), where=totals > 0)


def format_per_class(cm: numpy.ndarray, class_names) -> str:
    """A text table: class, correct / total, accuracy."""
    acc = per_class_accuracy(cm)
    width = max(len("class"), *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  correct / total  accuracy"]
    for k, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  {cm[k, k]:>7} / {cm[k].sum():<5}  {acc[k]:8.2%}")
    return "\n".join(lines)


def format_confusion_matrix(cm: numpy.ndarray, class_names) -> str:
    """The confusion matrix as text: rows are true classes, columns predictions."""
    short = [name[:7] for name in class_names]
    width = max(max(len(n) for n in class_names), len("true \\ pred"))
    cell = max(7, len(str(cm.max())))
    corner = "true \\ pred"
    lines = [f"{corner:<{width}} " + " ".join(f"{s:>{cell}}" for s in short)]
    for k, name in enumerate(class_names):
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>{cell}}" for v in cm[k]))
    return "\n".join(lines)
