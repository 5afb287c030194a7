"""A grid of small square tiles without ticks: the layout of image, filter and
feature-map pictures."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy


def tile_grid(
    count: int, ncols: int | None = None, tile_inches: float = 1.0, extra_height=0.5, min_width=0.0
):
    """A figure with ``count`` tiles in rows of ``ncols`` (about a square by default);
    returns ``(fig, axes)``, ``axes`` a flat list of the ``count`` used ones (the rest
    are switched off); ``min_width`` (inches) leaves room for a long title."""
    if ncols is None and count * tile_inches <= min_width:
        ncols = count  # few tiles: one row, as wide as the title anyway
    ncols = ncols or max(1, math.ceil(math.sqrt(count)))
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(ncols * tile_inches + 0.2, min_width), nrows * tile_inches + extra_height),
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.axis("off")
    for ax in flat[:count]:
        hide_ticks(ax)
    return fig, flat[:count]


def hide_ticks(ax) -> None:
    """No ticks or tick labels (pixels need no axis), but keep the frame (it can be
    coloured, as show_images marks a wrong prediction)."""
    ax.set_xticks([])
    ax.set_yticks([])


def symmetric_limit(values) -> float:
    """The largest ``|value|`` (1 if all are 0): a diverging colormap from ``-limit`` to
    ``+limit`` puts 0 at its middle colour."""
    limit = float(numpy.abs(values).max()) if numpy.size(values) else 0.0
    return limit if limit > 0 and math.isfinite(limit) else 1.0
