"""Looking inside a model (issue 12, item 5): ``model.activations(x)``, every layer's
output in one call, and ``model.input_gradient(x, class_index)``, a saliency map."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D


def small_model(seed=0):
    return tinycnn.Sequential(
        [
            Conv2D(3, 3, activation="relu", input_shape=(9, 9, 2)),
            MaxPooling2D(2),
            Flatten(),
            Dropout(0.5),
            Dense(4),
        ],
        seed=seed,
    )


def images(n, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).random((n, 9, 9, 2)).astype(dtype)


def test_activations_are_every_layer_output_in_layer_order():
    model, x = small_model(), images(5)
    maps = model.activations(x, batch_size=2)  # three batches: 2 + 2 + 1
    assert list(maps) == ["conv2d", "max_pooling2d", "flatten", "dropout", "dense"]
    expected_shapes = [(5, 7, 7, 3), (5, 3, 3, 3), (5, 27), (5, 27), (5, 4)]
    assert [a.shape for a in maps.values()] == expected_shapes
    assert all(type(a) is np.ndarray and a.dtype == np.float32 for a in maps.values())
    h = x  # the same as running the layers by hand, in inference mode (Dropout is off)
    for layer in model.layers:
        h = layer.forward(h, training=False)
        np.testing.assert_allclose(maps[layer.name], h, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(maps["dropout"], maps["flatten"])
    np.testing.assert_allclose(maps["dense"], model.predict(x), rtol=1e-6, atol=1e-6)
    assert all(layer.cache is None for layer in model.layers)  # no memory left behind


def test_activations_build_an_unbuilt_model_and_check_the_input():
    model = tinycnn.Sequential([Conv2D(2, 3), Flatten(), Dense(2)], seed=0)
    maps = model.activations(images(1))
    assert [a.shape for a in maps.values()] == [(1, 7, 7, 2), (1, 98), (1, 2)]
    with pytest.raises(TypeError, match="activations: x must hold floats"):
        model.activations(np.zeros((1, 9, 9, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="activations: the model expects samples of shape"):
        model.activations(np.zeros((1, 9, 9, 3), dtype=np.float32))


def numerical_input_gradient(model, x, c, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += h
        minus[i] -= h
        grad[i] = (model.forward(plus[None])[0, c] - model.forward(minus[None])[0, c]) / (2 * h)
    return grad


def test_input_gradient_is_the_derivative_of_the_class_score(float64):
    model = small_model()
    x = images(3, dtype=np.float64)
    grad = model.input_gradient(x, class_index=2)
    assert grad.shape == x.shape and type(grad) is np.ndarray
    for k in range(3):
        np.testing.assert_allclose(
            grad[k], numerical_input_gradient(model, x[k], 2), rtol=1e-6, atol=1e-8
        )


def test_input_gradient_of_one_image_and_one_class_per_image(float64):
    model = small_model()
    x = images(4, dtype=np.float64)
    per_image = model.input_gradient(x, class_index=[0, 3, 1, 3], batch_size=3)
    for k, c in enumerate([0, 3, 1, 3]):
        one = model.input_gradient(x[k], c)  # one image (H, W, C): its gradient (H, W, C)
        assert one.shape == (9, 9, 2)
        np.testing.assert_allclose(one, per_image[k], rtol=1e-12, atol=1e-14)
    assert np.abs(per_image).max() > 0


@pytest.mark.parametrize(
    ("class_index", "error", "match"),
    [
        (4, ValueError, r"class_index must lie in \[0, 3\] \(the model has 4 classes\)"),
        (-1, ValueError, r"class_index must lie in \[0, 3\]"),
        ([0, 1], ValueError, "one int or 3 of them"),
        (1.0, TypeError, "class_index must be an int"),
    ],
)
def test_input_gradient_rejects_a_bad_class_index(class_index, error, match):
    with pytest.raises(error, match=match):
        small_model().input_gradient(images(3), class_index)
