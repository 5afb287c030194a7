"""No quiet NumPy behind the backend's back: the whole library runs on a *guarded* NumPy.

CuPy refuses implicit conversions (``numpy.asarray(cupy_array)`` raises), so a line of
tinycnn that calls ``numpy.something(x)`` on a layer's array instead of ``xp.something(x)``
works on the CPU and breaks only on a GPU machine. This file catches such lines on the CPU,
with the guarded NumPy of tests/guarded_numpy.py (how the guard works) and the ``guarded``
fixture of conftest.py, which registers it as a backend and makes ``numpy.asarray`` & co.
refuse its arrays, as they refuse CuPy's.

The first tests check that the guard itself works (so the others can fail). The same
training step is then run on every "other" namespace: ``guarded`` here, ``cupy`` on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from guarded_numpy import GuardedArray, to_plain, unguard

import tinycnn
from tinycnn import backend
from tinycnn.layers import Dense, Dropout
from tinycnn.losses import SoftmaxCrossEntropy
from tinycnn.optimizers import SGD, Adam


# ---- the namespaces (the guard: tests/guarded_numpy.py; the guarded fixture: conftest.py) -------
@pytest.fixture(params=["guarded", pytest.param("cupy", marks=pytest.mark.gpu)])
def namespace(request):
    """Another array namespace than plain NumPy: the guard here, CuPy on a GPU machine."""
    if request.param == "guarded":
        request.getfixturevalue("guarded")
        return "guarded", GuardedArray
    import cupy

    return "cupy", cupy.ndarray


# ---- the guard itself works (so the tests below can fail) ------------------------------------------
def test_guard_refuses_direct_numpy_calls(guarded):
    g = guarded.asarray(np.arange(6.0).reshape(2, 3))
    assert type(g) is GuardedArray
    assert backend.get_array_module(g) is guarded and backend.backend_of(g) == "guarded"
    with pytest.raises(TypeError, match=r"numpy.sum called directly on a GuardedArray"):
        np.sum(g)
    with pytest.raises(TypeError, match=r"numpy.asarray called directly on a GuardedArray"):
        np.asarray(g)
    with pytest.raises(TypeError, match=r"numpy.array called directly"):
        np.array([g, g])
    with pytest.raises(TypeError, match=r"numpy.exp called directly"):
        np.exp(g)
    with pytest.raises(TypeError, match=r"numpy.pad called directly"):
        np.pad(g, 1)
    with pytest.raises(TypeError, match=r"plain numpy.ndarray mixed with GuardedArrays"):
        np.ones((2, 3)) + g  # a plain NumPy array mixed with a guarded one
    with pytest.raises(TypeError, match=r"plain numpy.ndarray mixed with GuardedArrays"):
        g * np.ones((2, 3))
    with pytest.raises(TypeError, match=r"plain numpy.ndarray mixed with GuardedArrays"):
        guarded.where(g > 1, g, np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"numpy.maximum called directly"):
        np.maximum(g, 0, out=g)


def test_guard_allows_xp_calls_operators_and_methods(guarded):
    g = guarded.asarray(np.arange(6.0).reshape(2, 3))
    xp = backend.get_array_module(g)
    results = [
        xp.exp(g),
        xp.pad(g, ((1, 0), (0, 1))),
        g + 1,
        2 * g,
        g @ g.T,
        -g,
        g > 2,
        g.sum(axis=0),
        g.max(axis=1, keepdims=True),
        xp.where(g > 2, g, xp.zeros((), dtype=g.dtype)),
        g.reshape(-1)[1:4],
        g.astype("float32"),
        np.float64(0.5) * g,  # a NumPy scalar's operator, as CuPy allows
    ]
    assert all(type(r) is GuardedArray for r in results)
    g += 1
    xp.maximum(g, 3, out=g)
    assert type(g) is GuardedArray
    np.testing.assert_array_equal(unguard(g), [[3, 3, 3], [4, 5, 6]])
    assert float(g.sum()) == 24.0 and bool((g > 0).all())
    np.testing.assert_array_equal(tinycnn.to_numpy(g), [[3, 3, 3], [4, 5, 6]])  # explicit transfer


def test_a_layer_calling_numpy_directly_is_caught(guarded):
    class NumpyReLU(tinycnn.layers.ReLU):
        def _forward(self, x, training):
            self.cache = np.maximum(x, 0)  # should be xp.maximum: breaks on CuPy
            return self.cache

    model = tinycnn.Sequential([Dense(3, input_shape=(2,)), NumpyReLU()], seed=0)
    model.build((2,))
    model.forward(np.ones((1, 2), dtype="float32"))  # fine on NumPy
    model.to("guarded")
    with pytest.raises(TypeError, match=r"numpy.maximum called directly on a GuardedArray"):
        model.forward(guarded.ones((1, 2), dtype="float32"))


def test_set_backend_guarded_creates_guarded_arrays(guarded):
    with tinycnn.use_backend("guarded"):
        assert backend.xp() is guarded
        layer = Dense(3)
        layer.build((4,), rng=0)
    assert all(type(p) is GuardedArray for p in layer.params.values())
    assert tinycnn.get_backend() == "numpy"


# ---- the whole library on another namespace -------------------------------------------------------------
OPTIMIZERS = {
    "adam": lambda: Adam(1e-3),
    "sgd-momentum": lambda: SGD(0.05, momentum=0.9),
}


def run_steps(model, optimizer, x, y, steps=2):
    """forward, loss, backward (with dL/dx), optimizer step; returns what to compare."""
    loss_fn = SoftmaxCrossEntropy()
    record = []
    for _ in range(steps):
        logits = model.forward(x, training=True)
        loss = loss_fn.forward(logits, y)
        dx = model.backward(loss_fn.backward())
        grads = [layer.grads[k] for layer in model.layers for k in layer.params]
        record.append({"logits": logits, "loss": loss, "dx": dx, "grads": grads})
        optimizer.step(model.layers)
    record.append({"params": [p for layer in model.layers for p in layer.params.values()]})
    record.append(
        {"state": [v for k, v in sorted(optimizer.get_state().items()) if k != "iterations"]}
    )
    return record


def assert_same_numbers(got, expected, array_type, rtol=1e-12, atol=1e-14):
    worst = 0.0
    for step_got, step_expected in zip(got, expected, strict=True):
        for key, value in step_got.items():
            values = value if isinstance(value, list) else [value]
            references = step_expected[key] if isinstance(value, list) else [step_expected[key]]
            assert len(values) == len(references)
            for a, b in zip(values, references, strict=True):
                if key != "loss":  # the loss may be a 0-d array or a NumPy scalar
                    assert isinstance(a, array_type), f"{key}: got a {type(a).__name__}"
                a, b = to_plain(a), np.asarray(b)
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=key)
                worst = max(worst, float(np.abs(a - b).max()))
    print(f"max abs difference from plain NumPy: {worst:.2e}")


_PLAIN_RUNS: dict = {}


def plain_numpy_run(opt):
    """Two steps of the seed network on plain NumPy (float64), computed once per optimizer."""
    if opt not in _PLAIN_RUNS:
        r = np.random.default_rng(0)
        x, y = r.random((3, 28, 28, 1)), r.integers(0, 10, 3)
        with tinycnn.use_floatx("float64"):
            reference = tinycnn.models.fashion_mnist_cnn(seed=0)
            _PLAIN_RUNS[opt] = (x, y, run_steps(reference, OPTIMIZERS[opt](), x, y))
    return _PLAIN_RUNS[opt]


@pytest.mark.parametrize("how", ["set_backend", "model.to"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_seed_network_step_on_another_namespace(namespace, how, opt, float64):
    name, array_type = namespace
    x, y, expected = plain_numpy_run(opt)

    if how == "set_backend":
        with tinycnn.use_backend(name):
            model = tinycnn.models.fashion_mnist_cnn(seed=0)
            model.build(model.input_shape)
    else:
        model = tinycnn.models.fashion_mnist_cnn(seed=0)
        model.build(model.input_shape)
        model.to(name)
    assert all(isinstance(p, array_type) for layer in model.layers for p in layer.params.values())
    xb, yb = tinycnn.to_backend(x, name), tinycnn.to_backend(y, name)
    got = run_steps(model, OPTIMIZERS[opt](), xb, yb)
    if name == "guarded":  # the very same NumPy arithmetic underneath
        assert_same_numbers(got, expected, array_type)
    else:  # cuBLAS sums in another order than the CPU: rounding differs slightly
        assert_same_numbers(got, expected, array_type, rtol=1e-9, atol=1e-12)


def test_dropout_and_inference_on_another_namespace(namespace, float64):
    name, array_type = namespace
    layers = lambda: [Dense(6, activation="relu", input_shape=(5,)), Dropout(0.5, seed=3), Dense(3)]  # noqa: E731
    x = np.random.default_rng(1).standard_normal((4, 5))
    y = np.array([0, 2, 1, 1])
    reference = tinycnn.Sequential(layers(), seed=0)
    model = tinycnn.Sequential(layers(), seed=0)
    model.build((5,))
    model.to(name)
    logits = model.forward(tinycnn.to_backend(x, name))  # inference: no dropout
    assert isinstance(logits, array_type)
    np.testing.assert_allclose(to_plain(logits), reference.forward(x), rtol=1e-12)
    expected = run_steps(reference, SGD(0.1), x, y, steps=2)
    got = run_steps(model, SGD(0.1), tinycnn.to_backend(x, name), tinycnn.to_backend(y, name), 2)
    if name == "guarded":  # the same NumPy Generator draws the same masks
        assert_same_numbers(got, expected, array_type)
    else:  # CuPy draws other masks: check the types and that training ran
        assert all(isinstance(p, array_type) for p in got[-2]["params"])
        assert np.isfinite(float(got[0]["loss"]))
