"""Cheap checks of the arrays handed to a compiled kernel, before it runs.

A compiled loop trusts its arrays: it reads and writes wherever its indices point,
without the bounds checks NumPy does on every access (they would slow the loops
down). An array of the wrong shape then makes it read or write past the end of its
memory: wrong numbers at best, at worst a crash of the whole Python process (a
segmentation fault) with no traceback. So every fast kernel is called through a
Python wrapper that first checks what the loop relies on: the shapes, the dtypes
(float32 or float64, one dtype for all) and, for arrays written in place, the
memory layout. These are a few attribute reads (about a microsecond), never a pass
over the values.

Each error names the kernel, the argument, what was expected and what came.
"""

from __future__ import annotations

import numpy as np

from ..conv_arithmetic import output_size

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(kernel: str, name: str, a, ndim: int | None = None, like=None, like_name=""):
    """``a`` must be a float32/float64 NumPy array with ``ndim`` dimensions, of the
    same dtype as ``like`` (named ``like_name``) if given."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(a).__name__}.")
    if a.dtype not in FLOATS:
        raise TypeError(f"{kernel}: {name} must be float32 or float64, got {a.dtype}.")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must have {ndim} dimensions, got shape {a.shape}.")
    if like is not None and a.dtype != like.dtype:
        raise TypeError(
            f"{kernel}: {name} is {a.dtype} but {like_name} is {like.dtype}; "
            "pass arrays of one dtype."
        )


def same_shape(kernel: str, name: str, a, shape, what: str):
    """``a.shape`` must equal ``shape``, which ``what`` describes (e.g. "param's")."""
    if a.shape != tuple(shape):
        raise ValueError(f"{kernel}: {name} has shape {a.shape}, expected {tuple(shape)} ({what}).")


def writable(kernel: str, name: str, a):
    """``a`` is written in place: it must be C-contiguous (a flat view of it then
    is the array itself, not a copy whose update would be lost) and writeable."""
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{kernel}: {name} (shape {a.shape}) must be C-contiguous: it is updated in "
            "place. Make it with np.ascontiguousarray() first."
        )
    if not a.flags.writeable:
        raise ValueError(
            f"{kernel}: {name} (shape {a.shape}) is read-only; it is updated in place."
        )


def argmax_array(kernel: str, a, shape, what: str):
    """Max-pooling's argmax: an int8 array of ``shape`` (the pooled output's: ``what``)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.int8:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{kernel}: argmax must be an int8 NumPy array, got {got}.")
    same_shape(kernel, "argmax", a, shape, what)


def sizes(kernel: str, **values):
    """Window sizes and strides: positive ints."""
    for name, v in values.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{kernel}: {name} must be a positive int, got {v!r}.")


def image_shape(kernel: str, shape) -> tuple:
    """``x_shape`` (the images a backward pass returns the gradient of): 4 sizes
    (N, H, W, C), returned as a tuple of ints."""
    shape = tuple(shape)
    if len(shape) != 4 or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ValueError(f"{kernel}: x_shape must be 4 sizes (N, H, W, C), got {shape}.")
    return tuple(int(s) for s in shape)


def window_fits(kernel: str, name: str, shape, kh: int, kw: int):
    """A (kh, kw) window must fit in the (N, H, W, C) images ``shape``."""
    if kh > shape[1] or kw > shape[2]:
        raise ValueError(
            f"{kernel}: the {kh}x{kw} window is larger than the {shape[1]}x{shape[2]} "
            f"images of {name} (shape {tuple(shape)})."
        )


def pool_window(kernel: str, ph: int, pw: int):
    """argmax is int8: it holds window offsets 0 .. ph * pw - 1 only up to 127."""
    if ph * pw > 127:
        raise ValueError(
            f"{kernel}: a {ph}x{pw} pool has {ph * pw} positions; at most 127 are supported "
            "(argmax is int8)."
        )


def conv_kernel(kernel: str, x, w, bias=None):
    """A convolution's kernel (kh, kw, C, F) for images x (N, H, W, C), and its bias (F,)."""
    float_array(kernel, "x", x, 4)
    float_array(kernel, "kernel", w, 4, like=x, like_name="x")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"{kernel}: kernel has shape {w.shape} (kh, kw, C, F) for {w.shape[2]} input "
            f"channels, but x has shape {x.shape} ({x.shape[3]} channels)."
        )
    if bias is not None:
        float_array(kernel, "bias", bias, 1, like=x, like_name="x")
        same_shape(kernel, "bias", bias, (w.shape[3],), "one per filter of kernel")


def _conv_output(kernel: str, x, w, stride: int):
    """(Ho, Wo) of a 'valid' convolution of x by w, after checking the window fits."""
    sizes(kernel, stride=stride)
    window_fits(kernel, "x", x.shape, w.shape[0], w.shape[1])
    return output_size(x.shape[1], w.shape[0], stride), output_size(x.shape[2], w.shape[1], stride)


def conv2d(kernel: str, x, w, bias, stride: int):
    """Arguments of conv2d_forward: x (N, H, W, C), kernel (kh, kw, C, F), bias (F,)."""
    conv_kernel(kernel, x, w, bias)
    _conv_output(kernel, x, w, stride)


def conv2d_backward(kernel: str, x, w, y, dy, stride: int):
    """Arguments of conv2d_backward: y and dy are the (N, Ho, Wo, F) output and its gradient."""
    conv_kernel(kernel, x, w)
    ho, wo = _conv_output(kernel, x, w, stride)
    for name, a in (("y", y), ("dy", dy)):
        float_array(kernel, name, a, 4, like=x, like_name="x")
        same_shape(kernel, name, a, (x.shape[0], ho, wo, w.shape[3]),
                   f"the output shape for x {x.shape} and kernel {w.shape}")  # fmt: skip


def conv_relu_pool(kernel: str, x, w, bias, ph: int, pw: int):
    """Arguments of conv_relu_pool_forward; returns the pooled shape (N, Hp, Wp, F)."""
    conv_kernel(kernel, x, w, bias)
    ho, wo = _conv_output(kernel, x, w, 1)
    sizes(kernel, ph=ph, pw=pw)
    pool_window(kernel, ph, pw)
    if ph > ho or pw > wo:
        raise ValueError(
            f"{kernel}: the {ph}x{pw} pool is larger than the {ho}x{wo} convolution output "
            f"(x {x.shape}, kernel {w.shape})."
        )
    return (x.shape[0], ho // ph, wo // pw, w.shape[3])


def conv_relu_pool_backward(kernel: str, x, w, dy, out, argmax, ph: int, pw: int):
    """Arguments of conv_relu_pool_backward: dy, out, argmax all of the pooled shape."""
    pooled = conv_relu_pool(kernel, x, w, None, ph, pw)
    for name, a in (("dy", dy), ("out", out)):
        float_array(kernel, name, a, 4, like=x, like_name="x")
        same_shape(kernel, name, a, pooled,
                   f"the pooled output shape for x {x.shape} and kernel {w.shape}")  # fmt: skip
    argmax_array(kernel, argmax, pooled, "the shape of dy")
