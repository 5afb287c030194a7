"""Models: the Sequential container, ready-made networks, and load_model (as Keras'
``keras.models.load_model``)."""

from .loading import load_model
from .sequential import Sequential
from .zoo import fashion_mnist_cnn

__all__ = ["Sequential", "fashion_mnist_cnn", "load_model"]
