"""A grid of images, each titled with its class; wrong predictions stand out in red.

Looking at the data comes before training on it, and looking at the mistakes comes
after: a "mistake" is often a hard or mislabelled image.
"""

from __future__ import annotations

import numpy

from .checks import as_numpy, class_indices, class_label
from .grid import tile_grid

WRONG = "tab:red"


def show_images(
    x, labels=None, predictions=None, class_names=None, ncols=None, max_images=64, scores=None
):
    """Images in a grid, titled ``true``, or ``predicted`` and ``(true)`` below it.

    Args:
        x: images ``(N, H, W, C)`` with C = 1 (grey) or 3 (RGB), or ``(N, H, W)``.
        labels: true class indices ``(N,)`` (or one-hot / scores: argmax).
        predictions: predicted class indices ``(N,)``, or scores ``(N, classes)``.
            A wrong prediction gets a red title and a red frame.
        class_names: names to show instead of indices.
        ncols: tiles per row (about a square grid by default).
        max_images: at most this many of the first images are shown.
        scores: optional ``(N,)`` numbers shown after the title (a probability, say).

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"images"`` (what each tile shows),
        ``"labels"``, ``"predictions"``, ``"wrong"`` (a boolean per image) and ``"titles"``.
    """
    every = _as_images(x)
    images = every[:max_images]
    n = len(images)
    if n == 0:
        raise ValueError("show_images: there are no images to show.")
    labels = _per_image(labels, n, "labels", len(every))
    predictions = _per_image(predictions, n, "predictions", len(every))
    _check_names(class_names, labels, predictions)
    scores = None if scores is None else as_numpy(scores, "show_images: scores")[:n]
    wrong = (
        predictions != labels
        if labels is not None and predictions is not None
        else numpy.zeros(n, dtype=bool)
    )
    # one grey scale for all (0 to 1 for images scaled so), so tiles compare directly
    low, high = (
        (0.0, 1.0) if images.min() >= 0 and images.max() <= 1 else (images.min(), images.max())
    )

    fig, axes = tile_grid(n, ncols, tile_inches=1.3, extra_height=0.3)
    titles = []
    for k, ax in enumerate(axes):
        if images.shape[-1] == 1:
            ax.imshow(images[k, ..., 0], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        else:  # RGB, brought into [0, 1] by the same scale
            ax.imshow((images[k] - low) / (high - low or 1), interpolation="nearest")
        title = _title(k, labels, predictions, class_names, scores)
        titles.append(title)
        ax.set_title(title, fontsize=8, color=WRONG if wrong[k] else "black")
        if wrong[k]:
            for spine in ax.spines.values():
                spine.set_color(WRONG)
                spine.set_linewidth(2.5)
    if n < len(every):  # say so: a grid of 64 must not pass for the whole set
        fig.suptitle(f"the first {n} of {len(every)} images (max_images={max_images})", fontsize=9)
    fig.tinycnn_data = {
        "images": images,
        "labels": labels,
        "predictions": predictions,
        "wrong": wrong,
        "titles": titles,
    }
    return fig


def _as_images(x) -> numpy.ndarray:
    images = as_numpy(x, "show_images: x")
    if images.ndim == 3 and images.shape[-1] in (1, 3) and images.shape[-2] > 3:
        # (H, W, 1) or (H, W, 3) is one image, not H images one or three pixels wide
        raise ValueError(
            f"show_images: got shape {images.shape}, which looks like one image (H, W, C); "
            "show_images takes a batch (N, H, W, C): pass x[None]."
        )
    if images.ndim == 3:  # (N, H, W): grey images without a channel axis
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "show_images: expected images (N, H, W, C) with C = 1 or 3, or (N, H, W), got "
            f"shape {images.shape}. For one image, pass x[None]."
        )
    return images


def _per_image(values, n: int, what: str, total: int):
    if values is None:
        return None
    indices = class_indices(values, f"show_images: {what}")
    if len(indices) != total:
        raise ValueError(f"show_images: {what} has {len(indices)} entries for {total} images.")
    return indices[:n]


def _check_names(class_names, labels, predictions) -> None:
    """Every class shown must have a name: a short list would silently print indices."""
    if class_names is None:
        return
    shown = [v for v in (labels, predictions) if v is not None and len(v)]
    largest = max((int(v.max()) for v in shown), default=-1)
    if largest >= len(class_names):
        raise ValueError(
            f"show_images: class {largest} appears but only {len(class_names)} class_names "
            f"were given; pass one name per class (class_names[k] is class k's name)."
        )


def _title(k, labels, predictions, class_names, scores) -> str:
    """``true``, or ``predicted`` when right, or ``predicted`` over ``(true)`` when wrong
    (two lines: class names are long), and the score if given."""
    if predictions is None:
        title = class_label(labels[k], class_names) if labels is not None else ""
    elif labels is None or predictions[k] == labels[k]:
        title = class_label(predictions[k], class_names)
    else:
        title = (
            f"{class_label(predictions[k], class_names)}\n({class_label(labels[k], class_names)})"
        )
    if scores is not None:
        title += f" {scores[k]:.2f}"
    return title
