"""A *guarded* NumPy: NumPy that refuses direct ``numpy`` calls on its arrays, as CuPy does.

CuPy refuses implicit conversions (``numpy.asarray(cupy_array)`` raises), so a line of
tinycnn that calls ``numpy.something(x)`` on a layer's array instead of ``xp.something(x)``
works on the CPU and breaks only on a GPU machine. The guard catches such lines on the CPU.

``GuardedArray`` is a ``numpy.ndarray`` subclass that raises ``TypeError`` on every NumPy
function (``__array_function__``) and ufunc (``__array_ufunc__``) call, unless the call is
made on its behalf by the guard module: the ``xp`` that ``get_array_module`` returns for it
(it sets a context flag, calls NumPy on plain views and wraps the results back). Its own
operators and methods (``a + b``, ``a @ b``, ``a.sum()``) are allowed, as on a CuPy array.
A subclass of ndarray passes straight through ``numpy.asarray`` without any hook, so the
``guarded`` fixture (conftest.py) also replaces ``numpy.asarray``/``array``/``asanyarray``/
``ascontiguousarray`` by the versions of :func:`refuse_guarded`, which refuse a GuardedArray
(explicit transfers through ``tinycnn.to_numpy``, the equivalent of CuPy's ``.get()``, stay
allowed). A helper module, not a test file: conftest.py and the tests import it.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import types

import numpy as np

import tinycnn
from tinycnn import backend

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


PATCHED = ("asarray", "array", "asanyarray", "ascontiguousarray")
_ORIGINAL = {name: getattr(np, name) for name in PATCHED}


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
        return _guarded_call(attr, accepts_numpy=name in PATCHED)  # xp.asarray(host array)


def refuse_guarded(name):
    """``numpy.<name>`` that refuses a GuardedArray unless called by ``tinycnn.to_numpy``."""
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


def to_plain(a):
    """A plain NumPy copy of an array of any backend (guarded, NumPy or CuPy)."""
    return unguard(tinycnn.to_numpy(a)) if not isinstance(a, GuardedArray) else unguard(a)
