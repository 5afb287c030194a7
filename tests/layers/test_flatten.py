"""Flatten: Keras' (H, W, C) row-major order, gradient reshaped back."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Flatten


def test_order_is_row_major_over_h_w_c(backend_name):
    x = np.arange(2 * 3 * 2 * 4, dtype="float32").reshape(2, 3, 2, 4)
    y = tinycnn.to_numpy(Flatten().forward(tinycnn.to_backend(x)))
    assert y.shape == (2, 24)
    # element (h, w, c) of a sample lands at h * W * C + w * C + c (channels fastest)
    assert y[1, 1 * 2 * 4 + 0 * 4 + 3] == x[1, 1, 0, 3]
    np.testing.assert_array_equal(y, x.reshape(2, -1))


@pytest.mark.parametrize(("shape", "out"), [((5, 5, 64), (1600,)), ((3, 4), (12,)), ((7,), (7,))])
def test_output_shape(shape, out):
    layer = Flatten()
    assert layer.compute_output_shape(shape) == out
    assert layer.forward(np.zeros((2, *shape), dtype="float32")).shape == (2, *out)
    assert layer.count_params() == 0


def test_backward_restores_the_input_shape():
    layer = Flatten()
    x = np.zeros((2, 3, 4, 5), dtype="float32")
    layer.forward(x)
    dy = np.arange(120, dtype="float32").reshape(2, 60)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy.reshape(2, 3, 4, 5))
    assert layer.backward(dy, input_grad=False) is None


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (3, 5)])
def test_gradcheck(shape, float64, backend_name):
    x = tinycnn.to_backend(np.random.default_rng(0).standard_normal(shape))
    report = tinycnn.gradcheck(Flatten(name="flatten"), x)
    print(report)
    assert report.max_rel_error < 1e-6, str(report)
