"""Print the bug-zoo table: each mistake, the check that catches it, the report's first line.

    python tests/exercises/zoo_table.py            # Markdown, seed 0
    python tests/exercises/zoo_table.py --seed 7

The same rows as test_bug_zoo.py asserts (every report there must be a failure).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exercise_bugs  # noqa: E402  (this folder is put on sys.path just above)

from tinycnn import exercises  # noqa: E402


def rows(seed: int = 0) -> list[tuple[str, str, str, bool]]:
    """``(mistake, check, first line of its report, caught)`` for every bug of the zoo."""
    out = []
    for bug in exercise_bugs.ZOO:
        report = getattr(exercises, bug.check)(bug.fn, seed=seed)
        out.append((bug.mistake, bug.check, report.headline(), not report.ok))
    return out


def table(seed: int = 0) -> str:
    """The zoo as a Markdown table, with the count caught."""
    found = rows(seed)
    lines = ["| # | mistake | check | report's first line |", "| --- | --- | --- | --- |"]
    for number, (mistake, check, first, _) in enumerate(found, 1):
        cell = first.replace("|", "\\|")
        lines.append(f"| {number} | {mistake.replace('|', '/')} | `{check}` | {cell} |")
    caught = sum(row[3] for row in found)
    lines.append(f"\n{caught} of {len(found)} caught (seed {seed}).")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    print(table(parser.parse_args().seed))
