"""Exercises: write the core of a CNN yourself, and check it with one call::

    from tinycnn.exercises import check_im2col
    report = check_im2col(im2col)     # your im2col(x, kh, kw, stride)
    report                            # in a notebook: passed, or the first failing case
    assert report.ok

What you write, and the check that tests it:

- ``im2col(x, kh, kw, stride) -> cols``: :func:`check_im2col`
- ``conv2d_forward(x, kernel, bias, stride, padding) -> y``: :func:`check_conv2d_forward`
- ``conv2d_backward(x, kernel, dy, stride, padding) -> (dx, dkernel, dbias)``:
  :func:`check_conv2d_backward`
- ``maxpool_forward(x, pool_size, stride) -> y``: :func:`check_maxpool_forward`
- ``maxpool_backward(x, dy, pool_size, stride) -> dx``: :func:`check_maxpool_backward`
- ``dense_backward(x, kernel, dy) -> (dx, dkernel, dbias)``: :func:`check_dense_backward`
- ``softmax_cross_entropy(logits, labels) -> (loss, dlogits)``:
  :func:`check_softmax_cross_entropy`
- ``adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon) -> (param, m, v)``:
  :func:`check_adam_step`

Shapes are tinycnn's: images channels-last ``(N, H, W, C)``, kernels ``(kh, kw, C, F)``,
Dense kernels ``(D_in, D_out)``. Each check draws new random cases on every call (over
shapes, strides 1 and 2, odd 'same' padding, overlapping pooling windows with ties,
logits near 1000, Adam's first steps with ``v`` near epsilon), compares with tinycnn's
own layers in float64 (tolerance ~1e-7) and reports the first failing case: its
arguments, the worst entry (expected against got) and the seed to replay it with
``check_x(fn, seed=...)``. It never shows the solution.

The notebooks are in ``examples/exercises/`` (docs/exercises.md says how to use them).
Modules: ``checks.py`` (the eight checks), ``cases.py`` (the cases), ``expected.py``
(the right answers, from tinycnn), ``runner.py`` (running and comparing), ``report.py``.
"""

from .checks import (
    check_adam_step,
    check_conv2d_backward,
    check_conv2d_forward,
    check_dense_backward,
    check_im2col,
    check_maxpool_backward,
    check_maxpool_forward,
    check_softmax_cross_entropy,
)
from .report import CheckReport, Failure

__all__ = [
    "CheckReport",
    "Failure",
    "check_adam_step",
    "check_conv2d_backward",
    "check_conv2d_forward",
    "check_dense_backward",
    "check_im2col",
    "check_maxpool_backward",
    "check_maxpool_forward",
    "check_softmax_cross_entropy",
]
