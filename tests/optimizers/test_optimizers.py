"""SGD (plain, momentum, Nesterov) and Adam: hand-computed steps, state round trip, names."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn import optimizers
from tinycnn.layers import Dense
from tinycnn.optimizers import SGD, Adam


def holder(w, g, name="dense"):
    """A built float64 Dense layer whose kernel is ``w`` (shape (1, k)) with gradient ``g``.

    Its bias has no gradient (None), which the optimizer must skip."""
    with tinycnn.use_floatx("float64"):
        layer = Dense(len(w), name=name)
        layer.build((1,))
    layer.params["kernel"] = tinycnn.to_backend(np.array([w], dtype="float64"))
    layer.grads = {"kernel": tinycnn.to_backend(np.array([g], dtype="float64")), "bias": None}
    return layer


def kernel(layer):
    return tinycnn.to_numpy(layer.params["kernel"])[0]


W0, G = [1.0, -2.0], [0.5, 0.25]


@pytest.mark.parametrize(
    ("kwargs", "after_1", "after_2"),
    [
        # w <- w - lr g
        ({}, [0.95, -2.025], [0.9, -2.05]),
        # v1 = -lr g = (-0.05, -0.025); v2 = 0.9 v1 - lr g = (-0.095, -0.0475); w += v
        ({"momentum": 0.9}, [0.95, -2.025], [0.855, -2.0725]),
        # w += 0.9 v - lr g: step 1 (-0.095, -0.0475), step 2 (-0.1355, -0.06775)
        ({"momentum": 0.9, "nesterov": True}, [0.905, -2.0475], [0.7695, -2.11525]),
    ],
    ids=["plain", "momentum", "nesterov"],
)
def test_sgd_hand_computed(kwargs, after_1, after_2, backend_name):
    layer = holder(W0, G)
    opt = SGD(learning_rate=0.1, **kwargs)
    opt.step([layer])
    np.testing.assert_allclose(kernel(layer), after_1, rtol=1e-15)
    opt.step([layer])  # same gradient again
    np.testing.assert_allclose(kernel(layer), after_2, rtol=1e-15)
    assert opt.iterations == 2
    np.testing.assert_array_equal(tinycnn.to_numpy(layer.params["bias"]), [0.0, 0.0])


def test_adam_hand_computed_with_keras_epsilon(backend_name, kernel_path):
    # both of Adam's paths: its own lines (reference) and their compiled twin (fast)
    # lr 0.1, beta_1 0.9, beta_2 0.999, epsilon 1e-7, g = (0.5, 1e-6).
    # Step 1: m = 0.1 g, sqrt(v) = sqrt(0.001) |g|, lr_1 = 0.1 sqrt(0.001) / 0.1, so
    #   w -= 0.1 sign(g) s / (s + 1e-7)  with s = sqrt(0.001) |g|.
    # For g = 1e-6, s = 3.162e-8 is smaller than epsilon: the step is 0.1 * 0.2402531 (Keras
    # adds epsilon to sqrt(v)); PyTorch's placement, eps added to sqrt(v_hat) = |g| = 1e-6,
    # would step 0.1 / 1.1 = 0.0909 and reach -2.0909.
    layer = holder([1.0, -2.0], [0.5, 1e-6])
    opt = Adam(learning_rate=0.1)
    opt.step([layer])
    np.testing.assert_allclose(kernel(layer), [0.900000632451532, -2.0240253073352044], rtol=1e-14)
    # Step 2, same gradient: m = 0.19 g, v = 0.001999 g^2, lr_2 = 0.1 sqrt(0.001999) / 0.19
    opt.step([layer])
    expected = []
    for w1, g in zip([0.900000632451532, -2.0240253073352044], [0.5, 1e-6], strict=True):
        lr_2 = 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
        expected.append(w1 - lr_2 * (0.19 * g) / (math.sqrt(0.001999 * g * g) + 1e-7))
    np.testing.assert_allclose(kernel(layer), expected, rtol=1e-14)
    np.testing.assert_allclose(kernel(layer), [0.8000010797749725, -2.054921667555447], rtol=1e-14)
    state = opt.state["dense/kernel"]
    np.testing.assert_allclose(tinycnn.to_numpy(state["m"])[0], [0.095, 1.9e-7], rtol=1e-14)
    np.testing.assert_allclose(tinycnn.to_numpy(state["v"])[0], [0.00049975, 1.999e-15], rtol=1e-14)


def test_adam_defaults_are_keras_defaults():
    opt = optimizers.get("adam")
    assert isinstance(opt, Adam)
    assert opt.get_config() == {
        "name": "Adam",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
    }
    sgd = optimizers.get("SGD")
    assert isinstance(sgd, SGD)
    assert sgd.get_config() == {
        "name": "SGD",
        "learning_rate": 0.01,
        "momentum": 0.0,
        "nesterov": False,
    }


def test_lr_alias_and_learning_rate_changes_between_steps():
    assert SGD(lr=0.5).learning_rate == 0.5 and Adam(lr=0.2).learning_rate == 0.2
    layer = holder([1.0], [1.0])
    opt = SGD(learning_rate=0.1)
    opt.step([layer])
    opt.learning_rate = 0.01  # as a schedule would
    opt.step([layer])
    np.testing.assert_allclose(kernel(layer), [0.89], rtol=1e-15)


def test_updates_are_in_place():
    layer = holder([1.0, 2.0], [1.0, 1.0])
    param = layer.params["kernel"]
    for opt in (SGD(0.1), SGD(0.1, momentum=0.5), Adam(0.1)):
        opt.step([layer])
        assert layer.params["kernel"] is param


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(0.1, momentum=0.9),
        lambda: SGD(0.1, momentum=0.9, nesterov=True),
        lambda: Adam(0.05),
    ],
    ids=["momentum", "nesterov", "adam"],
)
def test_get_state_set_state_round_trip(make):
    # Train 3 steps; copy the state into a fresh optimizer; both must continue identically.
    grads = [[0.3, -0.7], [0.1, 0.2], [-0.5, 0.4], [0.25, 0.25], [0.6, -0.1]]
    a, b = holder([1.0, -1.0], grads[0]), None
    opt_a = make()
    for g in grads[:3]:
        a.grads["kernel"] = np.array([g])
        opt_a.step([a])
    flat = opt_a.get_state()
    assert flat["iterations"] == 3
    assert (
        set(flat) - {"iterations"}
        <= {
            "dense/kernel/velocity",
            "dense/kernel/m",
            "dense/kernel/v",
        }
        and len(flat) > 1
    )
    saved = {k: (np.array(v, copy=True) if k != "iterations" else v) for k, v in flat.items()}
    b = holder(kernel(a), grads[0])
    opt_b = make()
    opt_b.set_state(saved)
    assert opt_b.iterations == 3
    for g in grads[3:]:
        for layer, opt in ((a, opt_a), (b, opt_b)):
            layer.grads["kernel"] = np.array([g])
            opt.step([layer])
    np.testing.assert_array_equal(kernel(a), kernel(b))


def test_state_is_kept_per_layer_and_parameter():
    a, b = holder([1.0], [1.0], name="a"), holder([1.0], [2.0], name="b")
    opt = SGD(0.1, momentum=0.9)
    opt.step([a, b])
    assert set(opt.state) == {"a/kernel", "b/kernel"}  # biases have no gradient: no state
    np.testing.assert_allclose(opt.state["b/kernel"]["velocity"], [[-0.2]], rtol=1e-15)


def test_from_config_round_trip():
    for opt in (SGD(0.2, momentum=0.5, nesterov=True), Adam(0.01, beta_1=0.8, epsilon=1e-6)):
        clone = optimizers.from_config(opt.get_config())
        assert type(clone) is type(opt) and clone.get_config() == opt.get_config()


def test_bad_names_and_values():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'rmsprop': expected one of"):
        optimizers.get("rmsprop")
    with pytest.raises(TypeError, match=r"Expected an optimizer or its name, got int"):
        optimizers.get(3)
    with pytest.raises(ValueError, match=r"learning_rate must be positive and finite, got 0"):
        SGD(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"beta_2 must be in \[0, 1\), got 1"):
        Adam(beta_2=1)
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adagrad' in the saved model"):
        optimizers.from_config({"name": "Adagrad", "learning_rate": 0.1})


@pytest.mark.parametrize("make", [SGD, Adam, lambda lr: SGD(lr, momentum=0.9)])
@pytest.mark.parametrize("lr", [float("inf"), float("nan"), -1e-3, 0.0])
def test_a_learning_rate_must_be_positive_and_finite(make, lr):
    # inf used to be accepted: the first step made every weight NaN or infinite
    with pytest.raises(ValueError, match=r"learning_rate must be positive and finite, got"):
        make(lr)
    with pytest.raises(ValueError, match=r"learning_rate must be positive and finite"):
        optimizers.from_config({"name": "Adam", "learning_rate": lr})


@pytest.mark.parametrize("epsilon", [float("inf"), float("nan"), -1e-7])
def test_adam_epsilon_must_be_finite_and_not_negative(epsilon):
    with pytest.raises(ValueError, match=r"epsilon must be a finite number >= 0, got"):
        Adam(epsilon=epsilon)
