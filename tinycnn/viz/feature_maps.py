"""Feature maps: what each channel of a layer's output looks like for one image.

A convolution's output channel k is a map of where filter k found its pattern; after
pooling it is the same map at half the size. Early layers keep the image's shape
(edges, regions); deeper ones are coarser and more abstract. The values come from
``model.activations`` (inference mode, layer by layer), one colour scale per layer so
that the channels of a layer compare: a sequential colormap (viridis) for outputs
that are >= 0 (after ReLU), a diverging one symmetric around 0 (RdBu_r, white at 0)
when the layer's output has negative values (a convolution without activation, a
BatchNormalization), so that 0 never looks like "a little".
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..layers import Conv2D
from ..layers.pooling import Pooling2D
from .checks import find_layer, one_image
from .grid import hide_ticks, symmetric_limit, tile_grid


def show_feature_maps(model, image, layer=None, max_channels=None, ncols=None):
    """The channels of one layer's output for one image, or of every conv/pool layer's.

    Args:
        model: a ``Sequential``.
        image: one image ``(H, W, C)`` or a batch of one ``(1, H, W, C)``.
        layer: a name, an index into ``model.layers`` or the layer itself: all its
            channels in a grid. ``None``: every Conv2D and pooling layer, one row each
            with its first ``max_channels`` channels (16 unless given).
        max_channels: at most this many channels per layer.
        ncols: tiles per row, for one layer.

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"maps"`` ``{layer name: (H', W', C')}``
        (all channels, as computed) and ``"layers"`` (the names drawn, in order).
    """
    x = one_image(model, image, "show_feature_maps")
    outputs = model.activations(x)
    if layer is not None:
        index = find_layer(model, layer, "show_feature_maps")
        chosen = [model.layers[index]]
        if outputs[chosen[0].name].ndim != 4:
            spatial = _spatial_names(model, outputs)
            choose = (
                f"choose a layer with feature maps: {spatial}"
                if spatial
                else "this model has no layer with feature maps"
            )
            raise ValueError(
                f"show_feature_maps: layer {chosen[0].name!r} outputs shape "
                f"{outputs[chosen[0].name].shape[1:]}, a vector, not feature maps (H, W, C); "
                f"{choose}. A vector's values are model.activations(x)[{chosen[0].name!r}]."
            )
    else:
        chosen = [
            each
            for each in model.layers
            if isinstance(each, (Conv2D, Pooling2D)) and outputs[each.name].ndim == 4
        ]
        if not chosen:
            spatial = _spatial_names(model, outputs)
            raise ValueError(
                "show_feature_maps: the model has no Conv2D or pooling layer; "
                + (
                    f"pass layer= one of {spatial}."
                    if spatial
                    else "no layer outputs feature maps (H, W, C), so there is nothing to draw."
                )
            )
    maps = {each.name: outputs[each.name][0] for each in chosen}
    if len(chosen) == 1:
        fig = _one_layer(chosen[0].name, maps[chosen[0].name], max_channels, ncols)
    else:
        fig = _every_layer(maps, max_channels or 16)
    fig.tinycnn_data = {"maps": maps, "layers": list(maps)}
    return fig


def _one_layer(name, maps, max_channels, ncols):
    """All channels of one layer in a grid, on one colour scale."""
    shown = maps[..., :max_channels] if max_channels else maps
    fig, axes = tile_grid(shown.shape[-1], ncols, tile_inches=0.9, extra_height=0.6, min_width=4.5)
    style, scale = _style(maps)
    for k, ax in enumerate(axes):
        image = ax.imshow(shown[..., k], interpolation="nearest", **style)
        ax.set_title(str(k), fontsize=6, pad=2)
    fig.colorbar(image, ax=axes, shrink=0.6)
    fig.suptitle(
        f"{name}: {shown.shape[-1]} of {maps.shape[-1]} channels, {maps.shape[0]}x{maps.shape[1]}"
        f" (one {scale} scale for the layer)",
        fontsize=9,
    )
    return fig


def _every_layer(maps: dict, max_channels: int):
    """One row per layer: its first channels, each row on its own colour scale."""
    columns = min(max_channels, max(m.shape[-1] for m in maps.values()))
    fig, axes = plt.subplots(
        len(maps),
        columns,
        figsize=(0.9 * columns + 1.5, 1.0 * len(maps) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for row, (name, layer_maps) in zip(axes, maps.items(), strict=True):
        style, _ = _style(layer_maps)
        for k, ax in enumerate(row):
            hide_ticks(ax)
            if k >= layer_maps.shape[-1]:
                ax.axis("off")
                continue
            image = ax.imshow(layer_maps[..., k], interpolation="nearest", **style)
        h, w, c = layer_maps.shape
        row[0].set_ylabel(f"{name}\n{h}x{w}x{c}", fontsize=7)
        fig.colorbar(image, ax=list(row), shrink=0.8, pad=0.01)
    fig.suptitle(
        f"feature maps: the first {columns} channels of each layer (one scale per row; "
        "signed rows: blue < 0 < red)",
        fontsize=9,
    )
    return fig


def _style(maps):
    """imshow's colours for one layer's maps, and a word for the title: viridis from
    min to max when no value is negative, else RdBu_r symmetric around 0."""
    low, high = float(maps.min()), float(maps.max())
    if low >= 0:
        return {"cmap": "viridis", "vmin": low, "vmax": high}, "sequential"
    limit = symmetric_limit(maps)
    return {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}, "symmetric diverging"


def _spatial_names(model, outputs) -> list:
    return [each.name for each in model.layers if outputs[each.name].ndim == 4]
