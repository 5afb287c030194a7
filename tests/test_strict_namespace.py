"""No quiet NumPy behind the backend's back: the whole library runs on a *guarded* NumPy.

CuPy refuses implicit conversions (``numpy.asarray(cupy_array)`` raises), so a line of
tinycnn that calls ``numpy.something(x)`` on a layer's array instead of ``xp.something(x)``
works on the CPU and breaks only on a GPU machine. This file catches such lines on the CPU.

``GuardedArray`` is a ``numpy.ndarray`` subclass that raises ``TypeError`` on every NumPy
function (``__array_function__``) and ufunc (``__array_ufunc__``) call, unless the call is
made on its behalf by the guard module: the ``xp`` that ``get_array_module`` returns for it
(it sets a context flag, calls NumPy on plain views and wraps the results back). Its own
operators and methods (``a + b``, ``a @ b``, ``a.sum()``) are allowed, as on a CuPy array.
A subclass of ndarray passes straight through ``numpy.asarray`` without any hook, so the
fixture also replaces ``numpy.asarray``/``array``/``asanyarray``/``ascontiguousarray`` by
versions that refuse a GuardedArray (explicit transfers through ``tinycnn.to_numpy``, the
equivalent of CuPy's ``.get()``, stay allowed).

The same step is then run on every "other" namespace: ``guarded`` here, ``cupy`` on a GPU.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import types

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.layers import Dense, Dropout
from tinycnn.losses import SoftmaxCrossEntropy
from tinycnn.optimizers import SGD, Adam

# ---- the guard --------------------------------------------------------------------------------
_ALLOWED = contextvars.ContextVar("guarded_numpy_allowed", default=False)


@contextlib.contextmanager
def _allowed():
    token = _ALLOWED.set(True)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def _unwrap(obj):
    if isinstance(obj, GuardedArray):
        return obj.view(np.ndarray)
    if isinstance(obj, tuple):
        return tuple(_unwrap(o) for o in obj)
    if isinstance(obj, list):
        return [_unwrap(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if type(obj) is np.ndarray:
        return obj.view(GuardedArray)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    if isinstance(obj, np.random.Generator):
        return _GuardedObject(obj)
    return obj


def _refuse_plain_arrays(what, args):
    """CuPy refuses to mix its arrays with NumPy arrays; so does the guard."""
    stack = list(args)
    while stack:
        a = stack.pop()
        if type(a) is np.ndarray:
            raise TypeError(f"{what}: a plain numpy.ndarray mixed with GuardedArrays")
        if isinstance(a, (list, tuple)):
            stack.extend(a)
        elif isinstance(a, dict):
            stack.extend(a.values())


def _guarded_call(fn, accepts_numpy=False):
    def call(*args, **kwargs):
        if not accepts_numpy:
            _refuse_plain_arrays(getattr(fn, "__name__", "call"), (args, kwargs))
        with _allowed():
            return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))

    call.__name__ = getattr(fn, "__name__", "call")
    return call


class GuardedArray(np.ndarray):
    """An ndarray that only the guard module (and its own operators/methods) may compute on."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        # ``numpy_scalar * guarded`` lands here through the scalar's operator; CuPy accepts
        # it, so a NumPy scalar operand (np.float64(0.1) * g) is let through.
        scalar_operator = method == "__call__" and any(isinstance(a, np.generic) for a in inputs)
        if scalar_operator:
            _refuse_plain_arrays(f"numpy.{ufunc.__name__}", (inputs, out))
        elif not _ALLOWED.get():
            raise TypeError(
                f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} called "
                "directly on a GuardedArray: use xp = tinycnn.backend.get_array_module(x)"
            )
        if out is not None:
            kwargs["out"] = _unwrap(out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is not None:  # written in place into the guarded arrays' memory
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        if not _ALLOWED.get():
            raise TypeError(
                f"numpy.{func.__name__} called directly on a GuardedArray: "
                "use xp = tinycnn.backend.get_array_module(x)"
            )
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __repr__(self):
        with _allowed():
            return "Guarded" + repr(self.view(np.ndarray))

    __str__ = __repr__


def _allow_method(name):
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        _refuse_plain_arrays(f"GuardedArray.{name}", (args, kwargs))
        with _allowed():
            return _wrap(base(self, *args, **kwargs))

    method.__name__ = name
    return method


# Operators and methods of a CuPy array work on it; so do these on a GuardedArray.
_OPERATORS = """add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv
rfloordiv ifloordiv mod rmod pow rpow ipow matmul rmatmul imatmul neg pos abs invert lt le gt
ge eq ne and rand iand or ror ior xor rxor ixor""".split()
_METHODS = """sum mean max min all any argmax argmin prod std var clip cumsum round dot
nonzero""".split()
for _name in [f"__{op}__" for op in _OPERATORS] + _METHODS:
    setattr(GuardedArray, _name, _allow_method(_name))


class _GuardedObject:
    """Wraps an object (a random Generator) whose methods return arrays."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        return _guarded_call(attr) if callable(attr) else attr


_PATCHED = ("asarray", "array", "asanyarray", "ascontiguousarray")
_ORIGINAL = {name: getattr(np, name) for name in _PATCHED}


class GuardModule(types.ModuleType):
    """The ``xp`` of GuardedArrays: numpy's functions, called on plain views, results wrapped."""

    def __init__(self, module=np, name="guarded_numpy"):
        super().__init__(name)
        self._module = module

    def __getattr__(self, name):
        if name == "ndarray":
            return GuardedArray
        attr = _ORIGINAL[name] if self._module is np and name in _ORIGINAL else None
        attr = attr or getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            return GuardModule(attr, f"{self.__name__}.{name}")
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (xp.int8, xp.float32) and constants (xp.inf)
        return _guarded_call(attr, accepts_numpy=name in _PATCHED)  # xp.asarray(host array)


def _refuse_guarded(name):
    original = _ORIGINAL[name]
    to_numpy_code = backend.to_numpy.__code__

    def strict(a, *args, **kwargs):
        contains = isinstance(a, GuardedArray) or (
            isinstance(a, (list, tuple)) and any(isinstance(v, GuardedArray) for v in a)
        )
        if contains and not _ALLOWED.get() and sys._getframe(1).f_code is not to_numpy_code:
            raise TypeError(f"numpy.{name} called directly on a GuardedArray (implicit conversion)")
        return original(a, *args, **kwargs)

    return strict


def unguard(a):
    """A plain NumPy copy of a guarded (or plain) array, for comparisons."""
    return np.array(a.view(np.ndarray) if isinstance(a, GuardedArray) else a, copy=True)


@pytest.fixture
def guarded(monkeypatch):
    """Register the 'guarded' namespace and make numpy.asarray & co. refuse its arrays."""
    module = GuardModule()
    backend.register_namespace("guarded", module, GuardedArray)
    for name in _PATCHED:
        monkeypatch.setattr(np, name, _refuse_guarded(name))
    yield module
    backend.unregister_namespace("guarded")


@pytest.fixture(params=["guarded", pytest.param("cupy", marks=pytest.mark.gpu)])
def namespace(request):
    """Another array namespace than plain NumPy: the guard here, CuPy on a GPU machine."""
    if request.param == "guarded":
        request.getfixturevalue("guarded")
        return "guarded", GuardedArray
    import cupy

    return "cupy", cupy.ndarray


def to_plain(a):
    return unguard(tinycnn.to_numpy(a)) if not isinstance(a, GuardedArray) else unguard(a)


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
