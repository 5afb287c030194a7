"""The backend switch, the default float type, array transfers and weight initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn import backend, initializers
from tinycnn.layers import Conv2D, Dense

needs_no_gpu = pytest.mark.skipif(
    backend.cupy_available(), reason="CuPy and a GPU are available here: the error cannot happen"
)


# ---- backend ------------------------------------------------------------------------------
def test_default_backend_is_numpy():
    assert tinycnn.get_backend() == "numpy"
    assert backend.xp() is np


def test_set_and_use_backend_restore():
    tinycnn.set_backend("numpy")
    assert tinycnn.get_backend() == "numpy"
    with tinycnn.use_backend("numpy"):
        assert tinycnn.get_backend() == "numpy"
    assert tinycnn.get_backend() == "numpy"


def test_use_backend_restores_after_an_exception(monkeypatch):
    # a second namespace, so that there is something to switch to on a CPU machine
    backend.register_namespace("other", np, type("OtherArray", (np.ndarray,), {}))
    try:
        with pytest.raises(KeyError), tinycnn.use_backend("other"):
            assert tinycnn.get_backend() == "other"
            raise KeyError("boom")
        assert tinycnn.get_backend() == "numpy"
    finally:
        backend.unregister_namespace("other")


@pytest.mark.parametrize("name", ["torch", "Numpy", "", "gpu"])
def test_unknown_backend_name_raises_value_error(name):
    with pytest.raises(
        ValueError, match=rf"Unknown backend {name!r}: expected one of \('numpy', 'cupy'\)"
    ):
        tinycnn.set_backend(name)
    assert tinycnn.get_backend() == "numpy"


@needs_no_gpu
def test_cupy_without_cupy_or_gpu_says_what_to_install():
    with pytest.raises(RuntimeError) as info:
        tinycnn.set_backend("cupy")
    message = str(info.value)
    if "not installed" in message:  # no CuPy at all: name the extras
        assert "tinycnn[cuda12]" in message and "tinycnn[cuda13]" in message
    else:  # CuPy present but no usable device
        assert "no CUDA GPU" in message and "'numpy' backend" in message
    assert tinycnn.get_backend() == "numpy"
    assert backend.cupy_available() is False
    with pytest.raises(RuntimeError), tinycnn.use_backend("cupy"):
        pass  # pragma: no cover
    assert tinycnn.get_backend() == "numpy"


def test_get_array_module_and_backend_of():
    a = np.zeros(3)
    assert backend.get_array_module(a) is np
    assert backend.get_array_module(None, 1.5, a) is np
    assert backend.backend_of(a) == "numpy"
    assert backend.is_numpy(a) and not backend.is_numpy(a.view(type("Sub", (np.ndarray,), {})))


# ---- transfers --------------------------------------------------------------------------------
def test_to_numpy_and_to_backend_on_numpy():
    a = np.arange(6.0).reshape(2, 3)
    assert tinycnn.to_numpy(a) is a
    assert tinycnn.to_backend(a) is a and tinycnn.to_backend(a, "numpy") is a
    np.testing.assert_array_equal(tinycnn.to_numpy([1, 2]), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"Unknown backend 'tpu'"):
        tinycnn.to_backend(a, "tpu")


@pytest.mark.gpu
def test_to_backend_round_trip_through_cupy():
    import cupy

    a = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    on_gpu = tinycnn.to_backend(a, "cupy")
    assert isinstance(on_gpu, cupy.ndarray) and backend.backend_of(on_gpu) == "cupy"
    assert backend.get_array_module(on_gpu) is cupy
    back = tinycnn.to_numpy(on_gpu)
    assert type(back) is np.ndarray and back.dtype == np.float32
    np.testing.assert_array_equal(back, a)
    with tinycnn.use_backend("cupy"):
        assert backend.xp() is cupy and tinycnn.get_backend() == "cupy"
    assert tinycnn.get_backend() == "numpy"


# ---- floatx ----------------------------------------------------------------------------------
def test_floatx_set_use_restore():
    assert tinycnn.floatx() == "float32"
    with tinycnn.use_floatx("float64"):
        assert tinycnn.floatx() == "float64"
        with tinycnn.use_floatx(np.float32):  # dtypes are accepted too
            assert tinycnn.floatx() == "float32"
        assert tinycnn.floatx() == "float64"
    assert tinycnn.floatx() == "float32"
    tinycnn.set_floatx("float64")
    assert tinycnn.floatx() == "float64"


@pytest.mark.parametrize("bad", ["float16", "int32", "uint8"])
def test_floatx_rejects_other_types(bad):
    with pytest.raises(
        ValueError, match=rf"floatx must be one of \('float32', 'float64'\), got '{bad}'"
    ):
        tinycnn.set_floatx(bad)
    assert tinycnn.floatx() == "float32"


def test_float64_models_have_float64_params_and_outputs(float64):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.build(model.input_shape)
    assert {p.dtype for layer in model.layers for p in layer.params.values()} == {
        np.dtype("float64")
    }
    assert model.forward(np.zeros((1, 28, 28, 1))).dtype == np.float64


def test_float32_is_the_default_dtype():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.build(model.input_shape)
    assert {p.dtype for layer in model.layers for p in layer.params.values()} == {
        np.dtype("float32")
    }
    assert model.forward(np.zeros((1, 28, 28, 1))).dtype == np.float32
    # float64 input is cast to the layer's dtype, as Keras does
    assert model.forward(np.zeros((1, 28, 28, 1), dtype="float64")).dtype == np.float32


# ---- initializers -------------------------------------------------------------------------------
def built(seed):
    model = tinycnn.models.fashion_mnist_cnn(seed=seed)
    model.build(model.input_shape)
    return model


def test_same_seed_same_weights():
    a, b = built(0).get_weights(), built(0).get_weights()
    assert len(a) == len(b) == 8
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_different_seeds_different_weights():
    a, b = built(0).get_weights(), built(1).get_weights()
    for wa, wb in zip(a[::2], b[::2], strict=True):  # kernels (biases are all zero)
        assert not np.array_equal(wa, wb)


def test_same_seed_same_weights_in_float32_and_float64():
    a = built(0).get_weights()
    with tinycnn.use_floatx("float64"):
        b = built(0).get_weights()
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb.astype("float32"))


def test_glorot_limits_and_zero_biases():
    model = built(0)
    for layer in model.layers:
        if not layer.params:
            continue
        w = layer.params["kernel"]
        fan_in, fan_out = initializers.fans(w.shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        assert float(np.abs(w).max()) <= limit
        assert float(np.abs(w).max()) > 0.95 * limit  # it really spans the interval
        assert abs(float(w.mean())) < 0.05 * limit
        np.testing.assert_array_equal(layer.params["bias"], 0.0)


@pytest.mark.parametrize(
    ("shape", "fans"),
    [
        ((1600, 512), (1600, 512)),
        ((3, 3, 1, 64), (9, 576)),
        ((3, 3, 64, 64), (576, 576)),
        ((2, 5, 3, 4), (30, 40)),
    ],
)
def test_fans_like_keras(shape, fans):
    assert initializers.fans(shape) == fans


def test_initializer_by_name_callable_and_unknown():
    assert initializers.get("zeros") is initializers.zeros
    assert initializers.get("glorot_uniform") is initializers.glorot_uniform

    def ones(shape, rng, dtype):
        return np.ones(shape, dtype=dtype)

    layer = Dense(3, kernel_initializer=ones, bias_initializer=ones)
    layer.build((2,))
    np.testing.assert_array_equal(layer.params["kernel"], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Unknown initializer 'he_normal': expected one of"):
        Conv2D(2, 3, kernel_initializer="he_normal")


def test_layer_build_with_the_same_seed_is_reproducible():
    a, b = Conv2D(4, 3), Conv2D(4, 3)
    a.build((5, 5, 2), rng=42)
    b.build((5, 5, 2), rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a.params["kernel"], b.params["kernel"])
