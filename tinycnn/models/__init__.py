"""Models: the Sequential container and ready-made networks."""

from .sequential import Sequential
from .zoo import fashion_mnist_cnn

__all__ = ["Sequential", "fashion_mnist_cnn"]
