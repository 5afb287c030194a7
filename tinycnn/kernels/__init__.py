"""Array kernels the layers call: convolution, max-pooling, bias + ReLU.

Each kernel has a readable reference written against ``xp`` (``reference.py``; it
runs on NumPy and CuPy alike) and, for NumPy arrays, a fast twin: compiled loops
(``cpu_numba.py``) and, for convolutions, the same im2col arithmetic done in
cache-sized blocks on all cores (``cpu_conv.py``). Tests check that both give the
same numbers, NaN and inf included (both follow np.max and PyTorch). The fast
kernels check their arguments' shapes and dtypes before their compiled loops run
(``checks.py``): a wrong shape is a clear error, not a crash. Arrays and sizes are
passed by position, flags by name: ``conv2d_forward(x, kernel, bias, stride=1, relu=True)``.

What runs where ("fast": a NumPy array, numba installed and the fast kernels on; a
CuPy array, or ``use_fast_kernels(False)``, always takes the reference)::

    work                  reference             fast                          decided by
    ReLU, bias + ReLU,    reference.py          cpu_numba.py: one pass        _impl below
      max-pooling
    Conv2D                reference.py: im2col  cpu_conv.py: a few images at  _impl below
                          + one matmul          a time, on every core
      its blocks          -                     Winograd F(2x2, 3x3) for a    conv_algorithm,
                                                3x3 kernel, stride 1, even    winograd.applies
                                                output, >= 32 input channels  (cpu_conv.py)
                                                (winograd.py); else im2col
    Conv2D(relu) then     each layer on its     one fused step, each block    models/fusion.py
      MaxPooling2D        own                   pooled while in cache, for a  (ConvReluPool.applies)
                                                stride-1 'valid' conv and a
                                                'valid' pool, stride = size
    Adam's update         optimizers/adam.py    cpu_numba.adam_update         Adam.update_param
    im2col, col2im        reference.py always: the lessons' entry points (the fast convolution
                          unfolds its blocks itself)

``use_fast_kernels(False)`` forces the reference path, to compare or to learn:
called on its own it switches until the next call; as ``with use_fast_kernels(False):``
it switches for the block only.
"""

from __future__ import annotations

import warnings

from .. import backend
from . import reference

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
    """True when the compiled CPU kernels could be imported (numba and threadpoolctl)."""
    return cpu_numba is not None


class use_fast_kernels:  # lower case: to its users it is a function, like use_backend
    """Switch the compiled CPU kernels on or off.

    ``use_fast_kernels(False)`` switches to the reference kernels until switched back;
    ``with use_fast_kernels(False): ...`` only for the block, then the previous
    setting comes back (even after an error). Without numba, on stays off.

    A class rather than a ``contextlib.contextmanager`` generator: a generator's body
    runs only when the ``with`` statement enters it, so the plain call did nothing.
    Here the switch happens on the call itself, and leaving a ``with`` undoes it.
    """

    def __init__(self, enabled: bool = True):
        self.previous = _state["fast"]
        _state["fast"] = bool(enabled) and cpu_numba is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _state["fast"] = self.previous


def is_fast(array) -> bool:
    """True when ``array`` will be processed by the compiled CPU kernels."""
    return _state["fast"] and backend.is_numpy(array)


def _impl(array, fast_module=None):
    """The module whose kernel should process ``array``: ``fast_module`` (by default
    cpu_numba) for plain NumPy arrays with the fast kernels on, else the reference."""
    return (fast_module or cpu_numba) if is_fast(array) else reference


def im2col(x, kh, kw, stride=1):
    """``reference.im2col``, on any array: the unfolding to study. (The fast convolution
    unfolds a few images at a time inside ``cpu_conv.py``, never through this.)"""
    return reference.im2col(x, kh, kw, stride)


def col2im(dcols, x_shape, kh, kw, stride=1):
    """``reference.col2im``, on any array: the adjoint of :func:`im2col`."""
    return reference.col2im(dcols, x_shape, kh, kw, stride)


def maxpool_forward(x, ph, pw, sh, sw):
    return _impl(x).maxpool_forward(x, ph, pw, sh, sw)


def maxpool_backward(dy, argmax, x_shape, ph, pw, sh, sw):
    return _impl(dy).maxpool_backward(dy, argmax, x_shape, ph, pw, sh, sw)


def bias_relu(y, bias, *, relu):
    return _impl(y).bias_relu(y, bias, relu=relu)


def bias_relu_backward(dy, y, *, relu, with_bias):
    return _impl(dy).bias_relu_backward(dy, y, relu=relu, with_bias=with_bias)


def relu_forward(z):
    return _impl(z).relu_forward(z)


def relu_backward(dy, y):
    return _impl(dy).relu_backward(dy, y)


# for convolutions the fast twin is the cache-blocked, batch-split cpu_conv.py
def conv2d_forward(x, kernel, bias, *, stride, relu):
    return _impl(x, cpu_conv).conv2d_forward(x, kernel, bias, stride=stride, relu=relu)


def conv2d_backward(x, kernel, y, dy, *, stride, relu, with_bias, input_grad):
    return _impl(dy, cpu_conv).conv2d_backward(
        x, kernel, y, dy, stride=stride, relu=relu, with_bias=with_bias, input_grad=input_grad
    )


def conv_relu_pool_forward(x, kernel, bias, ph, pw):
    return _impl(x, cpu_conv).conv_relu_pool_forward(x, kernel, bias, ph, pw)


def conv_relu_pool_backward(x, kernel, dy, out, argmax, ph, pw, *, input_grad):
    impl = _impl(dy, cpu_conv)
    return impl.conv_relu_pool_backward(x, kernel, dy, out, argmax, ph, pw, input_grad=input_grad)


for _f in (
    maxpool_forward,
    maxpool_backward,
    bias_relu,
    bias_relu_backward,
    relu_forward,
    relu_backward,
    conv2d_forward,
    conv2d_backward,
    conv_relu_pool_forward,
    conv_relu_pool_backward,
):
    _f.__doc__ = f"Dispatch to the fast or reference ``{_f.__name__}``; see reference.py."
