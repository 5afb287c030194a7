"""The cases each check feeds the student's function: drawn at random, from a seed.

Every call of a check draws new cases (a fresh seed from the operating system's entropy,
``numpy.random.SeedSequence()``), so a solution tuned to one example does not pass; the
seed is printed with a failure and ``check_x(fn, seed=...)`` draws the same cases again.

The first cases of each check are the simplest (one image, one channel), the next ones
each add one difficulty, named in the case's ``hint``: several channels, a non-square
kernel, stride 2, 'same' padding with an odd total, overlapping pooling windows with
ties, logits near 1000, Adam's first steps with ``v`` near epsilon. The last few are
random mixtures. Sizes are small, so that every check runs in a fraction of a second.

Arguments are given in the order of the student's signature (they are passed by
position): images channels-last ``(N, H, W, C)``, kernels ``(kh, kw, C, F)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conv_arithmetic import output_hw, paddings


@dataclass
class Case:
    """One call of the student's function.

    Attributes:
        args: the arguments by name, in the order of the signature (arrays are float64,
            labels int64, sizes and steps Python ints, hyper-parameters floats).
        hint: what this case tests, shown with a failure.
    """

    args: dict
    hint: str

    def describe(self) -> str:
        """The arguments in words: arrays by shape, numbers and strings by value."""
        parts = []
        for name, value in self.args.items():
            if isinstance(value, np.ndarray):
                parts.append(f"{name} {tuple(value.shape)}")
            else:
                parts.append(f"{name} {value!r}")
        return ", ".join(parts)


def new_seed() -> int:
    """A fresh seed: 32 bits of the operating system's entropy via ``SeedSequence()``
    (short enough to copy from a report into ``seed=``)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


# ---- images and sizes ---------------------------------------------------------------------
def _images(rng, shape, whole_numbers: bool = False):
    """Random float64 images; ``whole_numbers``: small integers, so windows have ties."""
    if whole_numbers:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


def _odd_same_total(h: int, k: int, stride: int) -> bool:
    (top, bottom), _ = paddings("same", (h, h), (k, k), (stride, stride))
    return (top + bottom) % 2 == 1


# ---- im2col -------------------------------------------------------------------------------
def im2col_cases(rng) -> list[Case]:
    """Arguments ``(x, kh, kw, stride)``; 'valid' only (im2col never pads)."""
    specs = [  # (n, h, w, c, kh, kw, stride, hint)
        (1, 4, 4, 1, 3, 3, 1, "the simplest: one image, one channel, a 3x3 window, stride 1"),
        (1, 4, 5, 3, 2, 2, 1, "several channels: a row holds the whole window, every channel"),
        (2, 5, 6, 2, 2, 3, 1, "two images, a non-square window (kh != kw) and H != W"),
        (2, 7, 8, 2, 3, 2, 2, "stride 2; along W the last column is in no window"),
        (1, 9, 6, 1, 1, 1, 2, "a 1x1 window with stride 2"),
    ]
    cases = [
        Case({"x": rng.standard_normal((n, h, w, c)), "kh": kh, "kw": kw, "stride": s}, hint)
        for n, h, w, c, kh, kw, s, hint in specs
    ]
    for _ in range(3):
        kh, kw, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = kh + int(rng.integers(0, 6)), kw + int(rng.integers(0, 6))
        x = rng.standard_normal((n, h, w, c))
        cases.append(Case({"x": x, "kh": kh, "kw": kw, "stride": stride}, "a random case"))
    return cases


# ---- convolution --------------------------------------------------------------------------
_ODD_SAME = (
    "'same' padding with an odd total: the extra row/column goes at the bottom/right, "
    "as in TensorFlow and Keras"
)
_SAME_STRIDE_2 = "stride 2 with 'same' padding (Ho = ceil(H / 2)); the total along H is odd"
_CONV_SPECS = [  # (n, h, w, c, f, kh, kw, stride, padding, hint)
    (1, 4, 4, 1, 1, 3, 3, 1, "valid", "the simplest: one image, one channel, one filter"),
    (2, 5, 6, 3, 2, 2, 3, 1, "valid", "several images, channels and filters; kh != kw"),
    (1, 5, 5, 2, 3, 3, 3, 1, "same", "'same' padding, 1 pixel on every side"),
    (2, 5, 6, 2, 2, 2, 4, 1, "same", _ODD_SAME),
    (2, 7, 8, 2, 3, 3, 3, 2, "valid", "stride 2, 'valid'; along W the last column is in no window"),
    (1, 6, 7, 3, 2, 3, 3, 2, "same", _SAME_STRIDE_2),
]


def _conv_case(rng, n, h, w, c, f, kh, kw, stride, padding, hint, backward: bool) -> Case:
    x = rng.standard_normal((n, h, w, c))
    kernel = rng.standard_normal((kh, kw, c, f))
    if not backward:
        args = {"x": x, "kernel": kernel, "bias": rng.standard_normal(f)}
    else:
        ho, wo = output_hw(padding, (h, w), (kh, kw), (stride, stride))
        args = {"x": x, "kernel": kernel, "dy": rng.standard_normal((n, ho, wo, f))}
    return Case({**args, "stride": stride, "padding": padding}, hint)


def conv_cases(rng, backward: bool = False) -> list[Case]:
    """Arguments ``(x, kernel, bias, stride, padding)``, or with ``backward``
    ``(x, kernel, dy, stride, padding)`` (``dy`` has the output's shape)."""
    cases = [_conv_case(rng, *spec, backward=backward) for spec in _CONV_SPECS]
    for _ in range(3):
        kh, kw, stride = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
        padding = str(rng.choice(["valid", "same"]))
        n, c, f = (int(v) for v in rng.integers(1, 4, size=3))
        h, w = kh + int(rng.integers(0, 5)), kw + int(rng.integers(0, 5))
        hint = "a random case"
        if padding == "same" and (_odd_same_total(h, kh, stride) or _odd_same_total(w, kw, stride)):
            hint = "a random case, 'same' padding with an odd total"
        cases.append(_conv_case(rng, n, h, w, c, f, kh, kw, stride, padding, hint, backward))
    return cases


# ---- max-pooling --------------------------------------------------------------------------
_TIES = "whole-number inputs: windows have ties, and the first maximum in row-major order wins"
_OVERLAP = "overlapping windows (pool 3, stride 2): a pixel can be the maximum of two windows"
_POOL_SPECS = [  # (n, h, w, c, pool_size, stride, whole_numbers, hint)
    (1, 4, 4, 1, 2, 2, False, "the simplest: one image, one channel, 2x2 windows, stride 2"),
    (2, 5, 6, 3, 2, 2, False, "several channels; H = 5: the last row is in no window"),
    (1, 7, 7, 2, 3, 2, False, _OVERLAP),
    (2, 4, 6, 2, 2, 2, True, _TIES),
    (1, 6, 5, 2, 3, 1, True, "overlapping windows (pool 3, stride 1) and ties"),
    (2, 5, 5, 1, 2, 1, True, "overlapping windows (pool 2, stride 1) and ties"),
    (1, 7, 9, 2, 3, 3, True, "3x3 windows, stride 3, ties; the last column is in no window"),
]


def _pool_case(rng, n, h, w, c, pool, stride, whole, hint, backward: bool) -> Case:
    x = _images(rng, (n, h, w, c), whole)
    if not backward:
        return Case({"x": x, "pool_size": pool, "stride": stride}, hint)
    ho, wo = output_hw("valid", (h, w), (pool, pool), (stride, stride))
    dy = rng.standard_normal((n, ho, wo, c))
    return Case({"x": x, "dy": dy, "pool_size": pool, "stride": stride}, hint)


def pool_cases(rng, backward: bool = False) -> list[Case]:
    """Arguments ``(x, pool_size, stride)``, or with ``backward`` ``(x, dy, pool_size,
    stride)``; 'valid' windows (a last partial window is dropped)."""
    cases = [_pool_case(rng, *spec, backward=backward) for spec in _POOL_SPECS]
    for _ in range(2):
        pool, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        h, w = pool + int(rng.integers(0, 5)), pool + int(rng.integers(0, 5))
        hint = "a random case with ties" + (", overlapping windows" if stride < pool else "")
        cases.append(_pool_case(rng, n, h, w, c, pool, stride, True, hint, backward))
    return cases


# ---- dense --------------------------------------------------------------------------------
def dense_cases(rng) -> list[Case]:
    """Arguments ``(x, kernel, dy)``: x ``(N, D_in)``, kernel ``(D_in, D_out)``, dy ``(N, D_out)``."""
    specs = [  # (n, d_in, d_out, hint)
        (1, 3, 2, "one sample"),
        (4, 5, 3, "a batch of 4: each sample adds its part to dkernel and dbias"),
        (
            3,
            4,
            4,
            "D_in = D_out: a transposed kernel has the right shape here, not the right values",
        ),
        (6, 2, 7, "more samples than inputs"),
    ]
    specs += [
        (int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), "a random case")
        for _ in range(2)
    ]
    return [
        Case(
            {
                "x": rng.standard_normal((n, d_in)),
                "kernel": rng.standard_normal((d_in, d_out)),
                "dy": rng.standard_normal((n, d_out)),
            },
            hint,
        )
        for n, d_in, d_out, hint in specs
    ]


# ---- softmax cross-entropy ----------------------------------------------------------------
def softmax_cases(rng) -> list[Case]:
    """Arguments ``(logits, labels)``: logits ``(N, C)`` float64, labels ``(N,)`` int64 in [0, C)."""

    def case(logits, hint, labels=None):
        n, c = logits.shape
        if labels is None:
            labels = rng.integers(0, c, size=n)
        return Case({"logits": logits, "labels": labels.astype(np.int64)}, hint)

    far = rng.standard_normal((3, 4))
    far[np.arange(3), rng.integers(0, 4, size=3)] += 800.0  # one class far above the rest
    cases = [
        case(rng.standard_normal((1, 3)), "one sample, three classes"),
        case(rng.standard_normal((4, 5)), "a batch of 4: the loss is the mean over the batch"),
        case(3 * rng.standard_normal((5, 10)), "ten classes"),
        case(1000 + 3 * rng.standard_normal((3, 4)), "logits near 1000: exp(1000) overflows"),
        case(-1000 + 3 * rng.standard_normal((3, 4)), "logits near -1000: exp(-1000) is 0"),
        case(
            far,
            "one logit 800 above the others: the true class's probability underflows to 0",
            labels=far.argmin(axis=1),
        ),
        case(rng.standard_normal((int(rng.integers(1, 7)), 7)), "a random case"),
    ]
    return cases


# ---- Adam ---------------------------------------------------------------------------------
_KERAS = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}


def _adam_case(rng, shape, t, hyper, grad_scale, hint, fresh: bool = False) -> Case:
    """``fresh``: m = v = 0, as at the first step; else moments as after t - 1 steps of
    gradients of size ``grad_scale``."""
    grad = grad_scale * rng.standard_normal(shape)
    if fresh:
        m, v = np.zeros(shape), np.zeros(shape)
    else:
        m = 0.5 * grad_scale * rng.standard_normal(shape)
        v = (grad_scale * rng.uniform(0.2, 1.5, size=shape)) ** 2 * (1 - hyper["beta_2"] ** (t - 1))
    args = {"param": rng.standard_normal(shape), "grad": grad, "m": m, "v": v, "t": t}
    return Case({**args, **hyper}, hint)


def adam_cases(rng) -> list[Case]:
    """Arguments ``(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon)``;
    steps t = 1, 2, 3 (t counts from 1), Keras's defaults first, then others."""
    other = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7}
    big_eps = {"learning_rate": 0.05, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-3}
    return [
        _adam_case(rng, (3, 4), 1, _KERAS, 1.0, "the first step (t = 1) from m = v = 0", True),
        _adam_case(rng, (5,), 2, _KERAS, 1.0, "the second step (t = 2)"),
        _adam_case(rng, (2, 3, 2), 3, other, 0.5, "t = 3, other beta_1, beta_2 and learning_rate"),
        _adam_case(
            rng,
            (4, 3),
            1,
            _KERAS,
            1e-7,
            "gradients near 1e-7: sqrt(v) is about epsilon, so where epsilon goes matters",
            True,
        ),
        _adam_case(rng, (6,), 2, big_eps, 3e-4, "epsilon = 1e-3 and sqrt(v) near it, t = 2"),
        _adam_case(
            rng,
            (3, 3),
            int(rng.integers(1, 4)),
            other,
            float(10.0 ** rng.uniform(-4, 0)),
            "a random step",
        ),
    ]
