"""tinycnn: a small, readable, fast convolutional-network library on NumPy and CuPy.

import tinycnn
model = tinycnn.models.fashion_mnist_cnn(seed=0)
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
history = model.fit(x_train, y_train, epochs=10, batch_size=64, validation_split=0.1)
"""

from . import (
    backend,
    callbacks,
    initializers,
    kernels,
    layers,
    losses,
    models,
    optimizers,
    preprocessing,
    training,
)
from .backend import (
    floatx,
    get_backend,
    set_backend,
    set_floatx,
    to_backend,
    to_numpy,
    use_backend,
    use_floatx,
)
from .gradient_check import gradcheck
from .models import Sequential
from .saving import load_model

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "callbacks",
    "load_model",
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
    "to_backend",
    "to_numpy",
    "use_backend",
    "use_floatx",
]
