"""The report of a gradient check: one result per array, and the text ``print`` shows.

A :class:`GradCheckResult` holds the comparison for one array (x, or one parameter):
the largest error, the worst element's two values, how many elements were checked,
re-measured near a kink or skipped. A :class:`GradCheckReport` gathers them with the
verdict: OK, FAILED (an error reached ``tol``) or INCONCLUSIVE (more than 10% of an
array's checked elements sat on a kink, too few were compared to tell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_SKIPPED_SHARE = 0.1  # more skipped elements than this fails the check


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
