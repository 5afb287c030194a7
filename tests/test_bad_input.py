"""Wrong inputs fail at once, with the right error type and a message that names the layer,
what it expected and what it got."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU
from tinycnn.losses import SoftmaxCrossEntropy


@pytest.fixture
def model():
    """The seed network, built (float32)."""
    m = tinycnn.models.fashion_mnist_cnn(seed=0)
    m.build(m.input_shape)
    return m


def images(*shape, dtype="float32"):
    return np.random.default_rng(0).random(shape).astype(dtype)


# ---- layer inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 28, 28), (28, 28, 1, 1, 1), (784,)])
def test_wrong_rank(model, shape):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Sequential.forward: the model expects samples of shape (28, 28, 1), that is "
            f"batches of shape (N, 28, 28, 1); got a batch of shape {shape}."
        ),
    ):
        model.forward(images(*shape))
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Conv2D layer 'conv2d': expected input of shape (N, H, W, C) (rank 4), "
            f"got shape {shape} (rank {len(shape)})"
        ),
    ):
        model.layers[0].forward(images(*shape))


def test_wrong_rank_into_dense():
    layer = Dense(3, name="dense")
    with pytest.raises(
        ValueError,
        match=r"Dense layer 'dense': expected input of shape \(N, D\) \(rank 2\), got shape \(2, 4, 4\) \(rank 3\)",
    ):
        layer.forward(images(2, 4, 4))


def test_wrong_channel_count_after_build(model):
    with pytest.raises(
        ValueError,
        match=r"Conv2D layer 'conv2d': expected 1 input channels .*got 3 \(shape \(N, 28, 28, 3\)\)",
    ):
        model.layers[0].forward(images(2, 28, 28, 3))


def test_wrong_image_size_reaches_dense_with_the_wrong_feature_count(model):
    # 32x32 images pass the convolutions but give 6*6*64 = 2304 features instead of 1600
    with pytest.raises(
        ValueError,
        match=r"Dense layer 'dense': expected input of shape \(N, 1600\), got \(N, 2304\)",
    ):
        model.layers[5].forward(images(1, 2304))
    # the model itself refuses the 32x32 images before any layer runs
    with pytest.raises(ValueError, match=r"samples of shape \(28, 28, 1\).*\(1, 32, 32, 1\)"):
        model.forward(images(1, 32, 32, 1))


def test_dense_with_the_wrong_feature_count():
    layer = Dense(4, name="dense_3")
    layer.build((10,))
    with pytest.raises(
        ValueError, match=r"Dense layer 'dense_3': expected input of shape \(N, 10\), got \(N, 7\)"
    ):
        layer.forward(images(2, 7))


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64", "bool"])
def test_integer_images_are_rejected_with_the_expected_dtype(model, dtype):
    x = (images(2, 28, 28, 1) * 255).astype(dtype)
    with pytest.raises(
        TypeError,
        match=rf"Conv2D layer 'conv2d': expected floating-point input \(float32\), got {dtype}",
    ):
        model.forward(x)


def test_expected_dtype_is_the_layers_own(float64):
    layer = Dense(2, name="dense")
    layer.build((3,))
    with pytest.raises(
        TypeError,
        match=r"Dense layer 'dense': expected floating-point input \(float64\), got int64",
    ):
        layer.forward(np.ones((1, 3), dtype="int64"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_inputs(model, bad):
    x = images(2, 28, 28, 1)
    x[1, 3, 4, 0] = bad
    with pytest.raises(
        ValueError, match=r"Conv2D layer 'conv2d': the input contains NaN or infinite values"
    ):
        model.forward(x)
    with pytest.raises(ValueError, match=r"ReLU layer 're_lu': the input contains NaN or infinite"):
        ReLU(name="re_lu").forward(x)


def test_not_an_array(model):
    with pytest.raises(TypeError, match=r"Conv2D layer 'conv2d': expected an array, got list"):
        model.layers[0].forward([[0.0] * 28] * 28)
    with pytest.raises(TypeError, match=r"Sequential.forward expects an array, got list"):
        model.forward([[0.0] * 28] * 28)
    with pytest.raises(TypeError, match=r"Sequential.forward expects an array, got list"):
        tinycnn.Sequential([Dense(2)]).forward([[1.0, 2.0]])


def test_input_on_another_backend_than_the_weights(model):
    # a registered array type stands in for a CuPy array on this CPU machine
    other = type("OtherArray", (np.ndarray,), {})
    backend.register_namespace("other", np, other)
    try:
        with pytest.raises(
            TypeError,
            match=r"Conv2D layer 'conv2d': its weights live on 'numpy' but the input is a 'other' array",
        ):
            model.forward(images(1, 28, 28, 1).view(other))
    finally:
        backend.unregister_namespace("other")


# ---- shapes the layer cannot handle -------------------------------------------------------------
def test_kernel_larger_than_the_input():
    with pytest.raises(
        ValueError,
        match=r"Conv2D layer 'conv2d': the 3x3 kernel is larger than the 2x2 input \(with 'valid' padding\)",
    ):
        tinycnn.Sequential([Conv2D(2, 3, input_shape=(2, 2, 1))]).build((2, 2, 1))
    # the same input works with 'same' padding
    y = tinycnn.Sequential([Conv2D(2, 3, padding="same")]).forward(images(1, 2, 2, 1))
    assert y.shape == (1, 2, 2, 2)


def test_kernel_larger_than_the_input_deep_in_a_model():
    model = tinycnn.Sequential([Conv2D(2, 3), MaxPooling2D(2), Conv2D(2, 3)])
    with pytest.raises(
        ValueError, match=r"Conv2D layer 'conv2d_1': the 3x3 kernel is larger than the 2x2 input"
    ):
        model.forward(images(1, 6, 6, 1))


def test_pool_larger_than_the_input():
    with pytest.raises(
        ValueError, match=r"MaxPooling2D layer 'pool': the 3x3 pool is larger than the 2x2 input"
    ):
        MaxPooling2D(3, name="pool").forward(images(1, 2, 2, 1))


# ---- constructor arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Conv2D(2, 3, padding="full"),
            r"Conv2D padding must be 'valid' or 'same', got 'full'",
        ),
        (
            lambda: MaxPooling2D(2, padding="causal"),
            r"MaxPooling2D padding must be 'valid' or 'same', got 'causal'",
        ),
        (lambda: Conv2D(0, 3), r"Conv2D filters must be a positive int, got 0"),
        (lambda: Conv2D(2.5, 3), r"Conv2D filters must be a positive int, got 2.5"),
        (
            lambda: Conv2D(2, 0),
            r"Conv2D kernel_size must be a positive int or a pair of them, got 0",
        ),
        (
            lambda: Conv2D(2, (3, 3, 3)),
            r"Conv2D kernel_size must be a positive int or a pair of them, got \(3, 3, 3\)",
        ),
        (lambda: Conv2D(2, 3, strides=(1, 2)), r"Conv2D supports equal strides only, got \(1, 2\)"),
        (
            lambda: MaxPooling2D(0),
            r"MaxPooling2D pool_size must be a positive int or a pair of them, got 0",
        ),
        (lambda: Dense(0), r"Dense units must be a positive int, got 0"),
        (lambda: Dropout(1.0), r"Dropout rate must be in \[0, 1\), got 1.0"),
        (lambda: Dropout(-0.1), r"Dropout rate must be in \[0, 1\), got -0.1"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("cls", [Conv2D, Dense])
def test_unknown_activation_names_the_option(cls):
    args = (2, 3) if cls is Conv2D else (2,)
    with pytest.raises(
        ValueError,
        match=r"unknown activation 'swish'; expected one of \(None, 'linear', 'relu', 'sigmoid'",
    ):
        cls(*args, activation="swish")


@pytest.mark.parametrize(
    ("make", "layer"),
    [
        (lambda: Conv2D(2, 3, activation="swish"), "Conv2D"),
        (lambda: Dense(2, activation="gelu"), "Dense"),
        (lambda: MaxPooling2D(2, strides=0), "MaxPooling2D"),
    ],
)
def test_every_constructor_error_names_the_layer_type(make, layer):
    with pytest.raises(ValueError, match=layer):
        make()


# ---- weights --------------------------------------------------------------------------------------
def test_set_weights_with_a_wrong_shape(model):
    weights = model.get_weights()
    weights[0] = np.zeros((3, 3, 1, 32), dtype="float32")
    with pytest.raises(
        ValueError,
        match=r"set_weights: Conv2D layer 'conv2d' kernel has shape \(3, 3, 1, 64\), got \(3, 3, 1, 32\)",
    ):
        model.set_weights(weights)
    weights = model.get_weights()
    weights[7] = np.zeros((11,), dtype="float32")
    with pytest.raises(
        ValueError, match=r"set_weights: Dense layer 'dense_1' bias has shape \(10,\), got \(11,\)"
    ):
        model.set_weights(weights)


def test_set_weights_with_a_wrong_count(model):
    with pytest.raises(ValueError, match=r"set_weights: the model has 8 weight arrays, got 7"):
        model.set_weights(model.get_weights()[:-1])


def test_set_weights_on_an_unbuilt_model():
    with pytest.raises(RuntimeError, match=r"set_weights: the model is not built yet"):
        tinycnn.Sequential([Dense(2)]).set_weights([])


# ---- order of calls -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layer", "label"),
    [
        (Conv2D(2, 3, name="conv2d"), "Conv2D layer 'conv2d'"),
        (MaxPooling2D(name="max_pooling2d"), "MaxPooling2D layer 'max_pooling2d'"),
        (Dense(2, name="dense"), "Dense layer 'dense'"),
        (ReLU(name="re_lu"), "ReLU layer 're_lu'"),
        (Flatten(name="flatten"), "Flatten layer 'flatten'"),
        (Dropout(0.5, name="dropout"), "Dropout layer 'dropout'"),
    ],
)
def test_backward_before_forward(layer, label):
    with pytest.raises(
        RuntimeError, match=rf"{label}: backward\(\) called before forward\(x, training=True\)"
    ):
        layer.backward(np.ones((1, 2), dtype="float32"))


def test_model_backward_before_forward_names_the_last_layer(model):
    with pytest.raises(
        RuntimeError, match=r"Dense layer 'dense_1': backward\(\) called before forward"
    ):
        model.backward(np.ones((1, 10), dtype="float32"))


# ---- labels and logits ------------------------------------------------------------------------------
def logits(n=3, c=10):
    return np.random.default_rng(1).standard_normal((n, c)).astype("float32")


@pytest.mark.parametrize(("labels", "low", "high"), [([0, 10, 2], 0, 10), ([-1, 3, 2], -1, 3)])
def test_labels_out_of_range(labels, low, high):
    with pytest.raises(
        ValueError,
        match=rf"SoftmaxCrossEntropy: labels must lie in \[0, 9\] for 10 classes, got values from {low} to {high}",
    ):
        SoftmaxCrossEntropy().forward(logits(), np.array(labels))


@pytest.mark.parametrize("shape", [(3, 1), (2,), (4,)])
def test_labels_with_the_wrong_shape(shape):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"SoftmaxCrossEntropy: expected labels of shape (3,), one label for each of the "
            f"3 samples, got {shape}."
        ),
    ):
        SoftmaxCrossEntropy().forward(logits(), np.zeros(shape, dtype="int64"))


def test_float_labels_and_one_hot_labels():
    with pytest.raises(
        TypeError, match=r"expected integer class labels of shape \(N,\), got float32"
    ):
        SoftmaxCrossEntropy().forward(logits(), np.array([0.0, 1.0, 2.0], dtype="float32"))
    with pytest.raises(
        TypeError, match=r"got float64\. One-hot labels\? Use labels.argmax\(axis=1\)"
    ):
        SoftmaxCrossEntropy().forward(logits(), np.eye(10)[[0, 1, 2]])
    with pytest.raises(TypeError, match=r"expected integer class labels of shape \(N,\), got list"):
        SoftmaxCrossEntropy().forward(logits(), [0, 1, 2])


def test_bad_logits():
    with pytest.raises(
        ValueError,
        match=r"SoftmaxCrossEntropy: expected logits of shape \(N, C\), got \(3, 10, 1\)",
    ):
        SoftmaxCrossEntropy().forward(logits()[..., None], np.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"SoftmaxCrossEntropy: expected float logits, got int64"):
        SoftmaxCrossEntropy().forward(np.zeros((3, 10), dtype="int64"), np.array([0, 1, 2]))
    bad = logits()
    bad[0, 0] = np.nan
    with pytest.raises(
        ValueError, match=r"SoftmaxCrossEntropy: the logits contain NaN or infinite values"
    ):
        SoftmaxCrossEntropy().forward(bad, np.array([0, 1, 2]))


# ---- gradient check misuse ------------------------------------------------------------------------------
def test_gradcheck_misuse():
    # float32 is no misuse: a float64 copy is checked (tests/test_gradient_check.py)
    with pytest.raises(TypeError, match=r"gradcheck\(model, x, labels\): a model needs the labels"):
        tinycnn.gradcheck(tinycnn.Sequential([Dense(2)]), np.ones((1, 3)))
    with pytest.raises(TypeError, match=r"gradcheck: expected a layer, a loss or a model, got int"):
        tinycnn.gradcheck(3, np.ones(2))
