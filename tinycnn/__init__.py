"""tinycnn: a small, readable, fast convolutional-network library on NumPy and CuPy.

import tinycnn
model = tinycnn.models.fashion_mnist_cnn(seed=0)
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
history = model.fit(x_train, y_train, epochs=10, batch_size=64, validation_split=0.1)
"""

import os

# OpenBLAS (NumPy's matrix multiply) keeps its worker threads spinning for about
# 2**28 cycles after each multiply, waiting for the next one. tinycnn alternates
# matrix multiplies with its own compiled kernels, whose threads then fight the
# spinning ones for the same cores: letting OpenBLAS's workers sleep after ~2**10
# cycles makes a training step markedly faster (docs/performance.md).
# OpenBLAS reads this once, when NumPy is first imported: import tinycnn before
# NumPy, or set the variable yourself. A value already set is left alone. This is
# the one place that sets it: the example and the benchmarks import tinycnn first.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "10")

from . import (  # noqa: E402
    backend,
    callbacks,
    datasets,
    initializers,
    kernels,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    training,
)
from .backend import (  # noqa: E402
    floatx,
    get_backend,
    set_backend,
    set_floatx,
    to_backend,
    to_numpy,
    use_backend,
    use_floatx,
)
from .gradient_check import gradcheck  # noqa: E402
from .layers.activations import softmax  # noqa: E402
from .models import Sequential, load_model  # noqa: E402

__version__ = "0.1.0"

# Keras weight files need h5py (the extra "keras"): tinycnn.keras_weights is imported on
# the first use of one of these names, so that `import tinycnn` never imports h5py.
_KERAS_WEIGHTS = ("load_keras_weights", "save_keras_weights")


def __getattr__(name):
    if name in _KERAS_WEIGHTS:
        from . import keras_weights

        return getattr(keras_weights, name)
    raise AttributeError(f"module 'tinycnn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_KERAS_WEIGHTS])


__all__ = [
    "Sequential",
    "callbacks",
    "datasets",
    "load_keras_weights",
    "load_model",
    "metrics",
    "save_keras_weights",
    "preprocessing",
    "training",
    "backend",
    "floatx",
    "get_backend",
    "gradcheck",
    "initializers",
    "kernels",
    "layers",
    "losses",
    "models",
    "optimizers",
    "set_backend",
    "set_floatx",
    "softmax",
    "to_backend",
    "to_numpy",
    "use_backend",
    "use_floatx",
]
