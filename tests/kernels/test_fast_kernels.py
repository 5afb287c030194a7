"""The compiled CPU kernels (cpu_numba.py) agree with the readable reference kernels."""

import numpy as np
import pytest

from tinycnn import kernels
from tinycnn.kernels import reference

cpu_numba = pytest.importorskip("tinycnn.kernels.cpu_numba", reason="numba is not installed")

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
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    cols = cpu_numba.im2col(x, k, k, stride)
    np.testing.assert_array_equal(cols, reference.im2col(x, k, k, stride))
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    np.testing.assert_allclose(
        cpu_numba.col2im(dcols, shape, k, k, stride),
        reference.col2im(dcols, shape, k, k, stride),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,pool,stride",
    [((2, 8, 8, 3), 2, 2), ((2, 11, 11, 4), 2, 2), ((1, 7, 9, 2), 3, 2), ((2, 6, 5, 2), 2, 1)],
)
def test_maxpool_matches_reference(shape, pool, stride, dtype):
    rng = np.random.default_rng(1)
    x = tie_free(shape, rng, dtype)
    out, arg = cpu_numba.maxpool_forward(x, pool, pool, stride, stride)
    ref_out, ref_arg = reference.maxpool_forward(x, pool, pool, stride, stride)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    dy = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(
        cpu_numba.maxpool_backward(dy, arg, shape, pool, pool, stride, stride),
        reference.maxpool_backward(dy, ref_arg, shape, pool, pool, stride, stride),
        rtol=1e-6,
    )


def test_maxpool_ties_pick_the_first_maximum():
    x = np.zeros((1, 2, 2, 1), dtype=np.float32)
    _, arg = cpu_numba.maxpool_forward(x, 2, 2, 2, 2)
    _, ref_arg = reference.maxpool_forward(x, 2, 2, 2, 2)
    assert arg.item() == ref_arg.item() == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_relu_forward_and_backward_match_reference(relu, with_bias, dtype):
    rng = np.random.default_rng(2)
    y = rng.standard_normal((1000, 7)).astype(dtype)
    bias = rng.standard_normal(7).astype(dtype) if with_bias else None
    fast = cpu_numba.bias_relu(y.copy(), bias, relu)
    np.testing.assert_allclose(fast, reference.bias_relu(y.copy(), bias, relu), rtol=1e-6)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dz, db = cpu_numba.bias_relu_backward(dy, fast, relu, with_bias)
    ref_dz, ref_db = reference.bias_relu_backward(dy, fast, relu, with_bias)
    np.testing.assert_array_equal(dz, ref_dz)
    if with_bias:
        np.testing.assert_allclose(db, ref_db, rtol=1e-5, atol=1e-5)
    else:
        assert db is None and ref_db is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_reference(dtype):
    z = np.random.default_rng(3).standard_normal((5, 6, 7)).astype(dtype)
    np.testing.assert_array_equal(
        cpu_numba.relu_forward(z.copy()), reference.relu_forward(z.copy())
    )
    dy = np.ones_like(z)
    np.testing.assert_array_equal(cpu_numba.relu_backward(dy, z), reference.relu_backward(dy, z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_matches_reference(dtype):
    rng = np.random.default_rng(4)
    p, g = rng.standard_normal((2, 50, 3)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    for _ in range(3):
        cpu_numba.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
        reference.adam_update(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-7)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, p2, rtol=tol)
    np.testing.assert_allclose(m, m2, rtol=tol)
    np.testing.assert_allclose(v, v2, rtol=tol)


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
    reference.adam_update(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-7)
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
    assert kernels._impl(x) is cpu_numba


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
