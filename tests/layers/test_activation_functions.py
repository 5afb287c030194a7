"""sigmoid, tanh, softmax, leaky_relu: as ``activation=`` of Dense and Conv2D, as an
Activation layer, and softmax as the last layer with softmax cross-entropy."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Activation, Conv2D, Dense, Flatten
from tinycnn.layers import activations as act

NAMES = ["sigmoid", "tanh", "softmax", "leaky_relu", "relu"]


def _reference(name, z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.2 * z)
    if name == "relu":
        return np.maximum(z, 0)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_forward(name, float64):
    z = np.random.default_rng(0).standard_normal((4, 5)) * 3
    y = Activation(name).forward(z)
    np.testing.assert_allclose(y, _reference(name, z), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 3, 4)])
def test_activation_layer_gradcheck(name, shape, kink_free, float64):
    x = kink_free(shape, seed=len(shape))  # |x| >= 0.1: away from leaky_relu's kink
    report = tinycnn.gradcheck(Activation(name), x)
    assert report.ok and report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize("name", NAMES)
def test_dense_and_conv2d_gradcheck(name, kink_free, float64):
    x = kink_free((3, 5), seed=1)
    report = tinycnn.gradcheck(Dense(4, activation=name), x)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    x = kink_free((2, 5, 5, 2), seed=2)
    report = tinycnn.gradcheck(Conv2D(3, 3, activation=name), x)
    assert report.ok and report.max_rel_error < 1e-6, str(report)


def test_wrong_sigmoid_derivative_fails_gradcheck(monkeypatch, float64):
    x = np.random.default_rng(0).standard_normal((4, 6))
    wrong = (act._sigmoid, lambda dy, y: dy * y)  # forgets the (1 - y)
    monkeypatch.setitem(act._FUNCTIONS, "sigmoid", wrong)
    report = tinycnn.gradcheck(Activation("sigmoid"), x)
    assert not report.ok and report.max_rel_error > 1e-2


def test_softmax_backward_is_the_full_jacobian(float64):
    z = np.random.default_rng(1).standard_normal((2, 4))
    dy = np.random.default_rng(2).standard_normal((2, 4))
    layer = Activation("softmax")
    y = layer.forward(z, training=True)
    jac = [np.diag(p) - np.outer(p, p) for p in y]  # dy_i/dz_j
    expected = np.stack([j.T @ g for j, g in zip(jac, dy, strict=True)])
    np.testing.assert_allclose(layer.backward(dy), expected, rtol=1e-13, atol=1e-15)


def test_sigmoid_does_not_overflow():
    y = Activation("sigmoid").forward(np.array([[-1000.0, 0.0, 1000.0]]))
    np.testing.assert_array_equal(y, [[0.0, 0.5, 1.0]])


def test_softmax_function_is_exported():
    logits = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(tinycnn.softmax(logits), [[0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(tinycnn.softmax(logits, axis=0).sum(axis=0), [1.0, 1.0])


def _pair(seed=0):
    """The same weights twice: a logits model and one that ends in softmax."""
    logits_model = tinycnn.Sequential(
        [Conv2D(3, 3, activation="tanh", input_shape=(6, 6, 1)), Flatten(), Dense(4)], seed=seed
    )
    logits_model.build((6, 6, 1))
    probs_model = copy.deepcopy(logits_model)
    probs_model.layers[-1].activation = "softmax"
    for model in (logits_model, probs_model):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return logits_model, probs_model


def _data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((8, 6, 6, 1)), rng.integers(0, 4, 8)


def test_softmax_last_layer_gives_the_logits_models_loss_and_gradients(float64):
    x, y = _data()
    results = []
    for model in _pair():
        out = model.forward(x, training=True)
        loss = float(model.loss.forward(out, y))
        dx = model.backward(model.loss.backward())
        results.append(
            (out, loss, dx, [g.copy() for layer in model.layers for g in layer.grads.values()])
        )
    (logits, loss_a, dx_a, grads_a), (probs, loss_b, dx_b, grads_b) = results
    np.testing.assert_allclose(probs, tinycnn.softmax(logits), rtol=1e-14)
    assert abs(loss_a - loss_b) < 1e-12 and loss_a > 0.1
    np.testing.assert_allclose(dx_b, dx_a, rtol=0, atol=1e-12)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        np.testing.assert_allclose(gb, ga, rtol=0, atol=1e-12)


def test_softmax_last_layer_loss_is_stable(float64):
    _, model = _pair()
    model.layers[-1].params["kernel"] *= 1e4  # huge logits: some probabilities round to 0
    x, y = _data()
    loss = float(model.loss.forward(model.forward(x), y))
    assert np.isfinite(loss) and loss > 100


def test_softmax_last_layer_trains_like_logits(float64):
    x, y = _data()
    (a, b), hist = _pair(), []
    for model in (a, b):
        hist.append(model.fit(x, y, epochs=3, batch_size=4, verbose=0, seed=1).history["loss"])
    np.testing.assert_allclose(hist[1], hist[0], rtol=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wb, wa, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.predict(x), tinycnn.softmax(a.predict(x)), rtol=1e-12)
    np.testing.assert_allclose(b.predict(x).sum(axis=1), 1.0, rtol=1e-14)
    assert a.evaluate(x, y) == pytest.approx(b.evaluate(x, y), rel=1e-12)


def test_save_and_load_keep_the_activations(tmp_path, float64):
    model = tinycnn.Sequential(
        [
            Conv2D(2, 3, activation="leaky_relu", input_shape=(5, 5, 1)),
            Activation("sigmoid"),
            Flatten(),
            Dense(3, activation="softmax"),
        ],
        seed=0,
    )
    model.compile()
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
    model.save(tmp_path / "m.npz")
    loaded = tinycnn.load_model(tmp_path / "m.npz")
    assert [getattr(layer, "activation", None) for layer in loaded.layers] == [
        "leaky_relu",
        "sigmoid",
        None,
        "softmax",
    ]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss.output_layer is loaded.layers[-1]
