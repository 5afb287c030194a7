"""Numerical gradient checks: is ``backward`` really the derivative of ``forward``?

For a layer with output y = f(x), pick a random "upstream gradient" G of y's shape
and look at the scalar L = sum(f(x) * G). Its gradient with respect to x is exactly
what ``backward(G)`` must return, and central differences estimate it:

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2 h) = sum((f(x + h e_i) - f(x - h e_i)) * G) / (2 h)

The right-hand form subtracts the two outputs *before* summing: the outputs that
x[i] does not touch cancel exactly, so rounding does not grow with the size of the
array (summing first, L ~ sqrt(size) carries a rounding error of 1e-16 * L that the
division by 2h blows up). A model or a loss is already a scalar, the mean loss.

Four more things make the defaults trustworthy:

* The error measure. Per element, max(|a - n| - r, 0) / max(|a| + |n|, floor):
  r bounds the rounding of n (4 ulps of what the central difference subtracted,
  over 2h), so only a difference that rounding cannot explain counts (0 means
  "agree within rounding"); floor = max(1e-3 * max|a|, 1e-8), max over the whole
  array, so a tiny gradient next to large ones is judged against the array's
  scale, not against its own.
* Kinks. ReLU and max-pooling are not differentiable at pre-activation 0 or at a
  tie in a window; a step that crosses one measures the slope of the other side.
  Each evaluation records the on/off pattern of every kink (ReLU masks, pool
  winners; :func:`kink_pattern`). Where x + h or x - h changes it, the element is
  measured on the side that keeps it (a one-sided difference: the base point's
  side, whose slope backward computes), else again with h / 10, then h / 100, and
  skipped if every step crosses on both sides. A check of a custom layer that does
  not declare its kinks also calls it a kink when the two half steps disagree,
  f(x + h) - f(x) != f(x) - f(x - h) beyond rounding (re-measured, never measured
  one-sided: nothing tells which side the base point is on). A built-in layer's kinks
  are all in its patterns, so it skips that test: a smooth curve (BatchNormalization,
  tanh) bends too, by f'' h^2, and would be re-measured for nothing. Only the
  forward pass decides: a wrong backward cannot hide there. More than 10% of an
  array's checked elements skipped makes the verdict INCONCLUSIVE.
* Coverage. Arrays larger than ``max_elements`` are checked on a random sample of
  elements, plus one directional derivative over the whole array (as Chainer's
  ``check_backward``): along a random +-1 direction d, (L(p + h d) - L(p - h d)) / 2h
  must equal sum(grad * d), which a single wrong element anywhere spoils.
* Precision and state. Everything runs in float64. A float32 layer or model is
  checked as a float64 copy; the original is left untouched. Dropout uses one fixed
  mask, and the weights a layer updates itself (``non_trainable``: BatchNormalization's
  moving averages) are put back after every forward pass: each evaluation sees the
  same function, and the layer or model ends the check as it began, bit for bit.

One line from a notebook::

    print(tinycnn.gradcheck(Conv2D(4, 3), x))          # a layer
    print(tinycnn.gradcheck(model, x, labels))         # a whole model + softmax cross-entropy
    print(tinycnn.gradcheck(SoftmaxCrossEntropy(), logits, labels))

The package, one concept per module:

* ``numeric.py``: central differences and the error measure;
* ``kinks.py``: kink patterns, and measuring near a kink (one-sided, smaller steps);
* ``sampling.py``: one array, checked on a sample of elements plus one direction;
* ``report.py``: the results and the text ``print`` shows;
* ``state.py``: the float64 copy, fixed Dropout masks, non-trainable weights put back;
* ``check.py``: :func:`gradcheck` and the checks of a layer, a model and a loss.
"""

from __future__ import annotations

# PROGRESS_DELAY is read in check.py: change it there (gradient_check.check.PROGRESS_DELAY)
from .check import PROGRESS_DELAY, check_layer, check_loss, check_model, gradcheck
from .kinks import KINKED, kink_pattern, kinks_declared
from .numeric import (
    ABSOLUTE_FLOOR,
    LAYER_H,
    ROUNDING,
    SCALAR_H,
    SCALE_FLOOR,
    element_errors,
    error_floor,
    numerical_gradient,
    rel_error,
)
from .report import MAX_SKIPPED_SHARE, GradCheckReport, GradCheckResult
from .sampling import DIRECTION_STEPS, ELEMENT_STEPS, sample_indices

__all__ = [
    "ABSOLUTE_FLOOR",
    "DIRECTION_STEPS",
    "ELEMENT_STEPS",
    "KINKED",
    "LAYER_H",
    "MAX_SKIPPED_SHARE",
    "PROGRESS_DELAY",
    "ROUNDING",
    "SCALAR_H",
    "SCALE_FLOOR",
    "GradCheckReport",
    "GradCheckResult",
    "check_layer",
    "check_loss",
    "check_model",
    "element_errors",
    "error_floor",
    "gradcheck",
    "kink_pattern",
    "kinks_declared",
    "numerical_gradient",
    "rel_error",
    "sample_indices",
]
