"""Winograd's F(2x2, 3x3) (kernels/winograd.py): the identity, and the compiled
tile transforms against their readable matrix form."""

import numpy as np
import pytest

from tinycnn.kernels import reference

winograd = pytest.importorskip("tinycnn.kernels.winograd", reason="numba is not installed")
W = winograd


def tiles_of(x, th, tw):
    """The 4x4 input tiles, two pixels apart, of x (n, H, W, C): (n, th, tw, 4, 4, C)."""
    rows = [np.stack([x[:, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4] for j in range(tw)], 1)
            for i in range(th)]  # fmt: skip
    return np.stack(rows, 1)


def tiles_of_2x2(y):
    """The 2x2 output tiles of y (n, 2*th, 2*tw, C): (n, th, tw, 2, 2, C)."""
    n, h, w, c = y.shape
    return y.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)


def as_positions(tiles):
    """(n, th, tw, 4, 4, C) -> (16, n*th*tw, C): the layout of the compiled kernels."""
    c = tiles.shape[-1]
    return tiles.reshape(-1, 16, c).transpose(1, 0, 2)


def test_one_tile_is_exactly_a_3x3_convolution():
    """Y = AT [(G g G^T) * (BT d B)] A equals the direct 3x3 convolution of a 4x4 tile,
    bit for bit on small integers (G's halves are exact in binary)."""
    rng = np.random.default_rng(0)
    d = rng.integers(-9, 10, (4, 4)).astype(np.float64)
    g = rng.integers(-9, 10, (3, 3)).astype(np.float64)
    y = W.AT @ ((W.G @ g @ W.G.T) * (W.BT @ d @ W.BT.T)) @ W.AT.T
    direct = np.array([[(d[i : i + 3, j : j + 3] * g).sum() for j in range(2)] for i in range(2)])
    np.testing.assert_array_equal(y, direct)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_transforms_match_the_matrix_form(dtype):
    rng = np.random.default_rng(1)
    n, th, tw, c = 3, 2, 3, 5
    x = rng.standard_normal((n, 2 * th + 2, 2 * tw + 3, c)).astype(dtype)  # one spare column
    tol = 1e-6 if dtype == np.float32 else 1e-14

    v = np.empty((16, n * th * tw, c), dtype)
    W.input_tiles(x, th, tw, v)
    want = as_positions(W.tile_transform(W.BT, tiles_of(x, th, tw), W.BT))
    np.testing.assert_allclose(v, want, rtol=tol, atol=tol)

    m = rng.standard_normal((16, n * th * tw, c)).astype(dtype)
    y = np.empty((n, 2 * th, 2 * tw, c), dtype)
    W.output_tiles(m, y)
    m_tiles = m.transpose(1, 0, 2).reshape(n, th, tw, 4, 4, c)
    y_tiles = W.tile_transform(W.AT, m_tiles, W.AT)  # (n, th, tw, 2, 2, c)
    np.testing.assert_allclose(y, y_tiles.transpose(0, 1, 3, 2, 4, 5).reshape(y.shape), tol, tol)

    dm = np.empty((16, n * th * tw, c), dtype)
    W.output_grad_tiles(y, dm)
    want = as_positions(W.tile_transform(W.AT.T, tiles_of_2x2(y), W.AT.T))
    np.testing.assert_allclose(dm, want, rtol=tol, atol=tol)

    dx = np.full(x.shape, np.nan, dtype)  # every pixel must be written, if only with 0
    W.input_grad_tiles(m, th, tw, dx)
    want = np.zeros(x.shape)
    for t, (b, i, j) in enumerate(np.ndindex(n, th, tw)):  # add each tile BT^T dV BT back
        want[b, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += W.tile_transform(
            W.BT.T, m[:, t].reshape(4, 4, c), W.BT.T
        )
    np.testing.assert_allclose(dx, want, rtol=tol, atol=tol)


def test_kernel_transform_and_its_transpose():
    rng = np.random.default_rng(2)
    g = rng.standard_normal((3, 3, 4, 5))
    u = W.kernel_transform(g)
    np.testing.assert_allclose(u.reshape(4, 4, 4, 5), np.einsum("ia,abcf,jb->ijcf", W.G, g, W.G))
    du = rng.standard_normal((16, 4, 5))
    # kernel_grad is the adjoint of kernel_transform: <U(g), dU> = <g, kernel_grad(dU)>
    np.testing.assert_allclose((u * du).sum(), (g * W.kernel_grad(du)).sum(), rtol=1e-12)


def test_a_whole_convolution_and_its_gradients_match_im2col():
    """forward, dkernel and dx through transforms + 16 GEMMs equal the reference's."""
    rng = np.random.default_rng(3)
    n, c, f, th, tw = 2, 3, 4, 3, 2
    x = rng.standard_normal((n, 2 * th + 3, 2 * tw + 2, c))  # one row no tile reaches
    g = rng.standard_normal((3, 3, c, f))
    u = W.kernel_transform(g)
    v = np.empty((16, n * th * tw, c))
    W.input_tiles(x, th, tw, v)
    y = np.empty((n, 2 * th, 2 * tw, f))
    W.output_tiles(v @ u, y)
    ref_y = reference.conv2d_forward(x, g, None, stride=1, relu=False)
    np.testing.assert_allclose(y, ref_y[:, : 2 * th, : 2 * tw], rtol=1e-12, atol=1e-12)

    dy = rng.standard_normal(y.shape)
    dm = np.empty((16, n * th * tw, f))
    W.output_grad_tiles(dy, dm)
    dkernel = W.kernel_grad(v.transpose(0, 2, 1) @ dm)
    dx = np.empty(x.shape)
    W.input_grad_tiles(dm @ u.transpose(0, 2, 1), th, tw, dx)
    dz = np.zeros(ref_y.shape)
    dz[:, : 2 * th, : 2 * tw] = dy  # the outputs Winograd skipped get no gradient
    ref_dkernel, ref_dx = reference._conv2d_backward_linear(x, g, dz.reshape(-1, f), 1, True)
    np.testing.assert_allclose(dkernel, ref_dkernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kernel_shape,stride,out_hw,applies",
    [
        ((3, 3, 64, 64), 1, (10, 10), True),
        ((3, 3, 64, 64), 1, (11, 10), False),  # half a tile
        ((3, 3, 64, 64), 2, (10, 10), False),
        ((5, 5, 64, 64), 1, (10, 10), False),
        ((3, 3, 16, 64), 1, (10, 10), False),  # too few channels to pay for the transforms
    ],
)
def test_applies(kernel_shape, stride, out_hw, applies):
    assert W.applies(kernel_shape, stride, out_hw, channels_min=32) is applies


@pytest.mark.parametrize("hw", [(12, 13), (13, 12), (12, 12)])  # outputs 10x11, 11x10, 10x10
def test_conv2d_layer_with_half_a_tile_matches_reference(hw, monkeypatch, float64):
    """An output of odd width or odd height is not whole 2x2 tiles: it goes through
    im2col (Winograd would leave its last column or row unwritten), and the layer's
    numbers equal the reference kernels'."""
    from tinycnn import kernels
    from tinycnn.kernels import cpu_conv
    from tinycnn.layers import Conv2D

    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 1)  # Winograd for 3 channels too
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, *hw, 3))
    layer = Conv2D(4, 3, activation="relu")
    layer.build(x.shape[1:], rng=0)
    out_hw = (hw[0] - 2, hw[1] - 2)
    expected = "winograd" if out_hw == (10, 10) else "im2col"
    assert cpu_conv.conv_algorithm(layer.params["kernel"].shape, 1, out_hw) == expected
    dy = rng.standard_normal((2, *out_hw, 4))
    results = []
    for fast in (True, False):
        with kernels.use_fast_kernels(fast):
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
            results.append([y, dx, layer.grads["kernel"], layer.grads["bias"]])
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_stays_where_im2col_has_it():
    """The transforms skip the matrices' zeros, so a NaN pixel reaches the outputs
    whose 3x3 window holds it, and a NaN weight its filter's outputs, as in im2col.
    (An inf may differ: where im2col adds +inf and -inf once, the transforms may
    subtract infs too; either way the output is not finite.)"""
    rng = np.random.default_rng(5)
    n, c, f, th, tw = 2, 3, 4, 3, 3
    x = rng.standard_normal((n, 2 * th + 2, 2 * tw + 2, c))
    g = rng.standard_normal((3, 3, c, f))
    x[0, 0, 0, 0] = x[0, 3, 4, 1] = x[1, 5, 2, 2] = x[1, 7, 7, 0] = np.nan  # each tile row
    g[2, 0, 1, 3] = np.nan
    u = W.kernel_transform(g)
    assert np.isnan(u[:, :, 3]).any() and not np.isnan(np.delete(u, 3, axis=2)).any()
    v = np.empty((16, n * th * tw, c))
    W.input_tiles(x, th, tw, v)
    y = np.empty((n, 2 * th, 2 * tw, f))
    W.output_tiles(v @ u, y)
    ref_y = reference.conv2d_forward(x, g, None, stride=1, relu=False)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref_y))
    assert 0 < np.isnan(y[..., :3]).sum() < y[..., :3].size and np.isnan(y[..., 3]).all()
    finite = ~np.isnan(ref_y)
    np.testing.assert_allclose(y[finite], ref_y[finite], rtol=1e-12, atol=1e-12)
