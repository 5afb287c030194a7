"""The bug zoo: every correct solution passes its check, every wrong one is caught.

exercise_solutions.py holds correct solutions written without tinycnn; exercise_bugs.py
holds the zoo, one real student mistake per function. A check that let one bug through
(for any of the seeds below), or failed a correct solution, fails here. ``pytest -s``
prints each bug's report; ``python tests/exercises/zoo_table.py`` prints the table.
"""

from __future__ import annotations

import exercise_bugs
import exercise_solutions
import pytest

from tinycnn import exercises

CHECKS = [name for name in exercises.__all__ if name.startswith("check_")]
SEEDS = range(8)  # the cases differ from seed to seed: a bug must be caught by every one


def test_the_zoo_has_at_least_25_bugs_and_covers_every_check():
    assert len(exercise_bugs.ZOO) >= 25
    assert len({bug.id for bug in exercise_bugs.ZOO}) == len(exercise_bugs.ZOO)
    for check in CHECKS:
        assert sum(bug.check == check for bug in exercise_bugs.ZOO) >= 2, check
    assert set(exercise_solutions.SOLUTIONS) == set(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_a_correct_solution_passes_every_seed(check):
    solution = exercise_solutions.SOLUTIONS[check]
    for seed in [*SEEDS, None]:  # None: a fresh seed, as a student's call draws
        report = getattr(exercises, check)(solution, seed=seed)
        assert report.ok, str(report)
        assert report.passed == report.n_cases >= 6


@pytest.mark.parametrize("bug", exercise_bugs.ZOO, ids=lambda bug: bug.id)
def test_the_check_catches_the_bug(bug):
    check = getattr(exercises, bug.check)
    reports = [check(bug.fn, seed=seed) for seed in SEEDS]
    missed = [report.seed for report in reports if report.ok]
    assert not missed, f"{bug.check} let '{bug.mistake}' through with seeds {missed}"
    print(f"\n{bug.mistake}\n{reports[0]}")
    first = reports[0]
    assert first.passed < first.n_cases and first.failure.problem
    assert first.headline().startswith(f"{bug.check}: FAILED on case ")
    assert f"seed={first.seed}" in str(first)
