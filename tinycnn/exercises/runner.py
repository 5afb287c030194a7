"""How a check runs the student's function on its cases and compares the results.

For each case, in order: compute the right answer (``expected.py``) from one copy of
the arguments, call the student's function, by position, on another copy (so it may
change its arguments in place), and compare every output. The first case that goes
wrong ends the check; the report says how it went wrong:

* the function raised: the exception, and the line of the student's code it came from;
* it returned the wrong thing: ``None``, a list, a tuple of the wrong length, an array
  of the wrong shape (with what the shape should be);
* a value is wrong: the worst entry (largest error relative to the tolerance), the
  expected and the returned value there, how many entries are wrong, and a pattern when
  one is plain (every entry off by the same factor; NaN or inf); a floating-point
  result that is not float64 (float32 passes some seeds and fails others, so it is
  refused whatever its values).

Entries agree when ``|got - expected| <= RTOL * (|expected| + max|expected|)``: relative,
with an absolute floor scaled to the array (a sum of a dozen float64 products, added
in another order, differs by far less; a real mistake by far more).
"""

from __future__ import annotations

import linecache
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cases import Case, new_seed
from .report import CheckReport, Failure

#: Relative tolerance of the comparisons (float64 arithmetic gets ~1e-15).
RTOL = 1e-7

_HERE = Path(__file__).resolve().parent


@dataclass
class Output:
    """One output of the student's function: its name and its shape in words.

    ``shape`` is ``"()"`` for a single number (a Python float or a 0-d array).
    """

    name: str
    shape: str


class _Wrong(Exception):
    """Raised inside a check to end the case with ``problem`` and ``details``."""

    def __init__(self, problem: str, details=()):
        super().__init__(problem)
        self.problem, self.details = problem, list(details)


def run_check(
    check: str,
    fn: Callable,
    make_cases: Callable,
    expected: Callable,
    outputs: list[Output],
    seed: int | None = None,
) -> CheckReport:
    """Run ``fn`` on the cases ``make_cases(rng)`` draws and compare with ``expected``.

    Args:
        check: the check's name, for the report.
        fn: the student's function.
        make_cases: ``rng -> list[Case]``.
        expected: the right answer, same signature as ``fn``.
        outputs: what ``fn`` returns: one :class:`Output`, or one per tuple item.
        seed: the seed of the cases; ``None`` draws a fresh one.
    Returns:
        A :class:`CheckReport`.
    """
    if not callable(fn):
        raise TypeError(f"{check} expects your function, got {type(fn).__name__} {fn!r}.")
    seed = new_seed() if seed is None else int(seed)
    cases = make_cases(np.random.default_rng(seed))
    name = getattr(fn, "__name__", type(fn).__name__)
    report = CheckReport(check, name, seed, len(cases), passed=0)
    for number, case in enumerate(cases, 1):
        want = expected(*_copies(case))
        try:
            _run_case(fn, name, case, want, outputs)
        except _Wrong as wrong:
            report.failure = Failure(
                number, case.describe(), case.hint, wrong.problem, wrong.details
            )
            return report
        report.passed += 1
    return report


def _copies(case: Case) -> list:
    """The arguments in order, arrays copied (float64 ones stay float64)."""
    return [v.copy() if isinstance(v, np.ndarray) else v for v in case.args.values()]


def _run_case(fn, name: str, case: Case, want, outputs: list[Output]) -> None:
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        try:
            got = fn(*_copies(case))
        except Exception as error:  # the student's bug, reported rather than raised
            raise _Wrong(*_raised(name, error)) from None
    warned = [f"numpy warned: {w.message}" for w in caught[:1]]
    if len(outputs) == 1:
        got, want = [got], [want]
    else:
        got = _unpack(name, got, outputs)
    statuses, first = [], None
    for output, g, w in zip(outputs, got, want, strict=True):
        g = _as_array(name, output, g, np.shape(w))
        bad = _mismatch(output, w, g)
        if bad is None:
            statuses.append(f"{output.name} ok")
            continue
        statuses.append(f"{output.name} wrong ({bad[1]} of {np.size(w)} entries)")
        first = first or bad
    if first is not None:
        (problem, _, details) = first
        summary = [("outputs", ", ".join(statuses))] if len(outputs) > 1 else []
        raise _Wrong(problem, details + summary + [("note", t) for t in warned])


# ---- what the function returned --------------------------------------------------------------
def _raised(name: str, error: Exception) -> tuple[str, list]:
    """The problem line and details for an exception the student's function raised."""
    if isinstance(error, NotImplementedError):
        problem = (
            f"{name} raised NotImplementedError: write your code where it says 'your code here'"
        )
        return problem, _where(error)
    text = " ".join(str(error).split())
    short = text if len(text) <= 90 else text[:88] + "..."
    problem = f"{name} raised {type(error).__name__}" + (f": {short}" if text else "")
    details = [("error", text)] if short != text else []
    return problem, details + _where(error)


def _where(error: Exception) -> list[tuple[str, str]]:
    """The innermost line of the student's own code (not NumPy's, not this package's)."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not _library_file(f.filename) and Path(f.filename).resolve().parent != _HERE
    ]
    if not frames:
        return []
    f = frames[-1]
    line = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return [("where", f"line {f.lineno}, in {f.name}: {line}")]


def _library_file(filename: str) -> bool:
    parts = Path(filename).parts
    return "site-packages" in parts or "numpy" in parts or filename.startswith("<frozen")


def _unpack(name: str, got, outputs: list[Output]) -> list:
    names = ", ".join(o.name for o in outputs)
    if got is None:
        raise _Wrong(f"{name} returned None: did you forget the return ({names})?")
    if not isinstance(got, (tuple, list)) or len(got) != len(outputs):
        what = (
            f"a {type(got).__name__} of {len(got)}"
            if isinstance(got, (tuple, list))
            else f"a {type(got).__name__}"
        )
        raise _Wrong(f"{name} returned {what}; expected a tuple of {len(outputs)}: ({names})")
    return list(got)


def _as_array(name: str, output: Output, got, shape: tuple) -> np.ndarray:
    if got is None:
        raise _Wrong(f"{name} returned None for {output.name}: did you forget a return?")
    if isinstance(got, (list, tuple)) or not (
        isinstance(got, (np.ndarray, np.generic, float, int)) and not isinstance(got, bool)
    ):
        kind = "a number" if shape == () else "a NumPy array"
        raise _Wrong(
            f"{output.name} is a {type(got).__name__}; expected {kind}"
            + ("" if shape == () else " (np.array(...) converts a list)")
        )
    got = np.asarray(got)
    if got.shape != shape:
        details = [("expected", f"{output.name} of shape {output.shape} = {shape}")]
        if got.shape == shape[::-1]:
            details.append(("note", "got the transposed shape"))
        if got.size == int(np.prod(shape)):
            details.append(("note", "the right number of entries: reshape, or its order?"))
        raise _Wrong(f"{output.name} has shape {got.shape}, expected {shape}", details)
    if got.dtype.kind not in "fiu":
        raise _Wrong(f"{output.name} has dtype {got.dtype}; expected floating-point numbers")
    if got.dtype.kind == "f" and got.dtype != np.float64:
        # said whatever the values: float32 keeps about 7 digits, the tolerance is 1e-7,
        # so a float32 result would pass on some seeds and fail on others
        raise _Wrong(
            f"{output.name} has dtype {got.dtype}; expected float64",
            [
                (
                    "note",
                    f"the inputs are float64: compute and return float64 ({got.dtype} "
                    "keeps too few digits for a check to tolerance 1e-7)",
                )
            ],
        )
    return got


# ---- comparing values --------------------------------------------------------------------
def _mismatch(output: Output, want, got: np.ndarray):
    """``None`` when ``got`` agrees with ``want``, else ``(problem, count, details)``."""
    want = np.asarray(want, dtype=np.float64)
    g = got.astype(np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    tol = RTOL * (np.abs(want) + scale) + np.finfo(np.float64).tiny
    with np.errstate(all="ignore"):
        err = np.abs(g - want) / tol
    err = np.where(np.isnan(err), np.inf, err)  # NaN (or inf - inf) is as wrong as can be
    wrong = err > 1.0
    count = int(wrong.sum())
    if count == 0:
        return None
    worst = np.unravel_index(int(np.argmax(err)), want.shape) if want.ndim else ()
    at = f" at index {tuple(int(i) for i in worst)}" if want.ndim else ""
    problem = f"{output.name} is wrong{at}"
    e, v = float(want[worst]), float(g[worst])
    details = [
        ("expected", f"{e:.10g}"),
        ("got", f"{v:.10g}   (|got - expected| = {abs(v - e):.2g}, tolerance {tol[worst]:.2g})"),
    ]
    details += [("note", note) for note in _patterns(want, g, got.dtype)]
    return problem, count, details


def _patterns(want: np.ndarray, got: np.ndarray, dtype) -> list[str]:
    """Plain patterns in a wrong result, said in words (never how to fix them)."""
    notes = []
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        notes.append("got NaN or inf where every expected value is finite: an overflow?")
    elif dtype != np.float64:
        notes.append(f"got {dtype} values; the inputs are float64, compute in float64")
    nonzero = np.abs(want) > 1e-12 * (np.max(np.abs(want)) if want.size else 0.0)
    if np.any(nonzero) and np.all(np.isfinite(got)):
        ratio = got[nonzero] / want[nonzero]
        r = float(ratio.flat[0])
        same = np.allclose(ratio, r, rtol=1e-6) and not np.isclose(r, 1)
        # one entry is always "off by a factor": said only for a factor like N or 1/N
        if same and (ratio.size > 1 or _simple(r)):
            notes.append(f"every entry is the expected one times {_factor(r)}")
        elif np.allclose(np.sort(got.ravel()), np.sort(want.ravel()), rtol=1e-9, atol=1e-12):
            notes.append("the right values, in the wrong places")
    scale = np.max(np.abs(want)) if want.size else 0.0
    zeros = want == 0
    if np.any(zeros) and np.any(np.abs(got[zeros]) > RTOL * scale):
        notes.append("some entries that should be 0 are not")
    return notes


def _simple(ratio: float) -> bool:
    """A whole number or one over a whole number (a batch size, a number of classes)."""
    whole = abs(ratio - round(ratio)) < 1e-6 * max(1.0, abs(ratio))
    return ratio != 0 and (whole or abs(1 / ratio - round(1 / ratio)) < 1e-6 / abs(ratio))


def _factor(ratio: float) -> str:
    """``0.25`` as ``"0.25 (1/4)"``, ``4.0`` as ``"4"``: a batch size shows at once."""
    if ratio != 0 and abs(1 / ratio - round(1 / ratio)) < 1e-6 and abs(ratio) < 1:
        return f"{ratio:.6g} (1/{round(1 / ratio)})"
    return f"{ratio:.6g}"
