"""The one place that knows which array library is active: NumPy (CPU) or CuPy (GPU).

Every layer, loss and optimizer asks this module for an *array module* ``xp`` and
writes its arithmetic against it (``xp.zeros``, ``xp.maximum``, ``x @ w`` ...). NumPy
and CuPy share the same API, so one source runs on both. This is the design Chainer
made popular (``xp = chainer.backend.get_array_module(x)``).

Two questions are answered here:

* Which library creates *new* arrays (weights, buffers)?  The active backend, set
  with :func:`set_backend` or temporarily with ``with use_backend("cupy"):``.
* Which library computes on an *existing* array?  The one the array belongs to:
  :func:`get_array_module`. So a model moved with ``model.to("cupy")`` computes on
  the GPU whatever the active backend is.

The default float type (``"float32"``, or ``"float64"`` for gradient checks) is also
kept here, with the Keras names :func:`floatx` and :func:`set_floatx`.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

import numpy

_BACKENDS = ("numpy", "cupy")
_FLOAT_TYPES = ("float32", "float64")


class _State(threading.local):
    """Per-thread settings: the active backend name and the default float type."""

    def __init__(self):
        self.name = "numpy"
        self.floatx = "float32"


_state = _State()
# Extra array namespaces registered by tests (for example a guarded NumPy that
# refuses direct ``numpy.*`` calls); name -> (module, array type).
_extra_namespaces: dict[str, tuple[object, type]] = {}


def _import_cupy():
    """Import CuPy and check a GPU is visible; raise a helpful error otherwise."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        raise RuntimeError(
            "The 'cupy' backend needs CuPy, which is not installed. Install the extra "
            "that matches your CUDA version: pip install 'tinycnn[cuda12]' or "
            "pip install 'tinycnn[cuda13]'."
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing, no device, ...
        raise RuntimeError(
            f"CuPy is installed but no CUDA GPU is usable ({err}). "
            "Use the 'numpy' backend on this machine."
        ) from err
    if count < 1:
        raise RuntimeError("CuPy is installed but no CUDA GPU is visible. Use the 'numpy' backend.")
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and at least one GPU is visible."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def _module_for(name: str):
    if name == "numpy":
        return numpy
    if name == "cupy":
        return _import_cupy()
    if name in _extra_namespaces:
        return _extra_namespaces[name][0]
    raise ValueError(f"Unknown backend {name!r}: expected one of {_BACKENDS}.")


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy" or "cupy") the library that creates new arrays.

    Fails at once if CuPy is asked for and cannot be used, with the fix in the message.
    """
    _module_for(name)  # validates the name and, for CuPy, the device
    _state.name = name


def get_backend() -> str:
    """The active backend's name: ``"numpy"`` or ``"cupy"``."""
    return _state.name


@contextlib.contextmanager
def use_backend(name: str):
    """Temporarily switch backend: ``with use_backend("cupy"): model = ...``."""
    previous = _state.name
    set_backend(name)
    try:
        yield
    finally:
        _state.name = previous


def xp():
    """The active backend's array module (``numpy`` or ``cupy``)."""
    return _module_for(_state.name)


def get_array_module(*arrays):
    """The array module that ``arrays`` belong to (CuPy if any is a CuPy array).

    Non-array arguments (``None``, Python numbers) are ignored.
    """
    for a in arrays:
        for module, array_type in _extra_namespaces.values():
            if isinstance(a, array_type):
                return module
        if type(a).__module__.startswith("cupy"):
            return _import_cupy()
    return numpy


def backend_of(array) -> str:
    """The backend name an array belongs to: ``"numpy"``, ``"cupy"`` or a test namespace."""
    for name, (_, array_type) in _extra_namespaces.items():
        if isinstance(array, array_type):
            return name
    return "cupy" if type(array).__module__.startswith("cupy") else "numpy"


def is_numpy(array) -> bool:
    """True for a plain NumPy array: the fast CPU kernels (numba) may run on it."""
    return type(array) is numpy.ndarray


def to_numpy(array):
    """Copy an array of any backend to a NumPy array (a no-op for NumPy arrays)."""
    if hasattr(array, "get") and backend_of(array) == "cupy":
        return array.get()
    return numpy.asarray(array)


def to_backend(array, name: str | None = None):
    """Move an array to backend ``name`` (default: the active one)."""
    name = name or _state.name
    module = _module_for(name)
    if backend_of(array) == name:
        return array
    return module.asarray(to_numpy(array))


def synchronize(array=None) -> None:
    """Wait for the GPU to finish queued work (a no-op on NumPy). Used only for timing."""
    if array is not None and backend_of(array) == "cupy":
        _import_cupy().cuda.get_current_stream().synchronize()
    elif array is None and _state.name == "cupy":
        _import_cupy().cuda.get_current_stream().synchronize()


def floatx() -> str:
    """The default float type of new layers and models: ``"float32"`` or ``"float64"``."""
    return _state.floatx


def set_floatx(dtype: str) -> None:
    """Set the default float type (``"float64"`` for gradient checks), as in Keras."""
    dtype = numpy.dtype(dtype).name
    if dtype not in _FLOAT_TYPES:
        raise ValueError(f"floatx must be one of {_FLOAT_TYPES}, got {dtype!r}.")
    _state.floatx = dtype


@contextlib.contextmanager
def use_floatx(dtype: str):
    """Temporarily change the default float type: ``with use_floatx("float64"): ...``."""
    previous = _state.floatx
    set_floatx(dtype)
    try:
        yield
    finally:
        _state.floatx = previous


def register_namespace(name: str, module, array_type: type) -> None:
    """Register an extra array namespace (used by tests to run layers on a guard type)."""
    _extra_namespaces[name] = (module, array_type)


def unregister_namespace(name: str) -> None:
    """Undo :func:`register_namespace` (the active backend falls back to NumPy)."""
    _extra_namespaces.pop(name, None)
    if _state.name == name:
        _state.name = "numpy"
