"""The exercise notebooks: the students' copies are made from the solutions and in sync,
hide every solution line, and fail their checks cleanly; the solutions run and pass.

Solutions: examples/exercises/solutions/NN_name.py (jupytext percent, paired with its
.ipynb); students' notebooks: examples/exercises/NN_name.ipynb, made by
tools/make_exercises.py. The solution notebooks are executed with nbclient through
tools/run_notebooks.py (once per session; the executed copies land in build/notebooks/).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))

nbformat = pytest.importorskip("nbformat", reason="pip install 'tinycnn[notebooks]'")
pytest.importorskip("jupytext", reason="pip install 'tinycnn[notebooks]'")
pytest.importorskip("nbclient", reason="pip install 'tinycnn[notebooks]'")

import make_exercises  # noqa: E402  (tools/ is put on sys.path just above)
import run_notebooks  # noqa: E402

EXERCISES = ["01_convolution", "02_max_pooling", "03_dense_and_softmax", "04_adam"]
CHECK_CALL = re.compile(r"^report = (check_\w+)\((\w+)\)$", re.MULTILINE)


def solution_py(name: str) -> Path:
    return make_exercises.SOLUTION_DIR / f"{name}.py"


def test_every_exercise_is_there_with_its_solution():
    assert [p.stem for p in make_exercises.solution_sources()] == EXERCISES
    students = sorted(p.stem for p in make_exercises.EXERCISE_DIR.glob("*.ipynb"))
    assert students == EXERCISES
    checks = set()
    for name in EXERCISES:
        checks |= {m[0] for m in CHECK_CALL.findall(solution_py(name).read_text())}
    assert len(checks) == 8  # the eight checks, each in a notebook


@pytest.mark.parametrize("name", EXERCISES)
def test_the_notebooks_are_in_sync_with_the_solution_py(name):
    for path, text in make_exercises.targets(solution_py(name)).items():
        assert path.is_file(), f"missing {path}: run python tools/make_exercises.py"
        have, want = nbformat.reads(path.read_text(), 4), nbformat.reads(text, 4)
        assert have.cells == want.cells and have.metadata == want.metadata, (
            f"{path.relative_to(REPO_ROOT)} is out of date: run python tools/make_exercises.py"
        )
        for cell in have.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", EXERCISES)
def test_the_students_notebook_hides_every_solution_line(name):
    solution = nbformat.read(make_exercises.SOLUTION_DIR / f"{name}.ipynb", 4)
    student = nbformat.read(make_exercises.EXERCISE_DIR / f"{name}.ipynb", 4)
    hidden, blocks = set(), 0
    for cell in solution.cells:
        inside = False
        for line in cell.source.splitlines():
            if make_exercises.BEGIN.match(line):
                inside, blocks = True, blocks + 1
            elif make_exercises.END.match(line):
                inside = False
            elif inside and len(line.strip()) > 15:
                hidden.add(line.strip())
    text = "\n".join(c.source for c in student.cells)
    assert blocks >= 1 and hidden
    assert not [line for line in hidden if line in text]
    assert "SOLUTION" not in text
    assert text.count(make_exercises.STUB) == blocks
    assert "jupytext" not in student.metadata  # no .py pair beside the student's copy


@pytest.mark.parametrize("name", EXERCISES)
def test_the_solution_notebook_runs_and_every_check_passes(name):
    nb = run_notebooks.execute(make_exercises.SOLUTION_DIR / f"{name}.ipynb", timeout=120)
    print(f"\n{name}: {nb.metadata['tinycnn_run']['seconds']:.1f} s")
    shown = [
        out["data"]["text/plain"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "text/plain" in out.get("data", {})
    ]
    calls = CHECK_CALL.findall("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    assert calls
    for check, _ in calls:
        assert any(f"{check}: passed all" in text for text in shown), (check, shown)
    asserts = [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.source.startswith("assert report.ok, report.headline()")
    ]
    assert len(asserts) == len(calls)


@pytest.mark.parametrize("name", EXERCISES)
def test_the_students_notebook_fails_its_checks_cleanly(name):
    """Run the untouched student notebook in this process: every check reports the
    NotImplementedError of the stub (no crash), and every ``assert report.ok`` fails."""
    student = nbformat.read(make_exercises.EXERCISE_DIR / f"{name}.ipynb", 4)
    namespace, reports, failed_asserts = {"__name__": "__main__"}, [], 0
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        try:
            # np.printoptions(): the notebook's set_printoptions must not outlive the test
            with contextlib.redirect_stdout(io.StringIO()), np.printoptions():
                exec(compile(cell.source, f"<{name}>", "exec"), namespace)
        except AssertionError as error:
            # the assert says which function to fix, not a bare AssertionError
            assert "raised NotImplementedError" in str(error), str(error)
            failed_asserts += 1
            continue
        if CHECK_CALL.search(cell.source):
            reports.append(namespace["report"])
    assert reports and failed_asserts == len(reports)
    for report in reports:
        assert not report.ok and report.failure.case_number == 1
        assert "raised NotImplementedError: write your code where it says" in report.headline()


def test_strip_solutions_replaces_each_block_at_its_indentation():
    source = (
        "def f(x):\n"
        '    """doc"""\n'
        "    # BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    # END SOLUTION\n"
        "    # BEGIN SOLUTION: dx = None\n"
        "    dx = 2 * y\n"
        "    # END SOLUTION\n"
        "    return dx"
    )
    assert make_exercises.strip_solutions(source) == (
        "def f(x):\n"
        '    """doc"""\n'
        '    raise NotImplementedError("your code here")\n'
        "    # your code here\n"
        "    dx = None\n"
        "    return dx"
    )
    for broken in ("# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n" * 2):
        with pytest.raises(ValueError, match="SOLUTION"):
            make_exercises.strip_solutions(broken)
