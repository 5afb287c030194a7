"""Precision and state: what a check changes, and how it puts it back.

Everything runs in float64: a float32 layer or model is checked as a float64 copy
(:func:`_to_float64`) and the original is left untouched; the input is copied too.
Dropout draws one fixed mask (:class:`_FixedDropoutMasks`), and the weights a layer
updates itself (``non_trainable``: BatchNormalization's moving averages) are put back
after every forward pass (:class:`_KeptNonTrainable`): each evaluation sees the same
function, and the layer or model ends the check as it began, bit for bit.
"""

from __future__ import annotations

import contextlib

import numpy

from .. import backend
from ..layers import Dropout


def _needs_float64_copy(layers, built: bool) -> bool:
    if not built:
        return backend.floatx() != "float64"
    return any(
        (layer.built and layer.dtype != "float64")
        or any(p.dtype != numpy.float64 for p in layer.params.values())
        for layer in layers
    )


def _to_float64(layers) -> None:
    """Cast the parameters of (copied) layers to float64, in place of the originals."""
    for layer in layers:
        layer.params = {k: p.astype(numpy.float64) for k, p in layer.params.items()}
        layer.grads = {k: None for k in layer.params}
        layer.cache = None
        if layer.built:
            layer.dtype = "float64"


def _float64_input(x, notes: list, what: str = "x"):
    """A float64 copy of x (the caller's array is never perturbed)."""
    if x.dtype.kind == "f" and x.dtype != numpy.float64:
        notes.append(f"{what} ({x.dtype}) cast to float64")
        return x.astype(numpy.float64)
    return x.copy()


class _FixedDropoutMasks:
    """Within ``with``: each Dropout draws one mask from a fixed key on every call (as
    ``fit`` does for one step), so that all evaluations see one function of x."""

    def __init__(self, layers, seed: int, training: bool, notes: list):
        self.layers = [(k, layer) for k, layer in enumerate(layers) if isinstance(layer, Dropout)]
        self.seed, self.saved = seed, []
        if training and self.layers:
            notes.append("Dropout: one fixed mask for every evaluation (training=True)")

    def __enter__(self):
        self.saved = [layer.noise_key for _, layer in self.layers]
        for k, layer in self.layers:
            layer.noise_key = (self.seed, 0, 0, k)

    def __exit__(self, *exc):
        for (_, layer), key in zip(self.layers, self.saved, strict=True):
            layer.noise_key = key


class _KeptNonTrainable:
    """The weights the layers update themselves (``non_trainable``: BatchNormalization's
    moving averages, which every forward with ``training=True`` moves): ``restore()``
    after each forward pass puts them back, so every evaluation sees the same values
    (plus the step of the one being measured, which the next ``move`` sets again), and
    leaving ``with`` puts them back for good: the caller's layer is unchanged."""

    def __init__(self, layers):
        self.kept = [
            (layer, key, layer.params[key], layer.params[key].copy())
            for layer in layers
            for key in sorted(layer.non_trainable)
            if key in layer.params
        ]

    def restore(self) -> None:
        for layer, key, array, saved in self.kept:
            array[...] = saved  # in place: the check perturbs this very array
            layer.params[key] = array  # in case a forward replaced it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()


def _one_blas_thread():
    """A check runs thousands of forward passes on a few samples, where BLAS's threads
    cost more than they bring (a 2 x 1600 by 1600 x 512 product: 0.3 ms on one thread,
    up to 14 ms on two busy cores). Without threadpoolctl, nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
