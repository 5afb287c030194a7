"""Datasets: a reader for the IDX file format and the Fashion-MNIST loader.

Example::

    from tinycnn.datasets import fashion_mnist

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
"""

from . import fashion_mnist, idx

__all__ = ["fashion_mnist", "idx"]
