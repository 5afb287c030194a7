"""MaxPooling2D: forward against naive loops, gradient routing, gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn import kernels
from tinycnn.layers import MaxPool2D, MaxPooling2D


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def same_pads(size, pool, stride):
    """TensorFlow's 'same' rule: ceil(size / stride) outputs, the odd pixel at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def naive_maxpool(x, pool, stride, padding="valid"):
    """Max over every window, with explicit loops; 'same' pads with -inf (TF's rule).
    ``pool`` and ``stride``: an int or (rows, columns)."""
    (ph, pw), (sh, sw) = pair(pool), pair(stride)
    n, h, w, c = x.shape
    if padding == "same":
        pads = [same_pads(h, ph, sh), same_pads(w, pw, sw)]
        x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-np.inf)
    ho = (x.shape[1] - ph) // sh + 1
    wo = (x.shape[2] - pw) // sw + 1
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    y[b, i, j, ch] = x[b, i * sh : i * sh + ph, j * sw : j * sw + pw, ch].max()
    return y


# (H, W) even and odd; (pool, stride): non-overlapping, overlapping (stride 1), pool 3
# stride 2, and windows that are not square (a window offset is i * pw + j, not i * ph + j),
# tiling the image or not.
SIZES = [(6, 6), (7, 5)]
WINDOWS = [(2, 2), (2, 1), (3, 2), ((2, 3), (2, 3)), ((3, 2), (1, 2)), ((2, 3), (2, 1))]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("pool", "stride"), WINDOWS)
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_forward_matches_naive_loops(
    h, w, pool, stride, padding, tie_free, float64, backend_name, kernel_path
):
    x = tie_free((2, h, w, 3), seed=h * w)
    layer = MaxPooling2D(pool, strides=stride, padding=padding)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x)))
    expected = naive_maxpool(x, pool, stride, padding)
    assert y.shape == expected.shape == (2, *layer.compute_output_shape((h, w, 3)))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "expected"),
    [
        ((26, 26, 64), {}, (13, 13, 64)),
        ((11, 11, 64), {}, (5, 5, 64)),  # floor: the last partial window is dropped
        ((11, 11, 2), {"padding": "same"}, (6, 6, 2)),  # ceil with 'same'
        ((7, 5, 1), {"pool_size": 3, "strides": 2}, (3, 2, 1)),
        ((7, 5, 1), {"pool_size": 3, "strides": 2, "padding": "same"}, (4, 3, 1)),
        ((6, 6, 1), {"pool_size": 2, "strides": 1}, (5, 5, 1)),
        ((6, 9, 1), {"pool_size": (2, 3)}, (3, 3, 1)),
    ],
)
def test_output_shape(input_shape, kwargs, expected):
    layer = MaxPooling2D(**kwargs)
    assert layer.compute_output_shape(input_shape) == expected
    assert layer.forward(np.zeros((1, *input_shape), dtype="float32")).shape == (1, *expected)


def test_default_strides_equal_pool_size_and_alias():
    assert MaxPooling2D(3).strides == (3, 3)
    assert MaxPool2D is MaxPooling2D
    assert MaxPooling2D((2, 3), strides=(1, 2)).get_config()["strides"] == [1, 2]


def test_known_values():
    x = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 7, 8], [9, 0, 6, 2]], dtype="float32")
    y = MaxPooling2D(2).forward(x.reshape(1, 4, 4, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 5], [9, 8]])


def test_same_padding_never_picks_the_padding():
    # All-negative input: zero padding would win a max, -inf padding never does.
    x = -1.0 - np.arange(25, dtype="float32").reshape(1, 5, 5, 1)
    y = MaxPooling2D(2, padding="same").forward(x)
    assert y.shape == (1, 3, 3, 1)
    assert (y < 0).all()
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3, -5], [-11, -13, -15], [-21, -23, -25]])


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("pool", "stride"), WINDOWS)
def test_backward_routes_each_gradient_to_its_maximum(
    pool, stride, padding, tie_free, float64, kernel_path
):
    x = tie_free((2, 7, 5, 2), seed=3)
    layer = MaxPooling2D(pool, strides=stride, padding=padding)
    y = layer.forward(x)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    dx = layer.backward(dy)
    # naive: for every window find its maximum and add dy there (windows may overlap)
    expected = np.zeros_like(x)
    (ph, pw), (sh, sw) = pair(pool), pair(stride)
    if padding == "same":
        top, left = same_pads(7, ph, sh)[0], same_pads(5, pw, sw)[0]
    else:
        top = left = 0
    for b in range(2):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                for c in range(2):
                    r0, c0 = i * sh - top, j * sw - left
                    rows = slice(max(r0, 0), r0 + ph)
                    cols = slice(max(c0, 0), c0 + pw)
                    window = x[b, rows, cols, c]
                    a, k = np.unravel_index(window.argmax(), window.shape)
                    expected[b, rows.start + a, cols.start + k, c] += dy[b, i, j, c]
    np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-15)  # overlaps add in any order
    assert dx.shape == x.shape


def test_tie_goes_to_the_first_maximum(kernel_path):
    # As in Keras and PyTorch: in a tied window the first element (row-major) gets the gradient.
    layer = MaxPooling2D(2)
    layer.forward(np.ones((1, 2, 2, 1), dtype="float32"), training=True)
    dx = layer.backward(np.full((1, 1, 1, 1), 3.0, dtype="float32"))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3, 0], [0, 0]])


def test_argmax_offsets_and_dtype(kernel_path):
    x = np.array([[1, 2], [4, 3]], dtype="float64").reshape(1, 2, 2, 1)
    y, argmax = kernels.maxpool_forward(x, 2, 2, 2, 2)
    assert float(y[0, 0, 0, 0]) == 4.0 and int(argmax[0, 0, 0, 0]) == 2  # offset i * pw + j
    assert argmax.dtype == np.int8
    # a 2x3 window: offset i * pw + j = 1 * 3 + 1 for row 1, column 1 (i * ph + j would be 3)
    x = np.array([[1, 2, 3], [4, 9, 5]], dtype="float64").reshape(1, 2, 3, 1)
    y, argmax = kernels.maxpool_forward(x, 2, 3, 2, 3)
    assert float(y.item()) == 9.0 and int(argmax.item()) == 4
    dx = kernels.maxpool_backward(np.ones((1, 1, 1, 1)), argmax, x.shape, 2, 3, 2, 3)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("pool", "stride"), WINDOWS)
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_gradcheck(h, w, pool, stride, padding, tie_free, float64, backend_name, kernel_path):
    # Tie-free input (shuffled linspace): neighbours differ by 2 / size ~ 1e-2, far beyond the
    # step h, so no perturbation changes which element wins a window.
    x = tinycnn.to_backend(tie_free((2, h, w, 3), seed=h + w))
    layer = MaxPooling2D(pool, strides=stride, padding=padding)
    layer.name = "max_pooling2d"
    report = tinycnn.gradcheck(layer, x)
    print(report)
    assert [r.name for r in report.results] == ["x"]
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.torch
@pytest.mark.parametrize(("pool", "stride"), [(2, 2), (2, 1), ((2, 3), (2, 3)), ((3, 2), (1, 2))])
@pytest.mark.parametrize("values", ["nan-inf", "ties"])
def test_nan_inf_and_ties_as_pytorch(pool, stride, values, float64, kernel_path):
    """NaN, +-inf and ties, forward and backward, as torch's max_pool2d: a window with
    a NaN pools to NaN and its gradient goes to the (last) NaN; a tie's to the first
    maximum; infs are numbers."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    if values == "ties":
        x = rng.integers(0, 3, (2, 7, 8, 3)).astype("float64")  # most windows hold a tie
    else:
        x = rng.standard_normal((2, 7, 8, 3))
        flat = x.reshape(-1)
        spots = rng.choice(flat.size, 30, replace=False)
        flat[spots[:10]], flat[spots[10:20]], flat[spots[20:]] = np.nan, np.inf, -np.inf
    layer = MaxPooling2D(pool, strides=stride)
    y = layer.forward(x, training=True, check_finite=False)  # the check would refuse NaN
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, pair(pool), pair(stride))
    (yt * torch.tensor(dy.transpose(0, 3, 1, 2))).sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-15)
    if values == "nan-inf":
        assert np.isnan(y).any() and np.isinf(y).any()
