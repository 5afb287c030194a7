"""A Conv2D layer's kernels as pictures: what pattern each filter responds to.

The kernel is ``(kh, kw, C, F)``: F filters, each ``kh x kw`` over C input channels.
A tile shows one filter: its single channel for a first layer on grey images (signed
weights: blue negative, red positive, white 0); its three channels as a colour for a
first layer on RGB images (each weight mapped to 0.5 + w / (2 limit): grey is 0, a
red tint means the filter likes red there, cyan that it dislikes red, and so on); and
for any other channel count the channels' mean (a deeper filter's mean over the
previous layer's channels: a rough summary) on the blue-white-red scale. On the
shared scale a faint tile is a weak filter; on a per-tile scale each tile's own
pattern is easiest to see.
"""

from __future__ import annotations

from ..layers import Conv2D
from .checks import as_numpy
from .grid import symmetric_limit, tile_grid

SCALES = ("shared", "per tile")


def show_filters(layer, scale="shared", ncols=None, max_filters=None):
    """A grid of the kernels of a Conv2D layer, one tile per filter.

    Args:
        layer: a built ``Conv2D`` layer, e.g. ``model.layers[0]``.
        scale: ``"shared"`` (one symmetric colour scale for all tiles, the default) or
            ``"per tile"`` (each tile from ``-max|w|`` to ``+max|w|`` of its own).
        ncols: tiles per row; ``max_filters``: show only the first filters.

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"tiles"`` ``(F, kh, kw)`` (what each tile
        shows; ``(F, kh, kw, 3)``, the weights themselves, for 3 input channels),
        ``"limits"`` ``(F,)`` (each tile's colour scale: ``vmin = -limit``, or the weight
        drawn as 0 or 1 for RGB) and ``"scale"``.
    """
    if not isinstance(layer, Conv2D):
        raise TypeError(
            f"show_filters: expected a Conv2D layer (its kernel is (kh, kw, C, F)), got "
            f"{layer!r}; pass one of model.layers that is a Conv2D."
        )
    if not layer.built:
        raise ValueError(
            f"show_filters: {layer.name or 'the layer'} is not built yet and has no weights; "
            "build the model first (give input_shape, or run it on a batch)."
        )
    if scale not in SCALES:
        raise ValueError(f"show_filters: scale must be one of {SCALES}, got {scale!r}.")
    kernel = as_numpy(layer.params["kernel"], "show_filters")  # (kh, kw, C, F)
    channels = kernel.shape[2]
    rgb = channels == 3  # a first layer on colour images: draw the filter in colour
    if rgb:
        tiles = kernel.transpose(3, 0, 1, 2)  # (F, kh, kw, 3)
    else:
        tiles = kernel.mean(axis=2).transpose(2, 0, 1)  # (F, kh, kw); C = 1: the channel
    if max_filters is not None:
        tiles = tiles[:max_filters]
    if scale == "shared":
        limits = [symmetric_limit(tiles)] * len(tiles)
    else:
        limits = [symmetric_limit(tile) for tile in tiles]

    fig, axes = tile_grid(len(tiles), ncols, tile_inches=0.7, extra_height=0.6, min_width=4.5)
    for k, (ax, tile, limit) in enumerate(zip(axes, tiles, limits, strict=True)):
        if rgb:  # 0 -> grey 0.5, +-limit -> 1 or 0 in that colour channel
            ax.imshow(0.5 + tile / (2 * limit), interpolation="nearest")
        else:
            ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(str(k), fontsize=6, pad=2)
    if channels == 1:
        what, colours = "the single input channel", "blue < 0 < red"
    elif rgb:
        what, colours = "3 input channels as RGB", "grey = 0, colour = sign per channel"
    else:
        what, colours = f"mean of {channels} input channels", "blue < 0 < red"
    if scale == "shared":
        how = f"shared scale ±{limits[0]:.3g}"
    else:
        how = "per-tile scale (each tile: ±its max |w|)"
    fig.suptitle(
        f"{layer.name}: {len(tiles)} filters {kernel.shape[0]}x{kernel.shape[1]} ({what})\n"
        f"{colours}, {how}",
        fontsize=9,
    )
    fig.tinycnn_data = {"tiles": tiles, "limits": limits, "scale": scale}
    return fig
