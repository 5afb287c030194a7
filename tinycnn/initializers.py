"""Weight initializers with the Keras defaults: Glorot-uniform kernels, zero biases
(and ones, for a scale such as BatchNormalization's gamma).

Random numbers are drawn on the host with NumPy's ``Generator`` and then moved to
the active backend, so the same seed gives the same weights on NumPy and on CuPy.
"""

from __future__ import annotations

import math

import numpy

from . import backend


def make_rng(seed=None) -> numpy.random.Generator:
    """A host random generator; ``seed=None`` draws fresh entropy."""
    if isinstance(seed, numpy.random.Generator):
        return seed
    return numpy.random.default_rng(seed)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them.

    Dense kernel ``(in, out)``: fan_in = in, fan_out = out.
    Conv kernel ``(kh, kw, c_in, c_out)``: each output sees kh*kw*c_in inputs, so
    fan_in = kh*kw*c_in and fan_out = kh*kw*c_out.
    """
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def glorot_uniform(shape, rng, dtype):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = fans(tuple(shape))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    host = rng.uniform(-limit, limit, size=shape)
    return backend.to_backend(host.astype(dtype))


def zeros(shape, rng, dtype):
    """All zeros (the Keras default for biases)."""
    return backend.xp().zeros(shape, dtype=dtype)


def ones(shape, rng, dtype):
    """All ones (the Keras default for a scale, as BatchNormalization's gamma)."""
    return backend.xp().ones(shape, dtype=dtype)


_BY_NAME = {"glorot_uniform": glorot_uniform, "zeros": zeros, "ones": ones}


def names() -> list[str]:
    """The names :func:`get` knows, sorted."""
    return sorted(_BY_NAME)


def get(initializer):
    """Look an initializer up by name, or pass a callable ``(shape, rng, dtype)`` through."""
    if callable(initializer):
        return initializer
    try:
        return _BY_NAME[initializer]
    except KeyError:
        raise ValueError(
            f"Unknown initializer {initializer!r}: expected one of {names()} "
            "or a callable (shape, rng, dtype) -> array."
        ) from None
