"""Saliency: which pixels does the class score depend on?

Three answers, one picture (the image, the map, the map over the image):

* ``"gradient"``: d(score of the class)/d(pixel) from tinycnn's own backward pass
  (``model.input_gradient``; Simonyan et al., 2013), summed over the channels (the
  effect of brightening the pixel). Signed: red pixels raise the score when made
  brighter, blue ones lower it. Sharp but noisy.
* ``"gradcam"``: Grad-CAM on the last convolution (``gradcam.py``): coarse, but it
  picks out the regions that matter for this class.
* ``"occlusion"``: the drop in the class probability when a grey square hides each
  region (``occlusion.py``): forward passes only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy

from .checks import check_class, class_label, one_class, one_image, probabilities
from .gradcam import gradcam_map, target_layer
from .grid import hide_ticks, symmetric_limit
from .occlusion import occlusion_map

METHODS = ("gradient", "gradcam", "occlusion")


def saliency_map(model, image, label, method="gradient", **options) -> numpy.ndarray:
    """The saliency map ``(h, w)`` of class ``label`` for one image.

    ``"gradient"`` and ``"occlusion"`` maps have the image's size, ``"gradcam"`` the
    size of the layer it looks at. ``options`` go to :func:`gradcam_map` (``layer``)
    or :func:`occlusion_map` (``patch``, ``stride``, ``fill``).
    """
    if method not in METHODS:
        raise ValueError(f"saliency_map: method must be one of {METHODS}, got {method!r}.")
    if method == "gradcam":
        return gradcam_map(model, image, label, **options)
    if method == "occlusion":
        return occlusion_map(model, image, label, **options)
    if options:
        raise TypeError(f"saliency_map: method 'gradient' takes no options, got {sorted(options)}.")
    x = one_image(model, image, "saliency_map")
    klass = one_class(label, "saliency_map")
    check_class(klass, model, "saliency_map")
    return model.input_gradient(x, klass)[0].astype(numpy.float64).sum(axis=-1)


def show_saliency(model, image, label, method="gradient", class_names=None, **options):
    """The image, its saliency map for class ``label`` and the map over the image.

    Args:
        model, image, label, method, options: as :func:`saliency_map`; ``label`` a
            class index or one image's scores (argmax).
        class_names: names to show instead of indices.

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"map"``, ``"method"``, ``"label"``,
        ``"probabilities"`` (the model's, for the image) and, for Grad-CAM, ``"layer"``.
    """
    if method not in METHODS:
        raise ValueError(f"show_saliency: method must be one of {METHODS}, got {method!r}.")
    x = one_image(model, image, "show_saliency")
    klass = one_class(label, "show_saliency")
    check_class(klass, model, "show_saliency")
    values = saliency_map(model, x, klass, method, **options)
    probs = probabilities(model, x)[0]
    if class_names is not None and len(class_names) != len(probs):
        raise ValueError(
            f"show_saliency: {len(class_names)} class_names for a model with {len(probs)} "
            "classes; pass one name per class."
        )
    name = class_label(klass, class_names)
    predicted = int(probs.argmax())

    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.6), layout="constrained")
    for ax in axes:
        hide_ticks(ax)
    picture = _displayable(x[0])
    height, width = picture.shape[:2]
    axes[0].imshow(picture, cmap="gray", interpolation="nearest")
    axes[0].set_title(
        f"predicted {class_label(predicted, class_names)} ({probs[predicted]:.2f})\n"
        f"explaining {name} ({probs[klass]:.2f})",
        fontsize=9,
    )
    # the map covers the image exactly, whatever its size (Grad-CAM's is coarser)
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    layer_name = (
        model.layers[target_layer(model, options.get("layer"))].name
        if method == "gradcam"
        else None
    )
    style, title = _map_style(method, values, name, layer_name)
    shown = axes[1].imshow(values, interpolation="nearest", extent=extent, **style)
    axes[1].set_title(title, fontsize=9)
    fig.colorbar(shown, ax=axes[1], shrink=0.8)
    axes[2].imshow(picture, cmap="gray", interpolation="nearest")
    axes[2].imshow(values, interpolation="nearest", extent=extent, alpha=0.55, **style)
    axes[2].set_title("the map over the image", fontsize=9)
    data = {"map": values, "method": method, "label": klass, "probabilities": probs}
    if method == "gradcam":
        data["layer"] = layer_name
    fig.tinycnn_data = data
    return fig


def _map_style(method: str, values, name: str, layer_name):
    """imshow's colours for a map, and its title: Grad-CAM's map is >= 0 (sequential,
    0 to its max); the gradient and the drop are signed (diverging, symmetric)."""
    size = f"{values.shape[0]}x{values.shape[1]}"
    if method == "gradcam":
        style = {"cmap": "viridis", "vmin": 0.0, "vmax": float(values.max()) or 1.0}
        return style, f"Grad-CAM of {name} at {layer_name}\n({size}, 0 to max)"
    limit = symmetric_limit(values)
    style = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    what = (
        f"d score({name}) / d pixel" if method == "gradient" else f"drop in p({name}) when hidden"
    )
    return style, f"{what}\n({size}, symmetric scale)"


def _displayable(image: numpy.ndarray) -> numpy.ndarray:
    """One image (H, W, C) as imshow takes it: (H, W) grey, or RGB scaled into [0, 1]."""
    if image.shape[-1] == 1:
        return image[..., 0]
    if image.shape[-1] == 3:
        low, high = image.min(), image.max()
        return (image - low) / (high - low or 1)
    return image.mean(axis=-1)  # other channel counts: their mean, in grey
