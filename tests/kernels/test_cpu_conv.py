"""The blocked, batch-split CPU convolution (cpu_conv.py) agrees with the reference."""

import threading

import numba
import numpy as np
import pytest

from tinycnn import gradcheck, kernels
from tinycnn.kernels import reference
from tinycnn.layers import Conv2D

cpu_conv = pytest.importorskip(
    "tinycnn.kernels.cpu_conv", reason="numba or threadpoolctl is not installed"
)
threadpoolctl = pytest.importorskip("threadpoolctl")

CASES = [
    # x shape, kernel (kh, kw), stride, relu, bias
    ((7, 13, 13, 8), (3, 3), 1, True, True),  # the seed network's conv2, smaller
    ((5, 9, 8, 3), (2, 3), 2, False, True),
    ((3, 6, 6, 2), (3, 3), 1, True, False),
    ((1, 5, 5, 4), (5, 5), 1, False, False),  # one output pixel, one image
]


@pytest.fixture(params=["1 image per block", "default blocks"])
def block_bytes(request, monkeypatch):
    """Run each test with tiny blocks (many blocks per thread) and the default."""
    if request.param == "1 image per block":
        monkeypatch.setattr(cpu_conv, "BLOCK_BYTES", 1)
        monkeypatch.setattr(cpu_conv, "WINOGRAD_BLOCK_BYTES", 1)
    return cpu_conv.BLOCK_BYTES


@pytest.fixture(params=["im2col", "winograd"])
def algorithm(request, monkeypatch):
    """Run each test with im2col only, and with Winograd for every 3x3 convolution it
    can do (whatever the channel count; the others still go through im2col)."""
    min_channels = 1 if request.param == "winograd" else 10**9
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", min_channels)
    return request.param


@pytest.fixture(params=[1, 2])
def threads(request):
    """numba's thread count decides how many shares the batch is split into."""
    if request.param > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba was started with fewer threads")
    previous = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(previous)


def assert_gradients_agree(fast, ref, dtype, tol):
    """(dkernel, dbias, dx) of the fast path against the reference's; None must match None."""
    for got, want in zip(fast, ref, strict=True):
        if want is None:
            assert got is None
        else:
            assert got.shape == want.shape and got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=10 * tol, atol=10 * tol)


def _case(shape, ksize, relu, bias, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    kernel = (0.3 * rng.standard_normal((*ksize, shape[3], 6))).astype(dtype)
    b = rng.standard_normal(6).astype(dtype) if bias else None
    return rng, x, kernel, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,ksize,stride,relu,bias", CASES)
def test_forward_and_backward_match_reference(
    shape, ksize, stride, relu, bias, dtype, block_bytes, threads, algorithm
):
    rng, x, kernel, b = _case(shape, ksize, relu, bias, dtype)
    y = cpu_conv.conv2d_forward(x, kernel, b, relu, stride)
    ref_y = reference.conv2d_forward(x, kernel, b, relu, stride)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref_y, rtol=tol, atol=tol)
    assert y.shape == ref_y.shape and y.dtype == dtype

    dy = rng.standard_normal(y.shape).astype(dtype)
    for input_grad in (True, False):
        fast = cpu_conv.conv2d_backward(x, kernel, ref_y, dy, relu, bias, stride, input_grad)
        ref = reference.conv2d_backward(x, kernel, ref_y, dy, relu, bias, stride, input_grad)
        assert_gradients_agree(fast, ref, dtype, tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize(
    "shape,filters,pool,bias",
    [
        ((3, 10, 10, 1), 5, 2, True),  # like the seed network's first pair
        ((4, 13, 13, 8), 6, 2, True),  # like its second: 11x11 -> 5x5 leaves a row uncovered
        ((2, 11, 9, 3), 4, 2, False),
        ((2, 9, 9, 2), 3, 3, True),
    ],
)
def test_fused_conv_relu_pool_matches_reference(
    shape, filters, pool, bias, input_grad, dtype, block_bytes, threads, algorithm
):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    kernel = rng.standard_normal((3, 3, shape[3], filters)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype) if bias else None
    out, arg = cpu_conv.conv_relu_pool_forward(x, kernel, b, pool, pool)
    ref_out, ref_arg = reference.conv_relu_pool_forward(x, kernel, b, pool, pool)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    np.testing.assert_array_equal(arg[ref_out > 0], ref_arg[ref_out > 0])
    dy = rng.standard_normal(out.shape).astype(dtype)
    fast = cpu_conv.conv_relu_pool_backward(x, kernel, dy, out, arg, pool, pool, input_grad)
    ref = reference.conv_relu_pool_backward(x, kernel, dy, ref_out, ref_arg, pool, pool, input_grad)
    assert_gradients_agree(fast, ref, dtype, tol)


def test_blas_thread_count_is_restored_even_after_an_error(threads, monkeypatch):
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    before = [lib.num_threads for lib in controller.lib_controllers]
    _, x, kernel, b = _case((4, 6, 6, 2), (3, 3), True, True, np.float32)
    cpu_conv.conv2d_forward(x, kernel, b, True, 1)
    assert [lib.num_threads for lib in controller.lib_controllers] == before

    def broken(*args):
        raise ValueError("a kernel failed")

    monkeypatch.setattr(cpu_conv, "_bias_relu", broken)
    with pytest.raises(ValueError, match="a kernel failed"):
        cpu_conv.conv2d_forward(x, kernel, b, True, 1)
    assert [lib.num_threads for lib in controller.lib_controllers] == before


def test_shares_run_on_separate_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    seen = []
    try:
        shares = cpu_conv._split_batch(lambda a, b: seen.append(threading.get_ident()) or (a, b), 5)
    finally:
        numba.set_num_threads(previous)
    assert shares == [(0, 2), (2, 5)]  # contiguous, covering every image once, in order
    assert len(set(seen)) == 2


def test_conv2d_layer_uses_it_and_passes_gradient_check():
    """Conv2D on float64 NumPy goes through cpu_conv; its gradients are still exact."""
    assert kernels.is_fast(np.zeros(1))
    layer = Conv2D(3, 3, strides=2, padding="same", activation="relu")
    x = np.random.default_rng(4).standard_normal((3, 7, 6, 2))
    report = gradcheck(layer, x, h=1e-4, seed=5)  # h: see tests/layers/test_conv2d.py
    assert report.max_rel_error < 1e-7, report


def test_winograd_goes_where_it_pays():
    """The seed network's second convolution (64 channels in) uses Winograd; its first
    (1 channel in) and any convolution it cannot do (odd output, stride 2) use im2col."""
    x2, k2 = np.zeros((2, 13, 13, 64), np.float32), np.zeros((3, 3, 64, 64), np.float32)
    x1, k1 = np.zeros((2, 28, 28, 1), np.float32), np.zeros((3, 3, 1, 64), np.float32)
    assert isinstance(cpu_conv._linear_part(x2, k2, 1, (10, 10)), cpu_conv._WinogradConv)
    assert isinstance(cpu_conv._linear_part(x2, k2, 1, (11, 11)), cpu_conv._Im2colConv)
    assert isinstance(cpu_conv._linear_part(x2, k2, 2, (6, 6)), cpu_conv._Im2colConv)
    assert isinstance(cpu_conv._linear_part(x1, k1, 1, (26, 26)), cpu_conv._Im2colConv)
    assert cpu_conv.conv_algorithm(k2.shape, 1, (10, 10)) == "winograd"
    assert cpu_conv.conv_algorithm(k1.shape, 1, (26, 26)) == "im2col"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_network_second_pair_by_winograd(dtype):
    """At full size (64 channels in and out, Glorot-sized weights), Winograd's results
    stay within 1e-5 (float32) or 1e-12 (float64) of the reference's forward, and its
    gradients within 1e-4 / 1e-11 of each array's largest value."""
    rng = np.random.default_rng(7)
    x = rng.random((6, 13, 13, 64)).astype(dtype)
    kernel = rng.uniform(-0.07, 0.07, (3, 3, 64, 64)).astype(dtype)  # Glorot: +-sqrt(6/1152)
    b = (0.1 * rng.standard_normal(64)).astype(dtype)
    out, arg = cpu_conv.conv_relu_pool_forward(x, kernel, b, 2, 2)
    ref_out, ref_arg = reference.conv_relu_pool_forward(x, kernel, b, 2, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    dy = rng.standard_normal(out.shape).astype(dtype)
    fast = cpu_conv.conv_relu_pool_backward(x, kernel, dy, out, arg, 2, 2, True)
    ref = reference.conv_relu_pool_backward(x, kernel, dy, ref_out, ref_arg, 2, 2, True)
    for got, want in zip(fast, ref, strict=True):  # relative to each array's own scale
        scale = np.abs(want).max()
        np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=10 * tol)


def test_winograd_conv2d_layer_passes_gradient_check(monkeypatch, float64):
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 1)
    layer = Conv2D(3, 3, activation="relu")
    x = np.random.default_rng(8).standard_normal((2, 8, 6, 2))  # output 6x4: whole tiles
    layer.build(x.shape[1:], rng=9)  # seeded: a ReLU kink within h of x would fail it
    assert isinstance(cpu_conv._linear_part(x, layer.params["kernel"], 1, (6, 4)),
                      cpu_conv._WinogradConv)  # fmt: skip
    report = gradcheck(layer, x, h=1e-4, seed=9)
    assert report.max_rel_error < 1e-7, report
