"""Dense: forward against x @ W + b, backward formulas, gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Dense


def make_dense(d_in, units, activation=None, use_bias=True, seed=0):
    """A built float64 Dense layer with a random non-zero bias."""
    layer = Dense(units, activation=activation, use_bias=use_bias)
    layer.name = "dense"
    layer.build((d_in,), rng=seed)
    if use_bias:
        bias = np.random.default_rng(seed + 1).uniform(-0.5, 0.5, units).astype(layer.dtype)
        layer.params["bias"] = tinycnn.to_backend(bias)
    return layer


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "linear"])
@pytest.mark.parametrize(("d_in", "units"), [(1, 1), (7, 3), (12, 10)])
def test_forward_matches_reference(
    d_in, units, activation, use_bias, float64, backend_name, kernel_path
):
    x = np.random.default_rng(1).standard_normal((5, d_in))
    layer = make_dense(d_in, units, activation, use_bias)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x)))
    w = tinycnn.to_numpy(layer.params["kernel"])
    expected = x @ w + (tinycnn.to_numpy(layer.params["bias"]) if use_bias else 0.0)
    if activation == "relu":
        expected = np.maximum(expected, 0)
    assert y.shape == (5, units) and layer.compute_output_shape((d_in,)) == (units,)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-14)


def test_parameters_use_the_keras_layout():
    layer = Dense(512)
    layer.build((1600,), rng=0)
    assert layer.params["kernel"].shape == (1600, 512) and layer.params["bias"].shape == (512,)
    assert layer.count_params() == 819712
    assert set(Dense(3, use_bias=False).get_config()) >= {"units", "activation", "use_bias"}


def test_backward_matches_formulas(float64, kernel_path):
    x = np.random.default_rng(2).standard_normal((4, 6))
    dy = np.random.default_rng(3).standard_normal((4, 3))
    layer = make_dense(6, 3)
    layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.grads["kernel"], x.T @ dy, rtol=1e-14)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(dx, dy @ layer.params["kernel"].T, rtol=1e-14)
    layer.forward(x, training=True)
    assert layer.backward(dy, input_grad=False) is None


def test_relu_backward_masks_inactive_units(float64, kernel_path):
    layer = make_dense(2, 2, activation="relu", use_bias=False)
    layer.params["kernel"] = np.array([[1.0, -1.0], [0.0, 0.0]])
    layer.forward(np.array([[2.0, 5.0]]))  # pre-activations (2, -2)
    dx = layer.backward(np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(layer.grads["kernel"], [[2.0, 0.0], [5.0, 0.0]])
    np.testing.assert_array_equal(dx, [[1.0, 0.0]])


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("d_in", "units"), [(1, 1), (7, 3), (12, 10)])
def test_gradcheck(d_in, units, activation, use_bias, float64, backend_name, kernel_path):
    x = tinycnn.to_backend(np.random.default_rng(4).standard_normal((5, d_in)))
    layer = make_dense(d_in, units, activation, use_bias, seed=d_in)
    if activation == "relu":
        # no pre-activation within reach of the step (|dz| <= h * max(|x|, |w|, 1))
        layer.activation = None
        z = tinycnn.to_numpy(layer.forward(x))
        layer.activation = "relu"
        assert float(abs(z).min()) > 1e-6 * max(1.0, float(abs(tinycnn.to_numpy(x)).max()))
    report = tinycnn.gradcheck(layer, x)
    print(report)
    assert [r.name for r in report.results] == ["x", "kernel"] + (["bias"] if use_bias else [])
    assert report.max_rel_error < 1e-6, str(report)
