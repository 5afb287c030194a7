"""What a check hands back: a :class:`CheckReport`, and how one failure is described.

A report says whether every case passed (``report.ok``) and, if not, describes the
*first* failing case only (the later ones usually fail for the same reason), e.g.
for a bias gradient averaged instead of summed::

    check_conv2d_backward: FAILED on case 1 of 9: dbias is wrong at index (0,)
      case:     x (1, 4, 4, 1), kernel (3, 3, 1, 1), dy (1, 2, 2, 1), stride 1, padding 'valid'
      hint:     the simplest: one image, one channel, one filter
      expected: -2.028938154
      got:      -0.5072345384   (|got - expected| = 1.5, tolerance 4.1e-07)
      note:     every entry is the expected one times 0.25 (1/4)
      outputs:  dx ok, dkernel ok, dbias wrong (1 of 1 entries)
      replay:   check_conv2d_backward(conv2d_backward, seed=0)

It prints as text (``print(report)``), and as Markdown/HTML when it is the last line of a
notebook cell. It never shows how the right answer is computed, only what it is at
the worst entry: the student still has to find the mistake.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Failure:
    """The first failing case of a check.

    Attributes:
        case_number: 1-based index of the case among the check's cases.
        case: the case's arguments in words, e.g. ``"x (2, 5, 5, 3), stride 2"``.
        hint: what this case tests (odd 'same' padding, ties, ...).
        problem: one line: what went wrong (a wrong entry, an exception, a wrong shape).
        details: ``(label, text)`` lines printed under the problem (expected, got, ...).
    """

    case_number: int
    case: str
    hint: str
    problem: str
    details: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CheckReport:
    """The result of one check: ``ok``, the seed its cases came from, the first failure.

    Attributes:
        check: the check's name, e.g. ``"check_im2col"``.
        function: the name of the function that was checked (the student's).
        seed: the seed the cases were drawn from; ``check_x(fn, seed=seed)`` replays them.
        n_cases: how many cases the check has.
        passed: how many cases passed before the first failure (all of them if ok).
        failure: the first failing case, or ``None``.
    """

    check: str
    function: str
    seed: int
    n_cases: int
    passed: int
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        """True when every case passed."""
        return self.failure is None

    @property
    def replay(self) -> str:
        """The call that draws the same cases again: ``check_x(fn, seed=...)``."""
        return f"{self.check}({self.function}, seed={self.seed})"

    def headline(self) -> str:
        """The first line of the report: passed, or which case failed and how."""
        if self.ok:
            return f"{self.check}: passed all {self.n_cases} cases (seed {self.seed})"
        f = self.failure
        return f"{self.check}: FAILED on case {f.case_number} of {self.n_cases}: {f.problem}"

    def lines(self) -> list[tuple[str, str]]:
        """The ``(label, text)`` lines under the headline (none when ok)."""
        if self.ok:
            return []
        f = self.failure
        rows = [("case", f.case), ("hint", f.hint), *f.details, ("replay", self.replay)]
        return [(label, text) for label, text in rows if text]

    def __str__(self) -> str:
        width = max((len(label) for label, _ in self.lines()), default=0) + 1
        body = [f"  {label + ':':<{width}} {text}" for label, text in self.lines()]
        return "\n".join([self.headline(), *body])

    def __repr__(self) -> str:
        return f"<CheckReport {self.headline()}>"

    def _repr_markdown_(self) -> str:
        mark = "✅" if self.ok else "❌"
        out = [f"{mark} **{_md(self.headline())}**", ""]
        out += [f"- *{label}*: `{_code(text)}`" for label, text in self.lines()]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#cf222e"
        rows = "".join(
            f"<tr><td style='text-align:left'><i>{html.escape(label)}</i></td>"
            f"<td style='text-align:left'><code>{html.escape(text)}</code></td></tr>"
            for label, text in self.lines()
        )
        table = f"<table>{rows}</table>" if rows else ""
        head = html.escape(self.headline())
        return f"<div><p style='color:{colour}'><b>{head}</b></p>{table}</div>"


def _md(text: str) -> str:
    """Text safe inside Markdown emphasis (``*`` and ``_`` would start some)."""
    for char in "\\*_`[]<>":
        text = text.replace(char, "\\" + char)
    return text


def _code(text: str) -> str:
    """Text safe inside a Markdown code span."""
    return text.replace("`", "'")
