"""Array kernels the layers call: convolution (im2col/col2im), max-pooling, bias + ReLU, Adam.

Each kernel has a readable reference written against ``xp`` (``reference.py``; it
runs on NumPy and CuPy alike) and, for NumPy arrays, a fast twin: compiled loops
(``cpu_numba.py``) and, for convolutions, the same im2col arithmetic done in
cache-sized blocks on all cores (``cpu_conv.py``). The functions below pick one:
the fast twin when the arrays are plain NumPy arrays and numba is installed, the
reference otherwise (CuPy arrays, or any other array type). Tests check that both
give the same numbers.

``use_fast_kernels(False)`` forces the reference path, to compare or to learn.
"""

from __future__ import annotations

import contextlib
import warnings

from .. import backend
from . import reference
from .reference import conv_output_size  # noqa: F401

try:
    from . import cpu_conv, cpu_numba
except ImportError as error:  # numba or threadpoolctl missing: all still works, only slower
    cpu_numba = cpu_conv = None
    warnings.warn(
        f"tinycnn's fast CPU kernels are off ({error}): it uses its plain NumPy kernels, "
        "which are several times slower. Install numba and threadpoolctl "
        "(pip install numba threadpoolctl) for the fast path.",
        RuntimeWarning,
        stacklevel=2,
    )

_state = {"fast": cpu_numba is not None}


def fast_kernels_available() -> bool:
    return cpu_numba is not None


@contextlib.contextmanager
def use_fast_kernels(enabled: bool = True):
    """Temporarily switch the compiled CPU kernels on or off."""
    previous = _state["fast"]
    _state["fast"] = bool(enabled) and cpu_numba is not None
    try:
        yield
    finally:
        _state["fast"] = previous


def is_fast(array) -> bool:
    """True when ``array`` will be processed by the compiled CPU kernels."""
    return _state["fast"] and backend.is_numpy(array)


def _impl(array, fast_module=None):
    """The module whose kernel should process ``array``: ``fast_module`` (by default
    cpu_numba) for plain NumPy arrays with the fast kernels on, else the reference."""
    return (fast_module or cpu_numba) if is_fast(array) else reference


def im2col(x, kh, kw, stride=1, out=None):
    return _impl(x).im2col(x, kh, kw, stride, out)


def col2im(dcols, x_shape, kh, kw, stride=1):
    return _impl(dcols).col2im(dcols, x_shape, kh, kw, stride)


def maxpool_forward(x, ph, pw, sh, sw):
    return _impl(x).maxpool_forward(x, ph, pw, sh, sw)


def maxpool_backward(dy, argmax, x_shape, ph, pw, sh, sw):
    return _impl(dy).maxpool_backward(dy, argmax, x_shape, ph, pw, sh, sw)


def bias_relu(y, bias, relu):
    return _impl(y).bias_relu(y, bias, relu)


def bias_relu_backward(dy, y, relu, with_bias, out=None):
    return _impl(dy).bias_relu_backward(dy, y, relu, with_bias, out)


def relu_forward(z):
    return _impl(z).relu_forward(z)


def relu_backward(dy, y):
    return _impl(dy).relu_backward(dy, y)


def adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    return _impl(param).adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon)


# for convolutions the fast twin is the cache-blocked, batch-split cpu_conv.py
def conv2d_forward(x, kernel, bias, relu, stride=1):
    return _impl(x, cpu_conv).conv2d_forward(x, kernel, bias, relu, stride)


def conv2d_backward(x, kernel, y, dy, relu, with_bias, stride, input_grad):
    impl = _impl(dy, cpu_conv)
    return impl.conv2d_backward(x, kernel, y, dy, relu, with_bias, stride, input_grad)


def conv_relu_pool_forward(x, kernel, bias, ph, pw):
    return _impl(x, cpu_conv).conv_relu_pool_forward(x, kernel, bias, ph, pw)


def conv_relu_pool_backward(x, kernel, dy, out, argmax, ph, pw, input_grad):
    impl = _impl(dy, cpu_conv)
    return impl.conv_relu_pool_backward(x, kernel, dy, out, argmax, ph, pw, input_grad)


for _f in (
    im2col,
    col2im,
    maxpool_forward,
    maxpool_backward,
    bias_relu,
    bias_relu_backward,
    relu_forward,
    relu_backward,
    adam_update,
    conv2d_forward,
    conv2d_backward,
    conv_relu_pool_forward,
    conv_relu_pool_backward,
):
    _f.__doc__ = f"Dispatch to the fast or reference ``{_f.__name__}``; see reference.py."
