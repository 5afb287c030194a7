"""ReLU layer and the activation= option."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import ReLU
from tinycnn.layers.activations import check_activation


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 4, 3), (3,)])
def test_forward_matches_maximum(shape, backend_name):
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    y = tinycnn.to_numpy(ReLU().forward(tinycnn.to_backend(x)))
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert y.dtype == np.float32


def test_forward_does_not_overwrite_its_input():
    x = np.array([[-1.0, 2.0, -3.0]], dtype="float32")
    before = x.copy()
    ReLU().forward(x)
    np.testing.assert_array_equal(x, before)


def test_backward_passes_gradient_where_active(float64):
    layer = ReLU()
    layer.forward(np.array([[-2.0, 0.5, 3.0, -0.1]]), training=True)
    np.testing.assert_array_equal(
        layer.backward(np.array([[10.0, 20.0, 30.0, 40.0]])), [[0, 20, 30, 0]]
    )
    assert layer.backward(np.ones((1, 4)), input_grad=False) is None


def test_has_no_parameters():
    layer = ReLU()
    layer.build((3, 3, 2))
    assert layer.params == {} and layer.count_params() == 0
    assert layer.compute_output_shape((3, 3, 2)) == (3, 3, 2)


@pytest.mark.parametrize("shape", [(4, 6), (2, 4, 3, 2)])
def test_gradcheck(shape, kink_free, float64, backend_name):
    # |x| >= 0.1: the step h = 1e-6 never crosses the kink at 0.
    x = tinycnn.to_backend(kink_free(shape, seed=len(shape)))
    layer = ReLU(name="re_lu")
    report = tinycnn.gradcheck(layer, x)
    print(report)
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize(
    ("given", "normalised"), [(None, None), ("linear", None), ("relu", "relu")]
)
def test_activation_names(given, normalised):
    assert check_activation(given, "Dense") == normalised


@pytest.mark.parametrize("bad", ["swish", "ReLU", "Softmax", 3])
def test_unknown_activation_is_rejected(bad):
    with pytest.raises(ValueError, match=r"Conv2D: unknown activation .*expected one of"):
        check_activation(bad, "Conv2D")
