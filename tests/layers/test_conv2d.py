"""Conv2D: forward against a naive convolution, im2col/col2im, gradient checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tinycnn
from tinycnn import kernels
from tinycnn.conv_arithmetic import same_padding
from tinycnn.layers import Conv2D


# ---- reference ---------------------------------------------------------------------------
def tf_same_pads(size, k, stride):
    """TensorFlow's 'same' rule, written out independently of tinycnn: the output has
    ceil(size / stride) pixels; the total padding is split with the odd pixel at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def naive_conv2d(x, kernel, bias=None, stride=1, padding="valid", relu=False):
    """y[n, i, j, f] = sum_{a, b, c} xpad[n, i*s + a, j*s + b, c] * kernel[a, b, c, f] + bias[f]."""
    kh, kw, _, f = kernel.shape
    n, h, w, _ = x.shape
    if padding == "same":
        (pt, pb), (pl, pr) = tf_same_pads(h, kh, stride), tf_same_pads(w, kw, stride)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    y = np.zeros((n, ho, wo, f), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            y[:, i, j, :] = np.einsum("nabc,abcf->nf", window, kernel)
    if bias is not None:
        y += bias
    return np.maximum(y, 0) if relu else y


def make_conv(x_shape, filters, k, stride, padding, use_bias=True, activation=None, seed=0):
    """A built float64 Conv2D with random (non-zero) bias, so the bias path is exercised."""
    layer = Conv2D(
        filters, k, strides=stride, padding=padding, activation=activation, use_bias=use_bias
    )
    layer.name = "conv2d"
    layer.build(x_shape[1:], rng=seed)
    if use_bias:
        bias = np.random.default_rng(seed + 100).uniform(-0.5, 0.5, filters)
        layer.params["bias"] = tinycnn.to_backend(bias.astype(layer.dtype))
    return layer


GRID = list(
    itertools.product(
        ["valid", "same"],  # padding
        [1, 2],  # stride
        [1, 3],  # C_in
        [2, 5],  # F
        [3, 2],  # kernel
    )
)


# ---- forward ------------------------------------------------------------------------------
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("padding", "stride", "c_in", "filters", "k"), GRID)
def test_forward_matches_naive_convolution(
    padding, stride, c_in, filters, k, activation, use_bias, float64, backend_name, kernel_path
):
    # 7 x 6: odd and even sizes, so 'same' with stride 2 pads asymmetrically in one axis.
    x = np.random.default_rng(1).standard_normal((2, 7, 6, c_in))
    layer = make_conv(x.shape, filters, k, stride, padding, use_bias, activation)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x)))
    w = tinycnn.to_numpy(layer.params["kernel"])
    b = tinycnn.to_numpy(layer.params["bias"]) if use_bias else None
    expected = naive_conv2d(x, w, b, stride, padding, relu=activation == "relu")
    assert y.shape == expected.shape == (2, *layer.compute_output_shape((7, 6, c_in)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)


def test_forward_float32_matches_float64_reference():
    x = np.random.default_rng(2).standard_normal((3, 9, 8, 3)).astype("float32")
    layer = make_conv(x.shape, 4, 3, 2, "same")
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.params["kernel"].dtype == np.float32
    expected = naive_conv2d(
        x.astype("float64"),
        layer.params["kernel"].astype("float64"),
        layer.params["bias"].astype("float64"),
        2,
        "same",
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "k", "stride", "expected"),
    [
        (28, 3, 1, (1, 1)),
        (7, 2, 1, (0, 1)),  # total 1: the extra pixel goes bottom/right (TF), not top/left
        (6, 3, 2, (0, 1)),  # out 3, total (3-1)*2+3-6 = 1
        (7, 3, 2, (1, 1)),  # out 4, total 2
        (5, 4, 1, (1, 2)),
        (6, 2, 2, (0, 0)),
        (5, 1, 3, (0, 0)),
    ],
)
def test_same_padding_follows_tensorflow(size, k, stride, expected):
    assert same_padding(size, k, stride) == expected == tf_same_pads(size, k, stride)


def test_same_padding_puts_the_extra_pixel_bottom_right():
    # A 2x2 kernel whose only non-zero tap is the top-left one copies the top-left pixel of
    # each window: with TF's padding (0 before, 1 after) the output is exactly the input.
    # Padding on the top/left instead would shift the image by one pixel.
    x = np.arange(1.0, 21.0).reshape(1, 4, 5, 1)
    layer = Conv2D(1, 2, padding="same", use_bias=False)
    layer.build(x.shape[1:])
    tap = np.zeros((2, 2, 1, 1), dtype="float32")
    tap[0, 0] = 1.0
    layer.params["kernel"] = tap
    np.testing.assert_array_equal(layer.forward(x), x)
    # The bottom-right tap reads the next pixel, and the zero padding after the last one.
    tap = np.zeros((2, 2, 1, 1), dtype="float32")
    tap[1, 1] = 1.0
    layer.params["kernel"] = tap
    expected = np.zeros_like(x)
    expected[0, :3, :4, 0] = x[0, 1:, 1:, 0]
    np.testing.assert_array_equal(layer.forward(x), expected)


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "expected"),
    [
        ((28, 28, 1), {"filters": 64, "kernel_size": 3}, (26, 26, 64)),
        ((13, 13, 64), {"filters": 64, "kernel_size": 3}, (11, 11, 64)),
        ((28, 28, 1), {"filters": 8, "kernel_size": 3, "padding": "same"}, (28, 28, 8)),
        ((7, 6, 3), {"filters": 2, "kernel_size": 3, "strides": 2}, (3, 2, 2)),
        ((7, 6, 3), {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (4, 3, 2)),
        ((5, 9, 1), {"filters": 1, "kernel_size": (2, 4)}, (4, 6, 1)),
    ],
)
def test_output_shape(input_shape, kwargs, expected):
    layer = Conv2D(**kwargs)
    assert layer.compute_output_shape(input_shape) == expected
    y = layer.forward(np.zeros((2, *input_shape), dtype="float32"))
    assert y.shape == (2, *expected)


def test_parameter_shapes_and_count():
    layer = Conv2D(64, 3)
    layer.build((13, 13, 64), rng=0)
    assert layer.params["kernel"].shape == (3, 3, 64, 64)
    assert layer.params["bias"].shape == (64,)
    assert layer.count_params() == 36928
    no_bias = Conv2D(5, (2, 3), use_bias=False)
    no_bias.build((8, 8, 3))
    assert set(no_bias.params) == {"kernel"} and no_bias.count_params() == 2 * 3 * 3 * 5


def test_relu_output_is_max_of_linear_output():
    x = np.random.default_rng(3).standard_normal((2, 6, 6, 2))
    with tinycnn.use_floatx("float64"):
        linear = make_conv(x.shape, 3, 3, 1, "valid")
        relu = make_conv(x.shape, 3, 3, 1, "valid", activation="relu")
    z = linear.forward(x)
    np.testing.assert_array_equal(relu.forward(x), np.maximum(z, 0))
    assert (z < 0).any()  # the test means something


def test_forward_does_not_modify_input():
    x = np.random.default_rng(4).standard_normal((2, 5, 5, 1)).astype("float32")
    before = x.copy()
    layer = Conv2D(2, 3, padding="same", activation="relu")
    layer.forward(x, training=True)
    layer.backward(np.ones((2, 5, 5, 2), dtype="float32"))
    np.testing.assert_array_equal(x, before)


def test_backward_without_input_grad_still_fills_parameter_grads(float64):
    x = np.random.default_rng(5).standard_normal((2, 6, 6, 3))
    layer = make_conv(x.shape, 4, 3, 1, "valid")
    dy = np.random.default_rng(6).standard_normal((2, 4, 4, 4))
    layer.forward(x, training=True)
    full = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x, training=True)
    assert layer.backward(dy, input_grad=False) is None
    for key in grads:
        np.testing.assert_array_equal(layer.grads[key], grads[key])
    assert full.shape == x.shape


def test_backward_matches_explicit_formulas(float64, kernel_path):
    # dkernel[a, b, c, f] = sum_{n, i, j} x[n, i + a, j + b, c] dy[n, i, j, f]; dbias = sum dy.
    x = np.random.default_rng(7).standard_normal((2, 6, 5, 2))
    layer = make_conv(x.shape, 3, 3, 1, "valid")
    dy = np.random.default_rng(8).standard_normal((2, 4, 3, 3))
    layer.forward(x)
    dx = layer.backward(dy)
    dkernel = np.zeros((3, 3, 2, 3))
    for a in range(3):
        for b in range(3):
            dkernel[a, b] = np.einsum("nijc,nijf->cf", x[:, a : a + 4, b : b + 3], dy)
    np.testing.assert_allclose(layer.grads["kernel"], dkernel, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=(0, 1, 2)), rtol=1e-12)
    # dx is a "full" correlation with the flipped kernel
    kernel = layer.params["kernel"]
    dx_ref = np.zeros_like(x)
    for i in range(4):
        for j in range(3):
            dx_ref[:, i : i + 3, j : j + 3] += np.einsum("nf,abcf->nabc", dy[:, i, j], kernel)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-13)


def test_config_round_trip():
    layer = Conv2D(6, (3, 2), strides=2, padding="same", activation="relu", use_bias=False)
    layer.name = "conv2d_3"
    clone = tinycnn.layers.from_config("Conv2D", layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.kernel_size == (3, 2) and clone.strides == (2, 2) and clone.padding == "same"


# ---- im2col / col2im ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "kh", "kw", "stride"),
    [
        ((2, 5, 5, 3), 3, 3, 1),
        ((1, 7, 6, 2), 3, 2, 2),
        ((3, 4, 9, 1), 2, 4, 3),
        ((2, 6, 6, 4), 1, 1, 1),
    ],
)
def test_im2col_matches_naive_patches(shape, kh, kw, stride, backend_name):
    x = np.random.default_rng(9).standard_normal(shape)
    cols = tinycnn.to_numpy(kernels.im2col(tinycnn.to_backend(x), kh, kw, stride))
    n, h, w, c = shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    rows = [
        x[b, i * stride : i * stride + kh, j * stride : j * stride + kw, :].reshape(-1)
        for b in range(n)
        for i in range(ho)
        for j in range(wo)
    ]
    np.testing.assert_array_equal(cols, np.stack(rows))


@pytest.mark.parametrize(
    ("shape", "kh", "kw", "stride"),
    [
        ((2, 5, 5, 3), 3, 3, 1),
        ((1, 7, 6, 2), 3, 2, 2),
        ((3, 4, 9, 1), 2, 4, 3),
        ((2, 8, 7, 2), 3, 3, 2),
    ],
)
def test_col2im_is_the_adjoint_of_im2col(shape, kh, kw, stride, backend_name):
    # <col2im(A), X> == <A, im2col(X)> for all A, X: col2im is im2col's transpose.
    r = np.random.default_rng(10)
    x = r.standard_normal(shape)
    n, h, w, c = shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    a = r.standard_normal((n * ho * wo, kh * kw * c))
    back = tinycnn.to_numpy(kernels.col2im(tinycnn.to_backend(a), shape, kh, kw, stride))
    cols = tinycnn.to_numpy(kernels.im2col(tinycnn.to_backend(x), kh, kw, stride))
    lhs, rhs = float(np.vdot(back, x)), float(np.vdot(a, cols))
    assert back.shape == shape
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_sums_overlapping_patches():
    # With a 2x2 window and stride 1 on a 3x3 image, the centre pixel is in all 4 patches.
    ones = np.ones((4, 4))
    dx = kernels.col2im(ones, (1, 3, 3, 1), 2, 2, 1)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# ---- gradient checks (float64) --------------------------------------------------------------
# Step h = 1e-4 rather than gradcheck's default 1e-6: Conv2D is affine in x, in the kernel and
# in the bias separately, so central differences have no truncation error at all and the only
# error is rounding, about 1e-16 * |L| / h, which a larger h shrinks (at h = 1e-6 it reaches
# 1e-6 relative on the few gradient entries that are small by cancellation). The one thing a
# large h can break is a ReLU kink within reach, which the test rules out explicitly.
H_CONV = 1e-4


def assert_no_relu_kink_within_reach(layer, x, h):
    """Moving one element of x, the kernel or the bias by h moves each pre-activation by at
    most h * max(|w|, |x|, 1); no pre-activation may be that close to 0."""
    activation, layer.activation = layer.activation, None
    z = tinycnn.to_numpy(layer.forward(x))
    layer.activation = activation
    reach = h * max(
        1.0,
        float(abs(tinycnn.to_numpy(x)).max()),
        float(abs(tinycnn.to_numpy(layer.params["kernel"])).max()),
    )
    assert float(abs(z).min()) > reach, "a ReLU kink lies within the step; change the data"


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("padding", "stride", "c_in", "filters", "k"), GRID)
def test_gradcheck(
    padding, stride, c_in, filters, k, activation, use_bias, float64, backend_name, kernel_path
):
    x = tinycnn.to_backend(np.random.default_rng(11).standard_normal((2, 6, 5, c_in)))
    layer = make_conv(x.shape, filters, k, stride, padding, use_bias, activation)
    if activation == "relu":
        assert_no_relu_kink_within_reach(layer, x, H_CONV)
    report = tinycnn.gradcheck(layer, x, h=H_CONV)
    print(report)
    assert [r.name for r in report.results] == ["x", "kernel"] + (["bias"] if use_bias else [])
    assert report.max_rel_error < 1e-6, str(report)
