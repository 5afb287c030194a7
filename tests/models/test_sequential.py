"""Sequential: building, forward/backward as the composition of the layers, weights."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, ReLU
from tinycnn.losses import SoftmaxCrossEntropy
from tinycnn.models.sequential import snake_case
from tinycnn.optimizers import SGD, Adam


@pytest.mark.parametrize(
    ("class_name", "name"),
    [
        ("Conv2D", "conv2d"),
        ("MaxPooling2D", "max_pooling2d"),
        ("ReLU", "re_lu"),
        ("Dense", "dense"),
        ("Flatten", "flatten"),
        ("Dropout", "dropout"),
        ("BatchNormalization", "batch_normalization"),
    ],
)
def test_snake_case_like_keras(class_name, name):
    assert snake_case(class_name) == name


def test_forward_is_the_composition_of_the_layers(make_small_model, float64, backend_name):
    model = make_small_model(seed=0)
    x = tinycnn.to_backend(np.random.default_rng(0).random((3, 14, 14, 2)))
    logits = tinycnn.to_numpy(model.forward(x))
    h = x
    for layer in model.layers:
        h = layer.forward(h)
    # not bitwise: on the CPU fast path the model may fuse Conv2D(relu)+MaxPooling2D
    # (models/fusion.py), which sums in another order
    np.testing.assert_allclose(logits, tinycnn.to_numpy(h), rtol=1e-12, atol=1e-14)
    assert logits.shape == (3, 4) and logits.dtype == np.float64


def test_backward_chains_the_layers_in_reverse(make_small_model, float64):
    model = make_small_model(seed=1)
    x = np.random.default_rng(1).random((2, 14, 14, 2))
    dlogits = np.random.default_rng(2).standard_normal((2, 4))
    model.forward(x, training=True)
    dx = model.backward(dlogits)
    grads = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]
    # by hand: forward through each layer, then backward through each in reverse
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    g = dlogits
    for layer in reversed(model.layers):
        g = layer.backward(g)
    np.testing.assert_allclose(dx, g, rtol=1e-12, atol=1e-14)  # fusion: see above
    for layer, expected in zip(model.layers, grads, strict=True):
        for key in expected:
            np.testing.assert_allclose(layer.grads[key], expected[key], rtol=1e-12, atol=1e-14)
    # training does not need dL/dx: input_grad=False returns None, parameter grads unchanged
    model.forward(x, training=True)
    assert model.backward(dlogits, input_grad=False) is None
    np.testing.assert_array_equal(model.layers[0].grads["kernel"], grads[0]["kernel"])


def test_built_at_once_with_input_shape_or_lazily_from_data():
    eager = tinycnn.Sequential([Dense(3, input_shape=(5,)), Dense(2)], seed=0)
    assert eager.input_shape == (5,) and eager.built  # built at construction, as in Keras
    assert eager.layers[0].params["kernel"].shape == (5, 3)
    assert eager.count_params() == 18 + 8
    lazy = tinycnn.Sequential([Dense(3), Dense(2)], seed=0)
    assert lazy.forward(np.zeros((4, 5), dtype="float32")).shape == (4, 2)
    assert lazy.built and lazy.input_shape == (5,)
    for a, b in zip(eager.get_weights(), lazy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_add_names_and_rejects_duplicates():
    model = tinycnn.Sequential()
    model.add(Conv2D(2, 3, input_shape=(6, 6, 1)))
    model.add(Conv2D(2, 3))
    model.add(Flatten())
    model.add(Dense(2, name="head"))
    assert [layer.name for layer in model.layers] == ["conv2d", "conv2d_1", "flatten", "head"]
    assert model.input_shape == (6, 6, 1)
    with pytest.raises(ValueError, match=r"Sequential: two layers are named 'head'"):
        model.add(Dense(2, name="head"))
    with pytest.raises(TypeError, match=r"Sequential.add expects a Layer, got str"):
        model.add("dense")
    assert repr(model) == "<Sequential 'sequential': 4 layers>"


def test_model_with_input_shape_has_weights_at_once():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    assert model.built and model.layers[0].params["kernel"].shape == (3, 3, 1, 64)
    assert len(model.get_weights()) == 8


def test_layers_added_after_the_build_continue_the_seeded_stream():
    added = tinycnn.Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), Flatten()], seed=1)
    added.add(Dense(3))
    assert added.layers[-1].params["kernel"].shape == (144, 3)
    at_once = tinycnn.Sequential([Conv2D(4, 3), Flatten(), Dense(3)], seed=1)
    at_once.build((8, 8, 1))
    for a, b in zip(added.get_weights(), at_once.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("shape", "hint"),
    [
        ((3, 28, 28, 3), r"got a batch of shape \(3, 28, 28, 3\)\.$"),
        ((3, 32, 32, 3), r"got a batch of shape \(3, 32, 32, 3\)\.$"),
        ((3, 28, 28), r"channel axis is missing: add it with x\[\.\.\., None\]"),
        ((3, 1, 28, 28), r"channels-last.*x\.transpose\(0, 2, 3, 1\)"),
    ],
)
def test_declared_input_shape_refuses_other_samples(shape, hint):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.compile()
    x = np.zeros(shape, dtype="float32")
    y = np.zeros(shape[0], dtype="int64")
    expects = r"expects samples of shape \(28, 28, 1\).*" + hint
    for call in (model.predict, model.forward, lambda x: model.fit(x, y, verbose=0)):
        with pytest.raises(ValueError, match=expects):
            call(x)
    with pytest.raises(ValueError, match=expects):
        model.evaluate(x, y)
    assert model.count_params() == 862_410  # nothing was rebuilt


def test_a_model_built_from_data_names_the_missing_channel_axis():
    model = tinycnn.Sequential([Conv2D(4, 3), Flatten(), Dense(3)])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\) \(rank 3\).*x\[\.\.\., None\]"):
        model.predict(np.zeros((2, 28, 28), dtype="float32"))
    assert not model.built


def test_a_model_without_layers_says_so():
    empty = tinycnn.Sequential([])
    x = np.zeros((2, 3), dtype="float32")
    for call in (empty.predict, empty.forward, lambda x: empty.build(x.shape[1:])):
        with pytest.raises(ValueError, match="the model has no layers"):
            call(x)
    with pytest.raises(ValueError, match="the model has no layers"):
        empty.summary()


def test_get_set_weights_round_trip(float64):
    a = tinycnn.models.fashion_mnist_cnn(seed=0)
    b = tinycnn.models.fashion_mnist_cnn(seed=1)
    a.build(a.input_shape)
    b.build(b.input_shape)
    weights = a.get_weights()
    assert [w.shape for w in weights] == [
        (3, 3, 1, 64), (64,), (3, 3, 64, 64), (64,), (1600, 512), (512,), (512, 10), (10,)
    ]  # fmt: skip
    assert all(type(w) is np.ndarray and w.dtype == np.float64 for w in weights)
    b.set_weights(weights)
    x = np.random.default_rng(0).random((2, 28, 28, 1))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    # set_weights copies into the model's dtype
    b.set_weights([w.astype("float32") for w in weights])
    assert b.layers[0].params["kernel"].dtype == np.float64


def test_to_numpy_backend_keeps_the_numbers():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.build(model.input_shape)
    before = model.get_weights()
    assert len(before) == 8
    model.to("numpy")
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dropout_changes_training_output_only():
    model = tinycnn.Sequential([Dense(8, input_shape=(4,)), Dropout(0.5, seed=0), Dense(2)], seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    np.testing.assert_array_equal(model.forward(x), model.forward(x, training=False))
    assert not np.array_equal(model.forward(x), model.forward(x, training=True))


def test_float64_model_computes_in_float64(float64):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert model.forward(x).dtype == np.float64  # float32 input is cast to the layer's dtype


@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: Adam(1e-3), lambda: SGD(0.05, momentum=0.9)],
    ids=["adam", "sgd-momentum"],
)
def test_manual_training_steps_reduce_the_loss(make_optimizer, backend_name):
    # Ten steps on one fixed batch of the seed network must fit it better (float32).
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    r = np.random.default_rng(0)
    x = tinycnn.to_backend(r.random((8, 28, 28, 1)).astype("float32"))
    y = tinycnn.to_backend(r.integers(0, 10, 8))
    loss_fn, opt = SoftmaxCrossEntropy(), make_optimizer()
    losses = []
    for _ in range(10):
        losses.append(float(loss_fn.forward(model.forward(x, training=True), y)))
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step(model.layers)
    final = float(loss_fn.forward(model.forward(x), y))
    print("loss per step:", [round(v, 4) for v in losses], "final", round(final, 4))
    assert abs(losses[0] - np.log(10)) < 0.5  # near chance at initialisation
    assert final < 0.8 * losses[0]
    assert opt.iterations == 10


def test_relu_layer_model_matches_activation_option(float64):
    # Dense(relu) and Dense followed by a ReLU layer compute the same function.
    fused = tinycnn.Sequential([Dense(5, activation="relu", input_shape=(3,)), Dense(2)], seed=3)
    split = tinycnn.Sequential([Dense(5, input_shape=(3,)), ReLU(), Dense(2)], seed=3)
    fused.build((3,))
    split.build((3,))
    split.set_weights(fused.get_weights())
    x = np.random.default_rng(3).standard_normal((4, 3))
    np.testing.assert_allclose(fused.forward(x), split.forward(x), rtol=1e-15)
    fused.forward(x, training=True)
    split.forward(x, training=True)
    d = np.ones((4, 2))
    np.testing.assert_allclose(fused.backward(d), split.backward(d), rtol=1e-15)


def test_get_config_lists_layers():
    config = tinycnn.models.fashion_mnist_cnn(seed=0).get_config()
    assert config["input_shape"] == [28, 28, 1]
    assert [layer["class_name"] for layer in config["layers"]] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"
    ]  # fmt: skip
    assert config["layers"][5]["config"] == {
        "name": "dense",
        "trainable": True,
        "units": 512,
        "activation": "relu",
        "use_bias": True,
    }


def test_each_layer_hands_out_and_takes_its_own_weights():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    conv = model.layers[0]
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 3, 1, 64) and bias.shape == (64,)
    assert model.layers[1].get_weights() == []  # pooling has none
    kernel[...] = 0.5  # a copy: the layer is untouched until set_weights
    assert not np.array_equal(conv.params["kernel"], kernel)
    params_before = conv.params["kernel"]
    conv.set_weights([kernel, bias + 1])
    assert conv.params["kernel"] is params_before  # copied into place
    np.testing.assert_array_equal(conv.params["kernel"], 0.5)
    np.testing.assert_array_equal(model.get_weights()[1], bias + 1)
    with pytest.raises(
        ValueError, match=r"Conv2D layer 'conv2d' has 2 weight arrays \(kernel, bias\), got 1"
    ):
        conv.set_weights([kernel])
    with pytest.raises(ValueError, match=r"bias has shape \(64,\), got \(3,\)"):
        conv.set_weights([kernel, np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="not built yet"):
        Dense(3).set_weights([np.zeros((2, 3))])
    # a bad array in the last layer leaves the first untouched: all are checked first
    weights = model.get_weights()
    weights[0] = weights[0] + 1
    weights[-1] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"dense_1.*bias has shape \(10,\), got \(3,\)"):
        model.set_weights(weights)
    np.testing.assert_array_equal(conv.params["kernel"], 0.5)
