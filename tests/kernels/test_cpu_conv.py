"""The blocked, batch-split CPU convolution (cpu_conv.py) agrees with the reference."""

import os
import subprocess
import sys
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

#: conv2d_backward's flags with everything on: stride 1, ReLU, a bias, dx.
ALL_FLAGS = {"stride": 1, "relu": True, "with_bias": True, "input_grad": True}

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
    """numba's thread count decides how many threads take the batch's shares."""
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
    y = cpu_conv.conv2d_forward(x, kernel, b, stride=stride, relu=relu)
    ref_y = reference.conv2d_forward(x, kernel, b, stride=stride, relu=relu)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref_y, rtol=tol, atol=tol)
    assert y.shape == ref_y.shape and y.dtype == dtype

    dy = rng.standard_normal(y.shape).astype(dtype)
    for input_grad in (True, False):
        flags = {"stride": stride, "relu": relu, "with_bias": bias, "input_grad": input_grad}
        fast = cpu_conv.conv2d_backward(x, kernel, ref_y, dy, **flags)
        ref = reference.conv2d_backward(x, kernel, ref_y, dy, **flags)
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
    fast = cpu_conv.conv_relu_pool_backward(
        x, kernel, dy, out, arg, pool, pool, input_grad=input_grad
    )
    ref = reference.conv_relu_pool_backward(
        x, kernel, dy, ref_out, ref_arg, pool, pool, input_grad=input_grad
    )
    assert_gradients_agree(fast, ref, dtype, tol)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["kernel", "x"])
def test_nan_reaches_the_same_outputs_and_gradients(where, dtype, block_bytes, threads, algorithm):
    """One NaN in the kernel (or two in the images) makes the same outputs and gradients
    NaN as in the reference, in Conv2D and in the fused Conv+ReLU+pool: the ReLU keeps
    a NaN and every pooling window holding one pools to NaN (they once made it 0).
    (Winograd's transforms keep the NaN where im2col has it: each input row reaches
    only the outputs whose window holds it. The 8x6 outputs are whole pooling windows:
    outputs no window reads get no gradient here, but the reference's matrix product
    multiplies their gradient 0 by a NaN weight.)"""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 10, 8, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    if where == "kernel":
        kernel[1, 1, 2, 1] = np.nan  # filter 1: all its outputs
    else:
        x[1, 4, 5, 0] = x[3, 9, 7, 2] = np.nan  # a middle pixel, a corner one
    tol = 1e-5 if dtype == np.float32 else 1e-12
    y = cpu_conv.conv2d_forward(x, kernel, b, stride=1, relu=True)
    ref_y = reference.conv2d_forward(x, kernel, b, stride=1, relu=True)
    np.testing.assert_allclose(y, ref_y, rtol=tol, atol=tol)  # NaN in the same places
    assert np.isnan(ref_y).sum() == (4 * 8 * 6 if where == "kernel" else 4 * (9 + 1))
    dy = rng.standard_normal(y.shape).astype(dtype)
    fast = cpu_conv.conv2d_backward(x, kernel, ref_y, dy, **ALL_FLAGS)
    ref = reference.conv2d_backward(x, kernel, ref_y, dy, **ALL_FLAGS)
    assert_gradients_agree(fast, ref, dtype, tol)

    out, arg = cpu_conv.conv_relu_pool_forward(x, kernel, b, 2, 2)
    ref_out, ref_arg = reference.conv_relu_pool_forward(x, kernel, b, 2, 2)
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    assert np.isnan(ref_out).sum() == (4 * 4 * 3 if where == "kernel" else 4 * (4 + 1))
    active = ~(ref_out <= 0)  # positive or NaN: where the argmax matters
    np.testing.assert_array_equal(arg[active], ref_arg[active])
    dy = rng.standard_normal(out.shape).astype(dtype)
    fast = cpu_conv.conv_relu_pool_backward(x, kernel, dy, out, arg, 2, 2, input_grad=True)
    ref = reference.conv_relu_pool_backward(x, kernel, dy, ref_out, ref_arg, 2, 2, input_grad=True)
    assert_gradients_agree(fast, ref, dtype, tol)
    assert np.isnan(ref[2] if where == "kernel" else ref[0]).any()  # dx, or dkernel


@pytest.mark.parametrize("pool", [(2, 3), (3, 2)])
def test_fused_conv_relu_pool_with_non_square_pools(pool, block_bytes, threads, algorithm):
    """ph != pw: a window offset k is row k // pw, column k % pw (never // ph)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 11, 10, 4))
    kernel = rng.standard_normal((3, 3, 4, 5))
    b = rng.standard_normal(5)
    out, arg = cpu_conv.conv_relu_pool_forward(x, kernel, b, *pool)
    ref_out, ref_arg = reference.conv_relu_pool_forward(x, kernel, b, *pool)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(arg[ref_out > 0], ref_arg[ref_out > 0])
    assert out.shape == (3, 9 // pool[0], 8 // pool[1], 5)
    dy = rng.standard_normal(out.shape)
    fast = cpu_conv.conv_relu_pool_backward(x, kernel, dy, out, arg, *pool, input_grad=True)
    ref = reference.conv_relu_pool_backward(x, kernel, dy, ref_out, ref_arg, *pool, input_grad=True)
    assert_gradients_agree(fast, ref, np.float64, 1e-12)


def test_blas_thread_count_is_restored_even_after_an_error(threads, monkeypatch):
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    before = [lib.num_threads for lib in controller.lib_controllers]
    _, x, kernel, b = _case((4, 6, 6, 2), (3, 3), True, True, np.float32)
    cpu_conv.conv2d_forward(x, kernel, b, stride=1, relu=True)
    assert [lib.num_threads for lib in controller.lib_controllers] == before

    def broken(*args):
        raise ValueError("a kernel failed")

    monkeypatch.setattr(cpu_conv, "_bias_relu", broken)
    with pytest.raises(ValueError, match="a kernel failed"):
        cpu_conv.conv2d_forward(x, kernel, b, stride=1, relu=True)
    assert [lib.num_threads for lib in controller.lib_controllers] == before


def test_shares_come_from_the_batch_size_and_run_on_separate_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    # a power of two of shares, of at least SHARE_IMAGES (8) images: contiguous,
    # covering every image once, in order; blocks as even as can be
    assert cpu_conv._shares(5) == [(0, 5)]
    assert cpu_conv._shares(40) == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert len(cpu_conv._shares(10**4)) == cpu_conv.MAX_SHARES
    assert cpu_conv._blocks(10, 18, 5) == [(10, 14), (14, 18)]
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    both_started = threading.Barrier(2, timeout=10)
    seen = {}

    def work(j, first, stop):
        if j < 2:  # the first two shares wait for each other: two threads must run them
            both_started.wait()
        seen[j] = (first, stop, threading.get_ident())

    try:
        cpu_conv._run_shares(work, cpu_conv._shares(40))
    finally:
        numba.set_num_threads(previous)
    assert [seen[j][:2] for j in range(4)] == cpu_conv._shares(40)
    assert len({ident for _, _, ident in seen.values()}) == 2


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
    fast = cpu_conv.conv_relu_pool_backward(x, kernel, dy, out, arg, 2, 2, input_grad=True)
    ref = reference.conv_relu_pool_backward(x, kernel, dy, ref_out, ref_arg, 2, 2, input_grad=True)
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


@pytest.mark.parametrize("n", [40, 137])  # 4 and 16 shares of the batch
def test_every_share_of_a_large_batch_reaches_the_gradients(n, algorithm, threads):
    """The kernel and bias sums of all the batch's shares are added (small batches have
    one share and cannot tell)."""
    rng, x, kernel, b = _case((n, 8, 8, 32), (3, 3), True, True, np.float64)
    assert len(cpu_conv._shares(n)) > 1
    y = reference.conv2d_forward(x, kernel, b, stride=1, relu=True)
    dy = rng.standard_normal(y.shape)
    fast = cpu_conv.conv2d_backward(x, kernel, y, dy, **ALL_FLAGS)
    ref = reference.conv2d_backward(x, kernel, y, dy, **ALL_FLAGS)
    assert_gradients_agree(fast, ref, np.float64, 1e-12)


def test_winograd_starts_at_exactly_its_channel_threshold():
    c = cpu_conv.WINOGRAD_MIN_CHANNELS
    assert cpu_conv.conv_algorithm((3, 3, c, 64), 1, (10, 10)) == "winograd"
    assert cpu_conv.conv_algorithm((3, 3, c - 1, 64), 1, (10, 10)) == "im2col"


FORK_SCRIPT = """
import os, sys, time
import numpy as np
from tinycnn.kernels import cpu_conv
x = np.ones((64, 10, 10, 4), np.float32)
k = np.ones((3, 3, 4, 8), np.float32)
cpu_conv.conv2d_forward(x, k, None, stride=1, relu=False)  # starts the helper threads
pid = os.fork()
if pid == 0:  # the child: the parent's threads do not exist here
    cpu_conv.conv2d_forward(x, k, None, stride=1, relu=False)
    os._exit(0)
deadline = time.time() + 60
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hung in a convolution")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_helper_threads():
    """A process forked after a convolution (a DataLoader-style worker, multiprocessing
    on Linux) must not wait on the parent's helper threads, which it does not have."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
