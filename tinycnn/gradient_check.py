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
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field

import numpy

from . import backend
from .layers import LAYER_CLASSES, Activation, Conv2D, Dense, Dropout, Layer, MaxPooling2D, ReLU
from .losses import SoftmaxCrossEntropy
from .models.sequential import Sequential
from .training.progress import progress_bar_class

LAYER_H = 1e-6  # the output difference keeps rounding small; a small step crosses few kinks
SCALAR_H = 1e-5  # a loss: rounding ~1e-16 * L / h needs a larger step (not 1e-4: truncation)
SCALE_FLOOR = 1e-3  # per-element errors are relative to at least 1e-3 * max|gradient|
ABSOLUTE_FLOOR = 1e-8  # ... and to at least 1e-8 (cs231n's floor)
MAX_SKIPPED_SHARE = 0.1  # more skipped elements than this fails the check
ELEMENT_STEPS = (1, 10, 100)  # h, h / 10, h / 100 when a step crosses a kink
DIRECTION_STEPS = (1, 10, 100, 1000, 10000)  # a direction moves every element: more kinks
PROGRESS_DELAY = 3.0  # seconds before the progress bar appears
ROUNDING = 4 * float(numpy.finfo(numpy.float64).eps)  # rounding bound per unit subtracted
KINKED = ("relu", "leaky_relu")  # the activations with a kink, at pre-activation 0


# ---- the report -------------------------------------------------------------------------------
@dataclass
class GradCheckResult:
    """The comparison for one array (the input, or one parameter).

    ``max_rel_error`` is the largest of the per-element errors and the directional
    error; ``worst_index``, ``analytic`` and ``numeric`` describe the worst element.
    """

    name: str
    max_rel_error: float
    worst_index: tuple
    analytic: float
    numeric: float
    checked: int = 0  # elements compared one by one
    total: int = 0  # elements in the array
    remeasured: int = 0  # of the checked: measured again with a smaller step (a kink)
    skipped: int = 0  # of the checked: crossed a kink at every step, not compared
    element_error: float = 0.0  # the largest per-element error
    directional_error: float = math.nan  # NaN: every step crossed a kink

    @property
    def skipped_share(self) -> float:
        return self.skipped / self.checked if self.checked else 0.0

    def verdict(self, tol: float) -> str:
        """This array's verdict: FAILED (an error reached tol), INCONCLUSIVE (more
        than 10% of its checked elements skipped at kinks) or OK."""
        if self.max_rel_error >= tol:
            return "FAILED"
        return "INCONCLUSIVE" if self.skipped_share > MAX_SKIPPED_SHARE else "OK"

    def line(self, width: int = 16, tol: float | None = None, verdict_width: int = 6) -> str:
        """Two lines in words: the verdict (given ``tol``) and the errors, then the worst element.

        ``x  OK  max error 3.1e-09 over 200 of 4608 elements (sampled); whole-array
        direction check 2.0e-10``, and below it the worst element's two values.
        """
        verdict = "" if tol is None else f"{self.verdict(tol):<{verdict_width}} "
        if self.checked < self.total:
            over = f"over {self.checked} of {self.total} elements (sampled)"
        else:
            over = f"over all {self.total} elements"
        kinks = []
        if self.remeasured:
            kinks.append(f"{self.remeasured} re-measured with a smaller step (near a kink)")
        if self.skipped:
            kinks.append(f"{self.skipped} skipped (on a kink at every step)")
        if kinks:
            over += f", {' and '.join(kinks)}"
        direction = (
            "not measured (every step crossed a kink)"
            if math.isnan(self.directional_error)
            else _error(self.directional_error)
        )
        text = (
            f"  {self.name:<{width}} {verdict}max error {_error(self.element_error)} {over}; "
            f"whole-array direction check {direction}"
        )
        if self.worst_index:
            text += (
                f"\n  {'':<{width}} {'':<{len(verdict)}}worst element {self.worst_index}: "
                f"analytic {self.analytic:+.6e}, numeric {self.numeric:+.6e}"
            )
        return text


def _error(value: float) -> str:
    """An error for the report; 0 means: no difference beyond rounding."""
    return f"{value:.1e}" if value > 0 else "0"


@dataclass
class GradCheckReport:
    """All comparisons of one check (``print`` it).

    ``ok``: every error is below ``tol`` and no array had more than 10% of its
    checked elements skipped at kinks (else the verdict is INCONCLUSIVE: too little
    was compared to tell).
    """

    what: str
    tol: float
    h: float = math.nan
    results: list[GradCheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.results), default=0.0)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.results)

    @property
    def total(self) -> int:
        return sum(r.total for r in self.results)

    @property
    def too_many_skipped(self) -> list[str]:
        """Names of the arrays with more than 10% of their checked elements skipped."""
        return [r.name for r in self.results if r.skipped_share > MAX_SKIPPED_SHARE]

    @property
    def ok(self) -> bool:
        return self.max_rel_error < self.tol and not self.too_many_skipped

    def __getitem__(self, name: str) -> GradCheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(
            f"no result named {name!r} in this report; it has {[r.name for r in self.results]}"
        )

    @property
    def verdict(self) -> str:
        """OK; FAILED (an error reached tol); INCONCLUSIVE (too many elements skipped)."""
        if self.max_rel_error >= self.tol:
            return "FAILED"
        return "INCONCLUSIVE" if self.too_many_skipped else "OK"

    def __str__(self) -> str:
        verdict = self.verdict
        lines = [
            f"Gradient check of {self.what}: {verdict} "
            f"(tol {self.tol:g}, h {self.h:g}, {self.seconds:.1f} s)"
        ]
        width = max([16] + [len(r.name) for r in self.results])
        verdict_width = max(len(r.verdict(self.tol)) for r in self.results) if self.results else 0
        lines += [r.line(width, self.tol, verdict_width) for r in self.results]
        for name in self.too_many_skipped:
            lines.append(
                f"  note: more than {MAX_SKIPPED_SHARE:.0%} of {name}'s checked elements sit on "
                "a kink (a ReLU input at 0, a tie in a max-pool window), where the derivative "
                "is not defined; images with exact zeros under zero biases do that: check "
                "on random data (numpy.random.rand) or another seed"
            )
        for r in self.results:
            if r.directional_error >= self.tol > r.element_error and r.checked < r.total:
                lines.append(
                    f"  note: {r.name}'s {r.checked} sampled elements agree, but the whole-array "
                    "direction check does not: an element outside the sample is wrong; find it "
                    "with gradcheck(..., max_elements=None)"
                )
        lines += [f"  note: {note}" for note in self.notes]
        if any(r.element_error == 0 or r.directional_error == 0 for r in self.results):
            lines.append("  (an error of 0: analytic and numeric agree within rounding)")
        return "\n".join(lines)

    _repr_pretty_ = lambda self, p, cycle: p.text(str(self))  # noqa: E731  (IPython display)


# ---- small tools ------------------------------------------------------------------------------
def rel_error(analytic, numeric, floor=ABSOLUTE_FLOOR) -> numpy.ndarray:
    """Element-wise |a - n| / max(|a| + |n|, floor) (cs231n's, with a floor of one's choice)."""
    a, n = backend.to_numpy(analytic), backend.to_numpy(numeric)
    return numpy.abs(a - n) / numpy.maximum(floor, numpy.abs(a) + numpy.abs(n))


def error_floor(analytic) -> float:
    """The floor of the relative error for one array: max(1e-3 * max|a|, 1e-8)."""
    a = backend.to_numpy(analytic)
    return max(SCALE_FLOOR * float(numpy.abs(a).max(initial=0.0)), ABSOLUTE_FLOOR)


def numerical_gradient(f, array, h: float = LAYER_H, indices=None):
    """Central-difference gradient of the scalar function ``f()`` w.r.t. ``array``.

    The plain textbook loop, no kink handling (``gradcheck`` does that). ``array``
    (NumPy or CuPy) is perturbed in place, one element at a time, and restored.
    ``indices`` (flat positions) limits the work; the result is a NumPy float64
    array of ``array``'s shape, NaN where not computed.
    """
    grad = numpy.full(array.size, numpy.nan)
    for i in range(array.size) if indices is None else indices:
        at = numpy.unravel_index(int(i), array.shape)
        old = float(array[at])
        array[at] = old + h
        plus = f()
        array[at] = old - h
        minus = f()
        array[at] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(array.shape)


def sample_indices(size: int, max_elements: int | None, rng) -> numpy.ndarray:
    """All flat positions, or ``max_elements`` distinct random ones (sorted)."""
    if max_elements is None or size <= max_elements:
        return numpy.arange(size)
    return numpy.sort(rng.choice(size, size=max_elements, replace=False))


def kink_pattern(layer, x, y):
    """What decides which side of a kink ``layer`` is on, for input x and output y.

    ReLU and leaky ReLU (a layer, or the activation of Conv2D, Dense and Activation):
    which outputs are positive, that is which pre-activations are (y > 0 exactly where
    z > 0, both slopes being positive). MaxPooling2D: which element won each window. A
    step that changes this crossed a kink. A custom layer with kinks may define
    ``kink_pattern(self, x, y)`` returning such an array (a LeakyReLU: ``x > 0``);
    ``None`` means no kinks.
    """
    own = getattr(layer, "kink_pattern", None)
    if callable(own):
        try:
            pattern = own(x, y)
        except TypeError as err:
            if "positional argument" not in str(err):
                raise
            raise TypeError(
                f"{layer._label()}.kink_pattern: write it as kink_pattern(self, x, y), x the "
                f"layer's input and y its output ({err})."
            ) from err
        if pattern is not None and not hasattr(pattern, "shape"):
            raise TypeError(
                f"{layer._label()}.kink_pattern(x, y) must return an array (such as x > 0) "
                f"or None, got {type(pattern).__name__}."
            )
        return pattern
    if isinstance(layer, ReLU) or (
        isinstance(layer, (Conv2D, Dense, Activation)) and layer.activation in KINKED
    ):
        return y > 0
    if isinstance(layer, MaxPooling2D):
        return layer.cache[0].copy()  # the argmax of each window
    return None


def kinks_declared(layer) -> bool:
    """Whether :func:`kink_pattern` knows every kink of ``layer``: a built-in layer's
    (ReLU masks, pool winners, or none at all), or those of a layer that defines its own
    ``kink_pattern``. Else (a class of yours, a subclass of a built-in one included) the
    check also looks for bends."""
    own = callable(getattr(layer, "kink_pattern", None))
    return own or type(layer) in LAYER_CLASSES.values()


def _with_gradients(layer) -> list:
    """``(key, param)`` for each parameter backward computes a gradient of: all but a
    weight the layer updates itself (``layer.non_trainable``) left without one."""
    return [
        (k, p)
        for k, p in layer.params.items()
        if k not in layer.non_trainable or layer.grads.get(k) is not None
    ]


def _same_pattern(patterns, others) -> bool:
    return all(p is None or bool((p == q).all()) for p, q in zip(patterns, others, strict=True))


# ---- one scalar function, measured along one direction -------------------------------------------
class _Function:
    """The scalar L for one checked array: ``run()`` re-runs the forward pass after the
    array was changed in place and returns (output, kink patterns).

    For a layer the output is y and L = sum(y * upstream); for a model or a loss the
    output is L itself (``upstream`` is None). ``find_bends``: also call it a kink where
    the output bends (:meth:`bend`), for a layer whose kinks no pattern declares.
    """

    def __init__(self, run, upstream=None, find_bends: bool = False):
        self.run, self.upstream, self.find_bends = run, upstream, find_bends
        self.base, self.base_pattern = self._copy(run())

    def _copy(self, result):
        """A layer's output may be a view of x (Flatten): copy it before x moves again."""
        out, pattern = result
        return (out if self.upstream is None else out.copy()), pattern

    def change(self, a, b) -> float:
        """L(a) - L(b), from two outputs: the difference first (see the module doc)."""
        if self.upstream is None:
            return a - b
        return float(((a - b) * self.upstream).sum())

    def rounding(self, a, b) -> float:
        """A bound on the rounding error of ``change(a, b)``: a few ulps of what was
        subtracted (of L for a scalar; of the outputs that changed, for a layer)."""
        if self.upstream is None:
            return ROUNDING * (abs(a) + abs(b))
        xp = backend.get_array_module(a)
        weights = (xp.abs(a) + xp.abs(b)) * xp.abs(self.upstream)
        return ROUNDING * float(weights[a != b].sum())

    def bend(self, a, b, c) -> float:
        """For a layer: |f(a) - 2 f(b) + f(c)| weighted by |upstream|, less its rounding,
        for three equally spaced points: a kink between them bends it by (slope jump) *
        (distance), a smooth curve by f'' * t^2. Finds kinks that no pattern declares
        (custom layers); 0 unless ``find_bends`` (a model or a loss: always 0)."""
        if self.upstream is None or not self.find_bends:
            return 0.0
        xp = backend.get_array_module(a)
        bend = float((xp.abs(a - 2 * b + c) * xp.abs(self.upstream)).sum())
        return max(bend - 2 * self.rounding(a, c), 0.0)

    def derivative(self, move, h: float, steps, scale: float, tol: float):
        """dL/dt of L(p + t d) at t = 0, where ``move(t)`` sets the array to p + t d.

        For each step t = h / s, s in ``steps``: the central difference if neither
        p + t d nor p - t d crosses a kink; else, if the kink patterns show that only
        one side crosses, the one-sided difference on the other side, if it stays
        clear up to 2t: the base point's side of the kink, whose slope is the one
        backward computes (also when the base point sits exactly on it). Returns (estimate, its rounding bound, whether a
        kink was in reach); NaN, NaN, True if every step crossed one on both sides.
        """
        for tries, divisor in enumerate(steps):
            t = h / divisor
            plus, minus = self._at(move, t), self._at(move, -t)
            found = self._central(plus, minus, t, scale, tol)
            for side, near, other in ((1, plus, minus), (-1, minus, plus)):
                # only where a pattern tells on which side of the kink the base point is
                if found is None and self._same_side(near) and not self._same_side(other):
                    far = self._at(move, 2 * side * t)
                    found = self._one_sided(side, near, far, t, scale, tol)
            move(0.0)
            if found is not None:
                estimate, rounding, one_sided = found
                return estimate, rounding, one_sided or tries > 0
        return math.nan, math.nan, True

    def _central(self, plus, minus, t, scale, tol):
        """(f(t) - f(-t)) / 2t, error O(t^2)."""
        if not (self._same_side(plus) and self._same_side(minus)):
            return None
        estimate = self.change(plus[0], minus[0]) / (2 * t)
        if self.bend(plus[0], self.base, minus[0]) / (2 * t) > tol / 4 * max(abs(estimate), scale):
            return None
        return estimate, self.rounding(plus[0], minus[0]) / (2 * t), False

    def _one_sided(self, side, near, far, t, scale, tol):
        """(4 (f(t) - f(0)) - (f(2t) - f(0))) / 2t, error O(t^2); side -1 mirrors it."""
        if not self._same_side(far):
            return None
        base, near, far = self.base, near[0], far[0]
        estimate = side * (4 * self.change(near, base) - self.change(far, base)) / (2 * t)
        if self.bend(base, near, far) / (2 * t) > tol / 4 * max(abs(estimate), scale):
            return None
        rounding = (4 * self.rounding(near, base) + self.rounding(far, base)) / (2 * t)
        return estimate, rounding, True

    def _same_side(self, point) -> bool:
        """Did the point keep the base point's kink pattern (no kink crossed)?"""
        return _same_pattern(point[1], self.base_pattern)

    def _at(self, move, t):
        move(t)
        return self._copy(self.run())


def _element_mover(array, flat_index):
    """``move(t)``: set one element to its value + t (the unperturbed value for t = 0)."""
    at = numpy.unravel_index(int(flat_index), array.shape)
    old = float(array[at])

    def move(t):
        array[at] = old + t

    return move


def _direction_mover(array, direction):
    base = array.copy()

    def move(t):
        array[...] = base + t * direction if t else base

    return move


def _check_array(name, array, analytic, fn: _Function, h, tol, indices, rng, bar):
    """Compare ``analytic`` (dL/d``array``) with central differences; one result."""
    a = backend.to_numpy(analytic).astype(numpy.float64)
    scale = error_floor(a)
    numeric = numpy.full(a.size, numpy.nan)  # NaN: not measured (not sampled, or skipped)
    rounding = numpy.zeros(a.size)
    remeasured = 0
    for i in indices:
        move = _element_mover(array, i)
        numeric[i], rounding[i], near_kink = fn.derivative(move, h, ELEMENT_STEPS, scale, tol)
        remeasured += near_kink and not math.isnan(numeric[i])
        bar.update(1)
    directional = _directional_error(array, a, fn, h, tol, scale, rng)
    bar.update(1)
    measured = ~numpy.isnan(numeric)
    errors = element_errors(a.reshape(-1)[measured], numeric[measured], rounding[measured], scale)
    element_error = float(errors.max(initial=0.0))
    # the element shown is the one where a and n differ most, rounding or not
    raw = numpy.where(measured, rel_error(a.reshape(-1), numpy.nan_to_num(numeric), scale), -1)
    worst = numpy.unravel_index(int(raw.argmax()), a.shape) if measured.any() else None
    return GradCheckResult(
        name=name,
        max_rel_error=max(element_error, float(numpy.nan_to_num(directional))),
        worst_index=() if worst is None else tuple(int(k) for k in worst),
        analytic=0.0 if worst is None else float(a[worst]),
        numeric=0.0 if worst is None else float(numeric.reshape(a.shape)[worst]),
        checked=len(indices),
        total=int(a.size),
        remeasured=int(remeasured),
        skipped=int(len(indices) - measured.sum()),
        element_error=element_error,
        directional_error=directional,
    )


def _directional_error(array, analytic, fn: _Function, h, tol, scale, rng) -> float:
    """Along a random direction d of +-1 over the whole array, compare sum(analytic * d)
    with the numerical dL/dt of L(array + t d). NaN if every step crossed a kink.

    Relative to |a| (the 2-norm), the typical size of sum(a * d): a single wrong
    element shows as its error over |a|, far above rounding.
    """
    direction = rng.choice([-1.0, 1.0], size=analytic.shape)
    move = _direction_mover(array, backend.to_backend(direction, backend.backend_of(array)))
    slope, rounding, _ = fn.derivative(move, h, DIRECTION_STEPS, scale, tol)
    expected = float((analytic * direction).sum())
    return max(abs(expected - slope) - rounding, 0.0) / max(
        abs(expected) + abs(slope), float(numpy.linalg.norm(analytic)), ABSOLUTE_FLOOR
    )


def element_errors(analytic, numeric, rounding, floor) -> numpy.ndarray:
    """max(|a - n| - rounding, 0) / max(|a| + |n|, floor), element by element: the part
    of the difference that rounding cannot explain, relative to the gradient's size."""
    return numpy.maximum(numpy.abs(analytic - numeric) - rounding, 0.0) / numpy.maximum(
        floor, numpy.abs(analytic) + numpy.abs(numeric)
    )


# ---- float64 copies and fixed Dropout masks --------------------------------------------------------
def _needs_float64_copy(layers, built: bool) -> bool:
    if not built:
        return backend.floatx() != "float64"
    return any(
        (layer.built and layer.dtype != "float64")
        or any(p.dtype != numpy.float64 for p in layer.params.values())
        for layer in layers
    )


def _to_float64(layers) -> None:
    """Cast the parameters of (copied) layers to float64, in place of the originals."""
    for layer in layers:
        layer.params = {k: p.astype(numpy.float64) for k, p in layer.params.items()}
        layer.grads = {k: None for k in layer.params}
        layer.cache = None
        if layer.built:
            layer.dtype = "float64"


def _float64_input(x, notes: list, what: str = "x"):
    """A float64 copy of x (the caller's array is never perturbed)."""
    if x.dtype.kind == "f" and x.dtype != numpy.float64:
        notes.append(f"{what} ({x.dtype}) cast to float64")
        return x.astype(numpy.float64)
    return x.copy()


class _FixedDropoutMasks:
    """Within ``with``: each Dropout draws one mask from a fixed key on every call (as
    ``fit`` does for one step), so that all evaluations see one function of x."""

    def __init__(self, layers, seed: int, training: bool, notes: list):
        self.layers = [(k, layer) for k, layer in enumerate(layers) if isinstance(layer, Dropout)]
        self.seed, self.saved = seed, []
        if training and self.layers:
            notes.append("Dropout: one fixed mask for every evaluation (training=True)")

    def __enter__(self):
        self.saved = [layer.noise_key for _, layer in self.layers]
        for k, layer in self.layers:
            layer.noise_key = (self.seed, 0, 0, k)

    def __exit__(self, *exc):
        for (_, layer), key in zip(self.layers, self.saved, strict=True):
            layer.noise_key = key


class _KeptNonTrainable:
    """The weights the layers update themselves (``non_trainable``: BatchNormalization's
    moving averages, which every forward with ``training=True`` moves): ``restore()``
    after each forward pass puts them back, so every evaluation sees the same values
    (plus the step of the one being measured, which the next ``move`` sets again), and
    leaving ``with`` puts them back for good: the caller's layer is unchanged."""

    def __init__(self, layers):
        self.kept = [
            (layer, key, layer.params[key], layer.params[key].copy())
            for layer in layers
            for key in sorted(layer.non_trainable)
            if key in layer.params
        ]

    def restore(self) -> None:
        for layer, key, array, saved in self.kept:
            array[...] = saved  # in place: the check perturbs this very array
            layer.params[key] = array  # in case a forward replaced it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()


def _one_blas_thread():
    """A check runs thousands of forward passes on a few samples, where BLAS's threads
    cost more than they bring (a 2 x 1600 by 1600 x 512 product: 0.3 ms on one thread,
    up to 14 ms on two busy cores). Without threadpoolctl, nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _progress(total: int, what: str, enabled: bool):
    """A bar that appears only when the check takes more than 3 seconds."""
    return progress_bar_class()(  # tqdm's, chosen quietly (see training/progress.py)
        total=total, desc=f"gradcheck {what}", unit="check", delay=PROGRESS_DELAY,
        disable=not enabled,
    )  # fmt: skip


# ---- the three checks -------------------------------------------------------------------------
def _check_all(report, targets, h, tol, max_elements, rng, progress) -> None:
    """Check every (name, array, analytic gradient, scalar function) of ``targets``."""
    samples = [sample_indices(array.size, max_elements, rng) for _, array, _, _ in targets]
    with _progress(sum(len(s) + 1 for s in samples), report.what, progress) as bar:
        for (name, array, analytic, fn), indices in zip(targets, samples, strict=True):
            result = _check_array(name, array, analytic, fn(), h, tol, indices, rng, bar)
            report.results.append(result)


def check_layer(
    layer: Layer,
    x,
    h: float = LAYER_H,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> GradCheckReport:
    """Check ``layer.backward`` against central differences of L = sum(layer(x) * G).

    Args:
        layer: any layer; built in float64 (seeded by ``seed``) if not built yet.
            A float32 layer is checked as a float64 copy and left untouched.
        x: input of shape ``(N, *input_shape)``; a float64 copy is used.
        h: the step; it shrinks to h / 10 and h / 100 where it crosses a kink.
        tol: the largest relative error that passes.
        max_elements: arrays larger than this are checked on this many random elements
            (plus one random direction over all of them); None checks every element.
        training: run the layer in training mode (Dropout: with one fixed mask).
        seed: seeds G, the sample of elements, the direction and the Dropout mask.
        progress: show a progress bar when the check takes more than a few seconds.
    """
    start, notes = time.perf_counter(), []
    if _needs_float64_copy([layer], layer.built):
        notes.append(f"checked a float64 copy of {layer._label()} (the layer is untouched)")
        layer = copy.deepcopy(layer)
        _to_float64([layer])
    if not layer.built:
        with backend.use_floatx("float64"):
            layer.build(x.shape[1:], rng=seed)
    x = _float64_input(x, notes)
    rng = numpy.random.default_rng(seed)
    report = GradCheckReport(layer._label(), tol, h, notes=notes)
    kept = _KeptNonTrainable([layer])
    with _FixedDropoutMasks([layer], seed, training, notes), kept, _one_blas_thread():
        y = layer.forward(x, training=training)
        kept.restore()
        upstream = backend.to_backend(rng.standard_normal(y.shape), backend.backend_of(y))
        analytic = {"x": layer.backward(upstream)}
        analytic.update({key: layer.grads[key].copy() for key, _ in _with_gradients(layer)})

        def run():
            y = layer.forward(x, training=training, check_finite=False)
            kept.restore()
            return y, [kink_pattern(layer, x, y)]

        # one function of x and the parameters
        fn = _Function(run, upstream, find_bends=not kinks_declared(layer))
        targets = [
            (name, a, analytic[name], lambda: fn) for name, a in [("x", x), *_with_gradients(layer)]
        ]
        _check_all(report, targets, h, tol, max_elements, rng, progress)
    report.seconds = time.perf_counter() - start
    return report


def check_model(
    model: Sequential,
    x,
    labels,
    loss_fn=None,
    h: float = SCALAR_H,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> GradCheckReport:
    """Check the whole model end to end: the gradient of ``loss_fn(model(x), labels)``
    (softmax cross-entropy by default) with respect to x and every parameter.

    The other arguments are :func:`check_layer`'s. The step h = 1e-5 is larger than a
    layer's: the loss is one number, whose rounding (1e-16 * L) the division by 2h
    enlarges, and through a whole network many gradients are small. It is no larger:
    the truncation error h^2 f''' / 6 of a curved loss (BatchNormalization in training
    over a small batch) reached 9e-5 at h = 1e-4, and the rounding is excused anyway. To save time,
    moving a parameter of layer k re-runs the forward pass from layer k only.
    """
    start, notes = time.perf_counter(), []
    loss_fn = loss_fn or SoftmaxCrossEntropy()
    if _needs_float64_copy(model.layers, model.built):
        notes.append(f"checked a float64 copy of model {model.name!r} (the model is untouched)")
        model = copy.deepcopy(model)
        _to_float64(model.layers)
    if not model.built:
        with backend.use_floatx("float64"):
            model.build(x.shape[1:])
    x = _float64_input(x, notes)
    rng = numpy.random.default_rng(seed)
    report = GradCheckReport(f"model {model.name!r}", tol, h, notes=notes)
    layers = model.layers
    kept = _KeptNonTrainable(layers)
    with _FixedDropoutMasks(layers, seed, training, notes), kept, _one_blas_thread():
        loss_fn.forward(model.forward(x, training=training), labels)
        kept.restore()
        targets = [("x", x, model.backward(loss_fn.backward()), 0)]  # (name, array, grad, k)
        for k, layer in enumerate(layers):
            for key, param in _with_gradients(layer):
                targets.append((f"{layer.name}/{key}", param, layer.grads[key].copy(), k))
        inputs = [x]  # inputs[k]: the input of layer k, unperturbed
        for layer in layers[:-1]:
            inputs.append(layer.forward(inputs[-1], training=training, check_finite=False))
        kept.restore()

        def from_layer(k):
            """L as a function of x or of layer k's weights: the forward from layer k on."""

            def run():
                a, patterns = inputs[k], []
                for layer in layers[k:]:
                    y = layer.forward(a, training=training, check_finite=False)
                    patterns.append(kink_pattern(layer, a, y))
                    a = y
                kept.restore()
                return float(loss_fn.forward(a, labels)), patterns

            return lambda: _Function(run)

        targets = [(name, p, grad, from_layer(k)) for name, p, grad, k in targets]
        _check_all(report, targets, h, tol, max_elements, rng, progress)
    report.seconds = time.perf_counter() - start
    return report


def check_loss(
    loss_fn, logits, labels, h: float = SCALAR_H, tol: float = 1e-6, seed: int = 0
) -> GradCheckReport:
    """Check a loss's ``backward`` (dL/dlogits) against central differences, every element."""
    start, notes = time.perf_counter(), []
    logits = _float64_input(logits, notes, "logits")
    loss_fn.forward(logits, labels)
    analytic = backend.to_numpy(loss_fn.backward()).copy()
    fn = _Function(lambda: (float(loss_fn.forward(logits, labels)), []))
    report = GradCheckReport(type(loss_fn).__name__, tol, h, notes=notes)
    rng = numpy.random.default_rng(seed)
    _check_all(report, [("logits", logits, analytic, lambda: fn)], h, tol, None, rng, False)
    report.seconds = time.perf_counter() - start
    return report


def gradcheck(
    obj,
    x,
    labels=None,
    *,
    h: float | None = None,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    loss_fn=None,
    progress: bool = True,
) -> GradCheckReport:
    """Check a layer, a loss or a whole model; returns a report (``print`` it).

    ``gradcheck(layer, x)``, ``gradcheck(model, x, labels)``, ``gradcheck(loss, logits, labels)``.

    Args:
        h: the step of the central differences; None: 1e-6 for a layer, 1e-5 for a
            model or a loss. Where a step crosses a kink (a ReLU input near 0, a
            near-tie in a max-pool window) the element is measured again with h / 10
            and h / 100, and skipped if it still crosses (more than 10% skipped fails).
        tol: the largest relative error that passes, ``max(|a - n| - rounding, 0) /
            max(|a| + |n|, 1e-3 * max|a|)`` per element (a correct backward: 0 to 1e-8).
        max_elements: how many random elements of each larger array to check one by
            one (None: all). One random direction always covers every element.
        training: run in training mode; Dropout then uses one fixed mask.
        seed: seeds the random choices (upstream gradient, elements, direction, mask).
        loss_fn: a model's loss (default: softmax cross-entropy).
        progress: show a progress bar when the check takes more than a few seconds.

    A float32 layer or model is checked as a float64 copy (the original is untouched).
    """
    if isinstance(obj, Sequential):
        if labels is None:
            raise TypeError("gradcheck(model, x, labels): a model needs the labels of x.")
        h = SCALAR_H if h is None else h
        return check_model(obj, x, labels, loss_fn, h, tol, max_elements, training, seed, progress)
    if isinstance(obj, Layer):
        h = LAYER_H if h is None else h
        return check_layer(obj, x, h, tol, max_elements, training, seed, progress)
    if hasattr(obj, "forward") and hasattr(obj, "backward"):
        if labels is None:
            raise TypeError("gradcheck(loss, logits, labels): a loss needs the labels.")
        return check_loss(obj, x, labels, SCALAR_H if h is None else h, tol, seed)
    raise TypeError(f"gradcheck: expected a layer, a loss or a model, got {type(obj).__name__}.")
