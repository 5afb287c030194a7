"""The eight checks: one call each, ``report = check_x(your_function)``.

Each check runs the student's function on 6 to 10 cases (``cases.py``: the simplest
first, then one difficulty at a time, then random ones; new cases on every call unless
``seed`` is given), compares with tinycnn's own answer (``expected.py``) and returns a
:class:`~tinycnn.exercises.report.CheckReport`: ``report.ok`` is True when every case
passed, else the report describes the first failing case.

Arguments are passed by position, as float64 copies (a solution may work in place or
return new arrays); sizes, steps and ``t`` are Python ints, ``bias`` is always an array,
``padding`` is ``"valid"`` or ``"same"`` as in ``Conv2D``, ``labels`` are int64.
"""

from __future__ import annotations

from . import cases, expected
from .report import CheckReport
from .runner import Output, run_check


def check_im2col(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, kh, kw, stride) -> cols``.

    x ``(N, H, W, C)``; cols ``(N*Ho*Wo, kh*kw*C)`` with Ho = (H - kh) // stride + 1
    (no padding): row ``(n, oh, ow)`` (in that order) holds the window whose top-left
    pixel is ``(oh*stride, ow*stride)``, its columns in ``(i, j, c)`` order, so that
    ``cols @ kernel.reshape(-1, F)`` is the convolution.
    """
    outputs = [Output("cols", "(N*Ho*Wo, kh*kw*C)")]
    return run_check("check_im2col", fn, cases.im2col_cases, expected.im2col, outputs, seed)


def check_conv2d_forward(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, kernel, bias, stride, padding) -> y``.

    x ``(N, H, W, C)``, kernel ``(kh, kw, C, F)``, bias ``(F,)``; y ``(N, Ho, Wo, F)``,
    the cross-correlation (as Keras's ``Conv2D``, the kernel is not flipped) plus bias.
    ``padding``: ``"valid"`` (none) or ``"same"`` (zeros, Ho = ceil(H / stride), an odd
    total with the extra row or column at the bottom or right).
    """
    outputs = [Output("y", "(N, Ho, Wo, F)")]
    make = cases.conv_cases
    return run_check("check_conv2d_forward", fn, make, expected.conv2d_forward, outputs, seed)


def check_conv2d_backward(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, kernel, dy, stride, padding) -> (dx, dkernel, dbias)``.

    x ``(N, H, W, C)``, kernel ``(kh, kw, C, F)``, dy ``(N, Ho, Wo, F)`` (dL/dy of the
    forward pass with the same stride and padding); dx ``(N, H, W, C)``, dkernel
    ``(kh, kw, C, F)``, dbias ``(F,)``.
    """
    outputs = [
        Output("dx", "(N, H, W, C), the shape of x"),
        Output("dkernel", "(kh, kw, C, F), the shape of kernel"),
        Output("dbias", "(F,)"),
    ]

    def make(rng):
        return cases.conv_cases(rng, backward=True)

    return run_check("check_conv2d_backward", fn, make, expected.conv2d_backward, outputs, seed)


def check_maxpool_forward(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, pool_size, stride) -> y``.

    x ``(N, H, W, C)``; y ``(N, Ho, Wo, C)``, Ho = (H - pool_size) // stride + 1: the
    maximum of each ``pool_size x pool_size`` window, channel by channel ('valid').
    """
    outputs = [Output("y", "(N, Ho, Wo, C)")]
    make = cases.pool_cases
    return run_check("check_maxpool_forward", fn, make, expected.maxpool_forward, outputs, seed)


def check_maxpool_backward(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, dy, pool_size, stride) -> dx``.

    x ``(N, H, W, C)``, dy ``(N, Ho, Wo, C)``; dx ``(N, H, W, C)``: each dy goes to the
    maximum of its window; on a tie, to the first maximum in row-major window order
    (as TensorFlow and PyTorch do); where windows overlap, the gradients add up.
    """
    outputs = [Output("dx", "(N, H, W, C), the shape of x")]

    def make(rng):
        return cases.pool_cases(rng, backward=True)

    return run_check("check_maxpool_backward", fn, make, expected.maxpool_backward, outputs, seed)


def check_dense_backward(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(x, kernel, dy) -> (dx, dkernel, dbias)`` for y = x @ kernel + bias.

    x ``(N, D_in)``, kernel ``(D_in, D_out)``, dy ``(N, D_out)``; dx ``(N, D_in)``,
    dkernel ``(D_in, D_out)``, dbias ``(D_out,)`` (dy is already the gradient of the
    batch's loss: nothing more to average).
    """
    outputs = [
        Output("dx", "(N, D_in), the shape of x"),
        Output("dkernel", "(D_in, D_out), the shape of kernel"),
        Output("dbias", "(D_out,)"),
    ]
    make = cases.dense_cases
    return run_check("check_dense_backward", fn, make, expected.dense_backward, outputs, seed)


def check_softmax_cross_entropy(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(logits, labels) -> (loss, dlogits)``.

    logits ``(N, C)`` float64, labels ``(N,)`` int64 in [0, C); loss: one number, the
    mean over the batch of -log softmax(logits)[label]; dlogits ``(N, C)``, its gradient.
    """
    outputs = [Output("loss", "()"), Output("dlogits", "(N, C), the shape of logits")]
    make, want = cases.softmax_cases, expected.softmax_cross_entropy
    return run_check("check_softmax_cross_entropy", fn, make, want, outputs, seed)


def check_adam_step(fn, seed: int | None = None) -> CheckReport:
    """Check ``fn(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon) -> (param, m, v)``.

    param, grad, m, v: arrays of one shape; ``t``: the step's number, from 1. Keras's
    form: m and v are updated first, then
    ``param - lr_t * m / (sqrt(v) + epsilon)`` with
    ``lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
    """
    outputs = [
        Output("param", "the shape of param"),
        Output("m", "the shape of param"),
        Output("v", "the shape of param"),
    ]
    return run_check("check_adam_step", fn, cases.adam_cases, expected.adam_step, outputs, seed)
