"""The compiled CPU kernels (cpu_numba.py) agree with the readable reference kernels."""

import numpy as np
import pytest

from tinycnn import kernels
from tinycnn.conv_arithmetic import output_size
from tinycnn.kernels import reference
from tinycnn.optimizers import Adam

cpu_numba = pytest.importorskip("tinycnn.kernels.cpu_numba", reason="numba is not installed")
cpu_conv = pytest.importorskip("tinycnn.kernels.cpu_conv", reason="numba is not installed")

DTYPES = [np.float32, np.float64]


def tie_free(shape, rng, dtype):
    """A shuffled linspace: no two values are equal, so max-pooling has no ties."""
    return rng.permutation(np.linspace(-1, 1, int(np.prod(shape)))).reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,k,stride",
    [
        ((2, 7, 7, 3), 3, 1),
        ((2, 9, 9, 4), 3, 1),  # runs of 12 numbers
        ((2, 8, 7, 1), 3, 1),  # runs of 3 (the first layer's): the short-run loop
        ((3, 9, 8, 2), 2, 2),
        ((1, 6, 6, 1), 3, 2),
    ],
)
def test_im2col_col2im_match_reference(shape, k, stride, dtype):
    """The compiled loops cpu_numba._im2col / _col2im, as cpu_conv runs them on each
    block of images (single-threaded twins), on arrays laid out as cpu_conv lays them."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    n, h, w, c = shape
    ho, wo = output_size(h, k, stride), output_size(w, k, stride)
    cols = np.empty((n, ho, wo, k, k * c), dtype=dtype)
    cpu_conv._im2col(x.reshape(n, h, w * c), k, k, c, stride, cols)
    cols = cols.reshape(n * ho * wo, k * k * c)
    np.testing.assert_array_equal(cols, reference.im2col(x, k, k, stride))
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype=dtype)  # the loop zeroes it first
    cpu_conv._col2im(dcols.reshape(n, ho, wo, k, k * c), k, k, c, stride, dx.reshape(n, h, w * c))
    np.testing.assert_allclose(
        dx, reference.col2im(dcols, shape, k, k, stride), rtol=1e-6, atol=1e-6
    )


def naive_maxpool(x, ph, pw, sh, sw):
    """Max-pooling by explicit loops over every window, the rules spelled out: the max
    as np.max has it (NaN if the window has one); argmax the offset i * pw + j of the
    first maximum, or of the last NaN (PyTorch's rule)."""
    n, h, w, c = x.shape
    ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    out = np.empty((n, ho, wo, c), dtype=x.dtype)
    arg = np.empty((n, ho, wo, c), dtype=np.int8)
    for b, i, j, ch in np.ndindex(n, ho, wo, c):
        window = x[b, i * sh : i * sh + ph, j * sw : j * sw + pw, ch].ravel()  # i * pw + j order
        out[b, i, j, ch] = np.max(window)
        nans = np.flatnonzero(np.isnan(window))
        arg[b, i, j, ch] = nans[-1] if nans.size else np.argmax(window)  # argmax: the first
    return out, arg


def naive_maxpool_backward(dy, arg, x_shape, ph, pw, sh, sw):
    """dy added to the input pixel each window's argmax points at (row-major in the window)."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for b, i, j, ch in np.ndindex(dy.shape):
        a, k = divmod(int(arg[b, i, j, ch]), pw)
        dx[b, i * sh + a, j * sw + k, ch] += dy[b, i, j, ch]
    return dx


def check_maxpool(x, ph, pw, sh, sw, seed=0):
    """Fast and reference max-pooling, forward and backward, equal the naive loops'."""
    want_out, want_arg = naive_maxpool(x, ph, pw, sh, sw)
    dy = np.random.default_rng(seed).standard_normal(want_out.shape).astype(x.dtype)
    want_dx = naive_maxpool_backward(dy, want_arg, x.shape, ph, pw, sh, sw)
    for impl in (cpu_numba, reference):
        out, arg = impl.maxpool_forward(x, ph, pw, sh, sw)
        np.testing.assert_array_equal(out, want_out, err_msg=impl.__name__)  # NaN == NaN here
        np.testing.assert_array_equal(arg, want_arg, err_msg=impl.__name__)
        dx = impl.maxpool_backward(dy, arg, x.shape, ph, pw, sh, sw)
        tol = 1e-6 if x.dtype == np.float32 else 1e-14  # overlapping windows add in any order
        np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol, err_msg=impl.__name__)


# (pool, stride): square and not (a window index i * ph + j would pass square pools
# only); windows that tile the image (the fast backward's tiled loop) and windows that
# overlap or leave gaps (its scatter loop)
WINDOWS = [
    ((2, 2), (2, 2)),
    ((3, 3), (2, 2)),
    ((2, 2), (1, 1)),
    ((2, 3), (2, 3)),
    ((3, 2), (3, 2)),
    ((2, 3), (1, 2)),
    ((3, 2), (2, 1)),
    ((2, 3), (3, 4)),  # stride > pool: pixels no window covers
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,stride", WINDOWS)
@pytest.mark.parametrize("shape", [(2, 8, 9, 3), (1, 11, 7, 2)])
def test_maxpool_matches_reference_and_naive_loops(shape, pool, stride, dtype):
    x = tie_free(shape, np.random.default_rng(1), dtype)
    check_maxpool(x, *pool, *stride)


@pytest.mark.parametrize("pool,stride", WINDOWS)
def test_maxpool_ties_pick_the_first_maximum(pool, stride):
    """Values drawn from {0, 1, 2}: most windows hold a tie, at every pair of offsets."""
    x = np.random.default_rng(2).integers(0, 3, (3, 9, 10, 4)).astype(np.float32)
    check_maxpool(x, *pool, *stride)


@pytest.mark.parametrize(
    "window,value,arg",
    [
        ([5, 5, 5, 5], 5, 0),  # all equal
        ([1, 7, 7, 2], 7, 1),  # tie after a smaller value
        ([7, 1, 2, 7], 7, 0),  # tie between the first and the last
        ([1, 2, 7, 7], 7, 2),  # tie at the end
        ([-3, -1, -1, -2], -1, 1),  # negative
        ([np.inf, 1, np.inf, 2], np.inf, 0),  # +inf tie
        ([-np.inf] * 4, -np.inf, 0),  # nothing beats -inf, and nothing needs to
        ([1, np.nan, 2, 3], np.nan, 1),  # a NaN not first: ">" alone would give 3
        ([np.nan, 1, 2, 3], np.nan, 0),
        ([1, 2, 3, np.nan], np.nan, 3),
        ([1, np.nan, 2, np.nan], np.nan, 3),  # the last NaN, as PyTorch
        ([np.inf, np.nan, -np.inf, 0], np.nan, 1),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_known_windows(window, value, arg, dtype):
    """One 2x2 window (offsets 0 1 / 2 3), in both kernels: the max as np.max gives it,
    the gradient to the first maximum or the last NaN."""
    x = np.array(window, dtype=dtype).reshape(1, 2, 2, 1)
    assert (np.max(x) == value) or (np.isnan(value) and np.isnan(np.max(x)))
    for impl in (cpu_numba, reference):
        out, a = impl.maxpool_forward(x, 2, 2, 2, 2)
        np.testing.assert_array_equal(out.ravel(), [value], err_msg=impl.__name__)
        assert a.item() == arg, impl.__name__
        dx = impl.maxpool_backward(np.full((1, 1, 1, 1), 3.0, dtype), a, x.shape, 2, 2, 2, 2)
        np.testing.assert_array_equal(dx.ravel(), 3.0 * (np.arange(4) == arg))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,stride", WINDOWS)
def test_maxpool_nan_and_inf_match_np_max(pool, stride, dtype):
    """A few NaN and +-inf scattered in a tie-free image: every window holding a NaN
    pools to NaN (not only where the NaN comes first), infs compare like numbers."""
    rng = np.random.default_rng(3)
    x = tie_free((2, 9, 10, 3), rng, dtype)
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, 24, replace=False)
    flat[spots[:8]], flat[spots[8:16]], flat[spots[16:]] = np.nan, np.inf, -np.inf
    x[1, 0:3, 0:3, 0] = np.nan  # a window of NaNs only
    check_maxpool(x, *pool, *stride)
    out, _ = cpu_numba.maxpool_forward(x, *pool, *stride)
    (sh, sw), (ho, wo) = stride, out.shape[1:3]
    firsts = x[:, : sh * ho : sh, : sw * wo : sw]  # each window's first value
    assert (np.isnan(out) & ~np.isnan(firsts)).any()  # NaNs that ">" alone would lose


def with_nan_and_inf(a, rng, count=5):
    """``a`` with ``count`` NaN, +inf and -inf each written over random entries."""
    flat = a.reshape(-1)
    spots = rng.choice(flat.size, 3 * count, replace=False)
    flat[spots[:count]], flat[spots[count : 2 * count]], flat[spots[2 * count :]] = (
        np.nan, np.inf, -np.inf,
    )  # fmt: skip
    return a


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 97, 997])  # odd and prime: no even split in chunks
@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf"])
def test_bias_relu_forward_and_backward_match_reference(relu, with_bias, rows, special, dtype):
    rng = np.random.default_rng(2)
    y = rng.standard_normal((rows, 7)).astype(dtype)
    bias = rng.standard_normal(7).astype(dtype) if with_bias else None
    dy = rng.standard_normal(y.shape).astype(dtype)
    if special and rows > 1:
        with_nan_and_inf(y, rng, count=max(1, rows // 100))
        with_nan_and_inf(dy, rng, count=max(1, rows // 100))
    fast = cpu_numba.bias_relu(y.copy(), bias, relu=relu)
    want = reference.bias_relu(y.copy(), bias, relu=relu)
    np.testing.assert_allclose(fast, want, rtol=1e-6)  # NaN where the reference has NaN
    assert np.isnan(fast).sum() == np.isnan(y + (0 if bias is None else bias)).sum()
    dz, db = cpu_numba.bias_relu_backward(dy, fast, relu=relu, with_bias=with_bias)
    ref_dz, ref_db = reference.bias_relu_backward(dy, fast, relu=relu, with_bias=with_bias)
    np.testing.assert_array_equal(dz, ref_dz)
    if with_bias:
        np.testing.assert_allclose(db, ref_db, rtol=1e-5, atol=1e-5)
        # every row is summed, the last chunk's too: against a plain float64 sum
        want_db = ref_dz.astype(np.float64).sum(axis=0).astype(dtype)
        np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-5)
    else:
        assert db is None and ref_db is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_reference(dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 6, 7)).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    for special in (False, True):
        if special:
            with_nan_and_inf(z, rng)
            with_nan_and_inf(dy, rng)
        y = cpu_numba.relu_forward(z.copy())
        np.testing.assert_array_equal(y, reference.relu_forward(z.copy()))
        np.testing.assert_array_equal(
            cpu_numba.relu_backward(dy, y), reference.relu_backward(dy, y)
        )
        np.testing.assert_array_equal(
            cpu_numba.relu_backward(dy, z), reference.relu_backward(dy, z)
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["cpu_numba", "reference"])
def test_relu_of_nan_and_inf(impl, dtype):
    """ReLU(NaN) = NaN, as np.maximum has it; the gradient goes through a NaN output
    and stops at an inactive unit even when it is inf (PyTorch's rules); the same in
    bias_relu's fused kernels."""
    k = cpu_numba if impl == "cpu_numba" else reference
    nan, inf = np.nan, np.inf
    z = np.array([[nan, inf, -inf, -1.0, 0.0, 2.0]], dtype=dtype)
    want = [[nan, inf, 0, 0, 0, 2]]
    np.testing.assert_array_equal(k.relu_forward(z.copy()), want)
    np.testing.assert_array_equal(k.bias_relu(z.copy(), np.zeros(6, dtype), relu=True), want)
    np.testing.assert_array_equal(k.bias_relu(z.copy(), None, relu=True), want)
    y = np.array(want, dtype=dtype)
    dy = np.array([[5, 5, inf, inf, nan, -inf]], dtype=dtype)
    want_dz = [[5, 5, 0, 0, 0, -inf]]
    np.testing.assert_array_equal(k.relu_backward(dy, y), want_dz)
    for with_bias in (True, False):
        dz, db = k.bias_relu_backward(dy, y, relu=True, with_bias=with_bias)
        np.testing.assert_array_equal(dz, want_dz)
        if with_bias:
            np.testing.assert_array_equal(db, want_dz[0])


def reference_adam(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    """Adam's reference lines (optimizers/adam.py), which cpu_numba.adam_update compiles."""
    adam = Adam(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    with kernels.use_fast_kernels(False):
        adam.update_param(param, grad, {"m": m, "v": v}, lr_t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_matches_reference(dtype):
    rng = np.random.default_rng(4)
    p, g = rng.standard_normal((2, 50, 3)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    for _ in range(3):
        cpu_numba.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
        reference_adam(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-7)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, p2, rtol=tol)
    np.testing.assert_allclose(m, m2, rtol=tol)
    np.testing.assert_allclose(v, v2, rtol=tol)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_keeps_nan_and_inf_as_the_reference(dtype):
    """A NaN or inf gradient (or moment) ends in the same NaN/inf weights on both paths."""
    rng = np.random.default_rng(5)
    p, g, m = rng.standard_normal((3, 40)).astype(dtype)
    v = rng.random(40).astype(dtype)
    with_nan_and_inf(g, rng, count=3)
    m[[0, 1]], v[[2, 3]] = np.nan, np.inf
    arrays = [a.copy() for a in (p, g, m, v)], [a.copy() for a in (p, g, m, v)]
    cpu_numba.adam_update(*arrays[0], 1e-3, 0.9, 0.999, 1e-7)
    reference_adam(*arrays[1], 1e-3, 0.9, 0.999, 1e-7)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for name, fast, ref in zip("pgmv", *arrays, strict=True):
        np.testing.assert_allclose(fast, ref, rtol=tol, err_msg=name)  # equal_nan: same places
    assert np.isnan(arrays[0][0]).sum() >= 9  # NaN and inf gradients, NaN m, inf v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_flushes_subnormal_moments_to_zero(dtype):
    """A weight whose gradient is 0 has its m shrink towards the subnormal range, where
    x86 arithmetic is 50-100x slower: the fast Adam stores 0 instead. The weights move
    as the reference moves them (the flushed terms are below 1e-30)."""
    tiny = np.finfo(dtype).tiny
    p = np.linspace(-1, 1, 8).astype(dtype)
    g = np.array([0, 0, 0, 0, 1e-3, -1e-3, 0, 2e-3], dtype=dtype)
    m = np.array([tiny / 4, -tiny / 2, tiny * 1.05, 0.3, 0, 0, 1e-20, 0], dtype=dtype)
    v = np.array([tiny / 8, 0, 1e-6, tiny / 3, 0, 0, 1e-20, 0], dtype=dtype)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    cpu_numba.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
    reference_adam(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-7)
    # 0.9 * tiny/4, 0.9 * -tiny/2 and 0.9 * 1.05 tiny are subnormal: flushed, as are
    # 0.999 * tiny/8 and 0.999 * tiny/3; the normal ones are kept as the reference has them
    assert m[0] == m[1] == m[2] == 0 and v[0] == v[3] == 0
    assert np.all(np.abs(m[m != 0]) >= tiny) and np.all(v[v != 0] >= tiny)
    keep = [3, 4, 5, 6, 7]
    np.testing.assert_allclose(m[keep], m2[keep], rtol=1e-6)
    np.testing.assert_allclose(v[[2, 4, 5, 6, 7]], v2[[2, 4, 5, 6, 7]], rtol=1e-6)
    np.testing.assert_allclose(p, p2, rtol=1e-6, atol=0)


def test_dispatch_uses_fast_kernels_for_numpy_and_can_be_switched_off():
    x = np.ones((1, 4, 4, 1), dtype=np.float32)
    assert kernels._impl(x) is cpu_numba
    with kernels.use_fast_kernels(False):
        assert kernels._impl(x) is reference
        with kernels.use_fast_kernels(True):  # nested: each block restores what it found
            assert kernels._impl(x) is cpu_numba
        assert kernels._impl(x) is reference
    assert kernels._impl(x) is cpu_numba


def test_use_fast_kernels_as_a_plain_call_switches_until_switched_back():
    x = np.ones((1, 4, 4, 1), dtype=np.float32)
    try:
        kernels.use_fast_kernels(False)
        assert kernels._impl(x) is reference and not kernels.is_fast(x)
        assert kernels._impl(x, kernels.cpu_conv) is reference
        kernels.use_fast_kernels(False)  # twice: still off
        assert kernels._impl(x) is reference
        kernels.use_fast_kernels()
        assert kernels._impl(x) is cpu_numba
    finally:
        kernels._state["fast"] = True
    with pytest.raises(RuntimeError, match="inside"):  # the block's end restores, even on error
        with kernels.use_fast_kernels(False):
            assert not kernels.is_fast(x)
            raise RuntimeError("inside")
    assert kernels.is_fast(x)


def test_whole_training_step_agrees_with_reference_kernels():
    """One forward/backward/Adam step of the seed network, fast vs reference kernels."""
    import tinycnn

    rng = np.random.default_rng(5)
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 4)
    results = []
    for fast in (True, False):
        with kernels.use_fast_kernels(fast):
            model = tinycnn.models.fashion_mnist_cnn(seed=0)
            model.compile(optimizer="adam")
            loss, _ = tinycnn.training.train_step(model, x, y)
            results.append((float(loss), model.get_weights()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_one_nan_in_a_kernel_makes_every_prediction_nan():
    """A NaN weight in the first convolution reaches every logit, on both paths (the
    fast ReLU once turned it into 0 and the model predicted as if nothing happened);
    backward gives NaN gradients in the same places on both."""
    import tinycnn

    x = np.random.default_rng(6).random((5, 28, 28, 1), dtype=np.float32)
    dlogits = np.random.default_rng(7).standard_normal((5, 10)).astype(np.float32)
    grads = {}
    for fast in (True, False):
        with kernels.use_fast_kernels(fast):
            model = tinycnn.models.fashion_mnist_cnn(seed=0)
            model.build((28, 28, 1))
            model.layers[0].params["kernel"][1, 1, 0, 7] = np.nan  # one of 576 weights
            logits = model.predict(x)
            assert logits.shape == (5, 10) and np.isnan(logits).all(), fast
            model.forward(x, training=True)
            model.backward(dlogits, input_grad=False)
            grads[fast] = [g for layer in model.layers for g in layer.grads.values()]
    assert np.isnan(grads[True][-2]).all()  # the last Dense's kernel: its inputs are all NaN
    for fast, ref in zip(grads[True], grads[False], strict=True):
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
        np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5)


def test_model_fuses_both_convolution_pooling_pairs():
    """The seed network's two Conv2D(relu)+MaxPool pairs run fused on the CPU fast path."""
    import tinycnn
    from tinycnn.models.fusion import ConvReluPool

    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    x = np.zeros((1, 28, 28, 1), dtype=np.float32)
    model.forward(x)
    assert [type(s).__name__ for s in model._steps] == [
        "ConvReluPool",
        "ConvReluPool",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert isinstance(model._steps[1], ConvReluPool) and model._steps[1].conv is model.layers[2]
    with kernels.use_fast_kernels(False):
        model.forward(x)
        assert model._steps == model.layers


def test_without_numba_tinycnn_warns_and_trains_on_the_reference_kernels():
    """numba missing: import warns once, says what to install, and training still works."""
    import subprocess
    import sys

    script = """
import sys, warnings
sys.modules["numba"] = None  # as if numba were not installed
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import tinycnn
assert any("pip install numba" in str(w.message) for w in caught), [str(w.message) for w in caught]
import numpy as np
from tinycnn import kernels
from tinycnn.training import train_step
assert not kernels.fast_kernels_available()
model = tinycnn.models.fashion_mnist_cnn(seed=0)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
loss, _ = train_step(model, x, np.arange(4))
assert np.isfinite(float(loss)) and model._steps == model.layers  # nothing fused
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
