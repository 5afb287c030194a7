"""Shared fixtures and the skip rules for the ``gpu`` and ``torch`` markers.

* Tests marked ``gpu`` run only where CuPy imports and a CUDA device is visible
  (``tinycnn.backend.cupy_available()``); elsewhere they are skipped with the reason.
* Tests marked ``torch`` run only where PyTorch imports; elsewhere they are skipped.
* ``backend_name`` parameterises a test over NumPy and CuPy (the CuPy case carries
  the ``gpu`` marker, so it is skipped on a machine without a GPU).
* ``kernel_path`` parameterises a test over the fast and the reference kernels.
* Every test starts on the NumPy backend in float32 and whatever it changes is put
  back afterwards, so no test can leak a backend or a dtype into the next one.
* ``guarded`` registers the guarded NumPy of tests/guarded_numpy.py (NumPy that refuses
  direct ``numpy`` calls on its arrays, as CuPy does) as the backend ``"guarded"``.
"""

from __future__ import annotations

import functools
import importlib
import types

import numpy as np
import pytest
from guarded_numpy import PATCHED, GuardedArray, GuardModule, refuse_guarded

import tinycnn
from tinycnn import backend, kernels

GPU_SKIP_REASON = (
    "needs CuPy and a visible CUDA device (tinycnn.backend.cupy_available() is False); "
    "install tinycnn[cuda12] or tinycnn[cuda13] on a GPU machine to run it"
)
TORCH_SKIP_REASON = "needs PyTorch for the cross-check (pip install 'tinycnn[torch]')"


@functools.cache
def gpu_available() -> bool:
    return backend.cupy_available()


@functools.cache
def torch_available() -> bool:
    try:
        importlib.import_module("torch")
    except Exception:  # ImportError, or a broken install (missing shared library)
        return False
    return True


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("gpu") is not None and not gpu_available():
            item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))
        if item.get_closest_marker("torch") is not None and not torch_available():
            item.add_marker(pytest.mark.skip(reason=TORCH_SKIP_REASON))


@pytest.fixture(autouse=True)
def _fresh_backend_state():
    """Start every test on NumPy/float32 and restore the settings afterwards."""
    previous = (backend.get_backend(), backend.floatx())
    backend._state.name, backend._state.floatx = "numpy", "float32"
    yield
    backend._state.name, backend._state.floatx = previous


@pytest.fixture
def float64():
    """Build layers and models in float64 (gradient checks, torch cross-checks)."""
    with tinycnn.use_floatx("float64"):
        yield "float64"


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend_name(request):
    """Run the test on each backend; the active backend is switched for its duration."""
    with tinycnn.use_backend(request.param):
        yield request.param


@pytest.fixture(params=["fast", "reference"])
def kernel_path(request):
    """Run the test on the fast CPU kernels and on the readable reference kernels
    (``kernels.use_fast_kernels(False)``); on CuPy both runs use the reference."""
    with kernels.use_fast_kernels(request.param == "fast"):
        yield request.param


class Tagged(np.ndarray):
    """A NumPy array on a simulated device: ``tinycnn.backend`` files it under its own
    namespace, as it does CuPy's, so device placement can be tested without a GPU."""


class TaggedModule(types.ModuleType):
    """The simulated device's ``xp``: NumPy, with new arrays made on the device."""

    def __init__(self):
        super().__init__("tagged_numpy")

    def __getattr__(self, name):
        if name == "asarray":
            return lambda a, dtype=None: np.asarray(a, dtype=dtype).view(Tagged)
        if name == "zeros":  # new arrays (zero biases, running sums) live there too
            return lambda shape, dtype=None: np.zeros(shape, dtype=dtype).view(Tagged)
        return getattr(np, name)


@pytest.fixture
def tagged():
    """Register the simulated device as backend ``"tagged"`` for one test."""
    backend.register_namespace("tagged", TaggedModule(), Tagged)
    yield "tagged"
    backend.unregister_namespace("tagged")


@pytest.fixture
def guarded(monkeypatch):
    """Register the 'guarded' namespace and make numpy.asarray & co. refuse its arrays."""
    module = GuardModule()
    backend.register_namespace("guarded", module, GuardedArray)
    for name in PATCHED:
        monkeypatch.setattr(np, name, refuse_guarded(name))
    yield module
    backend.unregister_namespace("guarded")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shuffled_linspace(shape, seed=0, low=-1.0, high=1.0, dtype="float64"):
    """Distinct values, shuffled (Chainer's max-pooling inputs): no window has a tie,
    and neighbours differ by (high - low) / size, far more than a gradient-check step."""
    size = int(np.prod(shape))
    values = np.linspace(low, high, size, dtype=dtype)
    np.random.default_rng(seed).shuffle(values)
    return values.reshape(shape)


def away_from_zero(shape, seed=0, margin=0.1, dtype="float64"):
    """Random values with |x| in [margin, 1]: no ReLU kink within a gradient-check step."""
    r = np.random.default_rng(seed)
    magnitude = r.uniform(margin, 1.0, size=shape)
    return (np.where(r.random(shape) < 0.5, -1.0, 1.0) * magnitude).astype(dtype)


@pytest.fixture
def tie_free():
    """``tie_free(shape, seed)``: the shuffled linspace above, as a fixture."""
    return shuffled_linspace


@pytest.fixture
def kink_free():
    """``kink_free(shape, seed)``: values away from 0, as a fixture."""
    return away_from_zero


def small_model(seed=0):
    """The small network of the end-to-end checks (14x14x2 input, 4 classes)."""
    L = tinycnn.layers
    return tinycnn.Sequential(
        [
            L.Conv2D(4, 3, activation="relu", input_shape=(14, 14, 2)),
            L.MaxPooling2D(2),
            L.Conv2D(3, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(6, activation="relu"),
            L.Dense(4),
        ],
        seed=seed,
    )


@pytest.fixture
def make_small_model():
    """``make_small_model(seed)``: Conv(4)-Pool-Conv(3)-Pool-Flatten-Dense(6)-Dense(4)."""
    return small_model
