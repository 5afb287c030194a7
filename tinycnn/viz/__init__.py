"""Pictures of what a network learns, drawn with matplotlib (the optional extra ``plot``).

    from tinycnn import viz
    viz.plot_history(history)                       # learning curves
    viz.plot_confusion_matrix(y_test, predicted, class_names)
    viz.show_images(x_test[:32], y_test[:32], predicted[:32], class_names)
    viz.show_filters(model.layers[0])               # the first layer's kernels
    viz.show_feature_maps(model, x_test[0])         # every conv/pool layer's output
    viz.show_saliency(model, x_test[0], 4, method="gradcam")

Every function takes tinycnn objects or arrays of either backend, works for any
``Sequential``, and returns the matplotlib ``Figure`` (made with pyplot, so Jupyter
shows it; ``plt.close(fig)`` in a script). The numbers behind each picture are in
``fig.tinycnn_data``, a dict, and the saliency maps come from functions of their own
(``saliency_map``, ``gradcam_map``, ``occlusion_map``).

Conventions: pixels are drawn as squares (nearest-neighbour interpolation); signed
values (weights, gradients) on a diverging colormap (``RdBu_r``, white at 0) with a
scale symmetric around 0; activations and other non-negative values on a sequential
one (``viridis``). Labels and predictions are class indices; a 2-D array of scores is
reduced with argmax.

``import tinycnn`` never imports matplotlib; ``import tinycnn.viz`` does.
"""

try:
    import matplotlib  # noqa: F401  (the check: is the extra installed?)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'tinycnn.viz draws with matplotlib, which is not installed: pip install "tinycnn[plot]"'
    ) from error

from .confusion import plot_confusion_matrix
from .feature_maps import show_feature_maps
from .filters import show_filters
from .gradcam import gradcam_map
from .history import plot_history
from .images import show_images
from .occlusion import occlusion_map
from .saliency import saliency_map, show_saliency

__all__ = [
    "gradcam_map",
    "occlusion_map",
    "plot_confusion_matrix",
    "plot_history",
    "saliency_map",
    "show_feature_maps",
    "show_filters",
    "show_images",
    "show_saliency",
]
