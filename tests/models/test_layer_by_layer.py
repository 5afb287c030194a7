"""Backpropagating layer by layer after ``model.forward``, as docs/how_it_works.md teaches,
gives the gradients of ``model.backward`` even where the fast path fused Conv2D(relu) +
MaxPooling2D (models/fusion.py); and no mix of model-level and layer-level calls can
backpropagate a stale cache: it raises instead (issue 12, item 4)."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import kernels
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tinycnn.models.fusion import ConvReluPool

pytest.importorskip("tinycnn.kernels.cpu_conv", reason="numba or threadpoolctl is not installed")


def seed_network_and_batch(n=3, seed=0):
    model = tinycnn.models.fashion_mnist_cnn(seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    dlogits = rng.standard_normal((n, 10)).astype(np.float32)
    return model, x, dlogits


def all_grads(model):
    return {f"{layer.name}/{k}": g.copy() for layer in model.layers for k, g in layer.grads.items()}


def test_layer_by_layer_backward_after_model_forward_equals_model_backward():
    model, x, dlogits = seed_network_and_batch()
    model.forward(x, training=True)
    assert [type(s).__name__ for s in model._steps][:2] == ["ConvReluPool", "ConvReluPool"]
    dx_model = model.backward(dlogits)
    expected = all_grads(model)

    model.forward(x, training=True)
    g = dlogits
    for layer in reversed(model.layers):  # what how_it_works.md teaches
        g = layer.backward(g)

    np.testing.assert_array_equal(g, dx_model)  # bit for bit: the same fused backward
    got = all_grads(model)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_each_layer_hands_on_the_gradient_of_its_own_input(float64):
    """pool.backward returns dL/d(conv output), as the unfused layer does; conv.backward
    then returns dL/dx; both as the reference kernels compute them, never fused."""
    model, x, dlogits = seed_network_and_batch()
    model.build((28, 28, 1))
    x, dlogits = x.astype(np.float64), dlogits.astype(np.float64)

    def layer_by_layer(forward):
        forward()
        g, grads_in = dlogits, []
        for layer in reversed(model.layers):
            g = layer.backward(g)
            grads_in.append(np.array(g))
        return grads_in, all_grads(model)

    fused = layer_by_layer(lambda: model.forward(x, training=True))
    with kernels.use_fast_kernels(False):
        reference = layer_by_layer(lambda: model.forward(x, training=True))
    for got, want in zip(fused[0], reference[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for key, want in reference[1].items():
        np.testing.assert_allclose(fused[1][key], want, rtol=1e-10, atol=1e-12, err_msg=key)


def test_conv_backward_of_another_gradient_after_a_fused_forward(float64):
    """A gradient that is not the pooling layer's (a feature map's, say) goes through the
    convolution's own backward: the numbers of a convolution run on its own."""
    model, x, _ = seed_network_and_batch()
    model.build((28, 28, 1))
    x = x.astype(np.float64)
    conv = model.layers[0]
    g = np.random.default_rng(5).standard_normal((3, 26, 26, 64))
    model.forward(x, training=True)
    dx = conv.backward(g)
    fused_grads = {k: v.copy() for k, v in conv.grads.items()}
    conv.forward(x, training=True)  # on its own: never fused
    np.testing.assert_allclose(dx, conv.backward(g), rtol=1e-10, atol=1e-12)
    for key, want in conv.grads.items():
        np.testing.assert_allclose(fused_grads[key], want, rtol=1e-10, atol=1e-12)


def test_the_gradient_pool_backward_hands_on_cannot_be_changed_in_place():
    model, x, dlogits = seed_network_and_batch()
    model.forward(x, training=True)
    dx = model.backward(dlogits)
    model.forward(x, training=True)
    g = dlogits
    for layer in reversed(model.layers[3:]):  # down to the second MaxPooling2D
        g = layer.backward(g)
    with pytest.raises(ValueError, match="read-only"):
        g *= 2  # conv.backward would run the fused backward on the unchanged gradient
    for layer in reversed(model.layers[:3]):
        g = layer.backward(g)
    np.testing.assert_array_equal(g, dx)


@pytest.mark.parametrize("layer_index", [None, 0, 1, 3, 6])
def test_model_backward_refuses_caches_of_another_pass(layer_index):
    """After model.forward(x), one layer (or, for None, every layer) runs on its own on
    other data; model.backward then raises, naming the first layer whose cache is not
    the forward's. None is the mix that once gave 60-90% wrong conv gradients, silently;
    0, 1 and 3 are layers of fused pairs, 6 the last Dense."""
    model, x, dlogits = seed_network_and_batch()
    other = np.random.default_rng(9).random(x.shape, dtype=np.float32)
    inputs = [other, *model.activations(other).values()]  # each layer's input on `other`
    model.forward(x, training=True)
    for k, layer in enumerate(model.layers):
        if layer_index is None or k == layer_index:
            layer.forward(inputs[k], training=True)
    name = model.layers[layer_index or 0].name
    with pytest.raises(RuntimeError, match=rf"layer '{name}' holds the cache of a forward pass"):
        model.backward(dlogits)
    model.forward(x, training=True)  # a new forward pass: backward works again
    assert model.backward(dlogits).shape == x.shape


def test_after_a_layer_by_layer_forward_layer_by_layer_backward_is_consistent(float64):
    model, x, dlogits = seed_network_and_batch()
    x, dlogits = x.astype(np.float64), dlogits.astype(np.float64)
    model.forward(x, training=True)  # fused, then every layer again on its own
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    g = dlogits
    for layer in reversed(model.layers):
        g = layer.backward(g)
    got = all_grads(model)
    model.forward(x, training=True)
    np.testing.assert_allclose(g, model.backward(dlogits), rtol=1e-10, atol=1e-12)
    for key, want in all_grads(model).items():
        np.testing.assert_allclose(got[key], want, rtol=1e-10, atol=1e-12, err_msg=key)


def test_a_fused_step_whose_layers_ran_again_refuses_to_backpropagate():
    conv, pool = Conv2D(4, 3, activation="relu"), MaxPooling2D(2)
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    conv.build((8, 8, 1), rng=0)
    step = ConvReluPool(conv, pool)
    y = step.forward(x)
    pool.forward(conv.forward(x))
    with pytest.raises(RuntimeError, match="conv2d|one of the layers was run again"):
        step.backward(np.ones_like(y))


def test_training_still_fuses_and_a_train_step_is_unchanged():
    """The fast path stays on in training: train_on_batch runs the fused pairs."""
    model = tinycnn.Sequential(
        [Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)), MaxPooling2D(2), Flatten(),
         Dense(3)],
        seed=0,
    )  # fmt: skip
    model.compile(optimizer=tinycnn.optimizers.SGD(0.1))
    x = np.random.default_rng(0).random((4, 10, 10, 1), dtype=np.float32)
    model.train_on_batch(x, np.array([0, 1, 2, 0]))
    assert isinstance(model._steps[0], ConvReluPool)
