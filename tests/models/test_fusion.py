"""models/fusion.py: which Conv2D + MaxPooling2D pairs fuse, and that fusing never
changes a model's outputs or gradients (against the reference kernels, never fused)."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import kernels
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tinycnn.models.fusion import ConvReluPool, plan

pytest.importorskip("tinycnn.kernels.cpu_conv", reason="numba or threadpoolctl is not installed")

RELU = {"activation": "relu"}
# (Conv2D kwargs, MaxPooling2D kwargs, fuses?)
PAIRS = {
    "relu, valid, pool 2": (RELU, {"pool_size": 2}, True),
    "non-square pool (2, 3)": (RELU, {"pool_size": (2, 3)}, True),
    "pool 3, no bias": ({**RELU, "use_bias": False}, {"pool_size": 3}, True),
    # each breaks one condition of ConvReluPool.applies: fusing would compute another thing
    "no activation": ({}, {"pool_size": 2}, False),
    "linear activation": ({"activation": "linear"}, {"pool_size": 2}, False),
    "conv padding same": ({**RELU, "padding": "same"}, {"pool_size": 2}, False),
    "conv stride 2": ({**RELU, "strides": 2}, {"pool_size": 2}, False),
    "pool stride 1": (RELU, {"pool_size": 2, "strides": 1}, False),
    "pool stride (2, 1)": (RELU, {"pool_size": 2, "strides": (2, 1)}, False),
    "pool stride 3 > pool 2": (RELU, {"pool_size": 2, "strides": 3}, False),
    "pool padding same": (RELU, {"pool_size": 2, "padding": "same"}, False),
}


def pair_model(conv_kwargs, pool_kwargs, seed=0):
    """Conv2D(4, 3) + MaxPooling2D, then Flatten + Dense(3), on 12x11x2 images."""
    model = tinycnn.Sequential(
        [
            Conv2D(4, 3, input_shape=(12, 11, 2), **conv_kwargs),
            MaxPooling2D(**pool_kwargs),
            Flatten(),
            Dense(3),
        ],
        seed=seed,
    )
    model.build((12, 11, 2))
    bias = model.layers[0].params.get("bias")
    if bias is not None:  # some negative outputs for the ReLU to cut, some positive
        bias[...] = np.linspace(-0.5, 0.5, bias.size)
    return model


def run(model, x, dlogits, fast: bool):
    """logits, dx and every gradient of one forward/backward, on one kernel path."""
    with kernels.use_fast_kernels(fast):
        logits = model.forward(x, training=True)
        steps = [type(s).__name__ for s in model._steps]
        dx = model.backward(dlogits)
    grads = [g.copy() for layer in model.layers for g in layer.grads.values()]
    return steps, [logits.copy(), dx.copy(), *grads]


@pytest.mark.parametrize("name", list(PAIRS))
def test_fuses_exactly_the_pairs_it_can_and_changes_no_number(name, float64):
    conv_kwargs, pool_kwargs, fuses = PAIRS[name]
    model = pair_model(conv_kwargs, pool_kwargs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 12, 11, 2))
    dlogits = rng.standard_normal((3, 3))

    steps = plan(model.layers, x)
    assert isinstance(steps[0], ConvReluPool) is fuses
    assert len(steps) == (3 if fuses else 4)
    fast_steps, fast = run(model, x, dlogits, fast=True)
    ref_steps, ref = run(model, x, dlogits, fast=False)
    assert fast_steps[0] == ("ConvReluPool" if fuses else "Conv2D")
    assert ref_steps == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]  # never fused
    for got, want in zip(fast, ref, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_an_unbuilt_or_foreign_pair_does_not_fuse():
    conv, pool = Conv2D(4, 3, activation="relu"), MaxPooling2D(2)
    x = np.zeros((1, 8, 8, 2), dtype=np.float32)
    assert not ConvReluPool.applies(conv, pool, x)  # not built: no kernel yet
    conv.build((8, 8, 2), rng=0)
    assert ConvReluPool.applies(conv, pool, x)
    assert not ConvReluPool.applies(pool, conv, x)
    assert not ConvReluPool.applies(conv, Flatten(), x)
    with kernels.use_fast_kernels(False):
        assert not ConvReluPool.applies(conv, pool, x)
