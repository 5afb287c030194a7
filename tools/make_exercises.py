"""Make the exercise notebooks from their solutions.

The solutions are written as jupytext "percent" files, examples/exercises/solutions/NN_name.py.
Each code cell may mark the parts a student writes::

    def im2col(x, kh, kw, stride):
        \"\"\"x (N, H, W, C) -> cols (N*Ho*Wo, kh*kw*C).\"\"\"
        # BEGIN SOLUTION
        ...the solution...
        # END SOLUTION

From each NN_name.py this writes two notebooks, outputs stripped:

* examples/exercises/solutions/NN_name.ipynb: the solution notebook (for teachers; paired
  with its .py, ``formats: ipynb,py:percent``);
* examples/exercises/NN_name.ipynb: the student's notebook, where every marked block is
  replaced, at the marker's indentation, by ``raise NotImplementedError("your code here")``,
  or, for a marker ``# BEGIN SOLUTION: <placeholder>``, by ``# your code here`` followed by
  the placeholder line (``# BEGIN SOLUTION: dx = None`` leaves ``dx = None``).

    python tools/make_exercises.py            # write every notebook that changed
    python tools/make_exercises.py --check    # write nothing; exit 1 if one is out of date

tests/exercises/test_exercise_notebooks.py regenerates them in memory and compares.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from sync_notebooks import update  # tools/sync_notebooks.py, beside this file

REPO_ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = REPO_ROOT / "examples" / "exercises"
SOLUTION_DIR = EXERCISE_DIR / "solutions"

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<placeholder>.*\S))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
STUB = 'raise NotImplementedError("your code here")'


def solution_sources() -> list[Path]:
    """The solutions' .py files: examples/exercises/solutions/NN_name.py."""
    return sorted(SOLUTION_DIR.glob("[0-9][0-9]_*.py"))


def strip_solutions(source: str, where: str = "a cell") -> str:
    """``source`` with every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block (markers
    included) replaced by the stub; ValueError on a marker without its pair."""
    out, begin = [], None
    for number, line in enumerate(source.splitlines(), 1):
        start, end = BEGIN.match(line), END.match(line)
        if start:
            if begin is not None:
                raise ValueError(f"{where}, line {number}: BEGIN SOLUTION inside another block")
            begin = start
        elif end:
            if begin is None:
                raise ValueError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            indent, placeholder = begin["indent"], begin["placeholder"]
            if placeholder:
                out += [f"{indent}# your code here", f"{indent}{placeholder}"]
            else:
                out.append(f"{indent}{STUB}")
            begin = None
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def _stripped_outputs(nb):
    """No outputs, no execution counts, and cell ids from the cells' places (nbformat
    would draw random ones: every run would rewrite every notebook)."""
    for index, cell in enumerate(nb.cells, 1):
        cell.id = f"cell-{index:02d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def solution_notebook(py: Path):
    """The solution notebook of ``py``: its cells, no outputs, jupytext pairing kept."""
    return _stripped_outputs(jupytext.read(py))


def student_notebook(py: Path):
    """The student's notebook of ``py``: every solution block replaced by the stub."""
    nb = copy.deepcopy(solution_notebook(py))
    nb.metadata.pop("jupytext", None)  # no .py beside the student's copy
    for index, cell in enumerate(nb.cells, 1):
        where = f"{py.name}, cell {index}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
        elif "SOLUTION" in cell.source:
            raise ValueError(f"{where}: solution markers belong in code cells only")
    return nb


def targets(py: Path) -> dict[Path, str]:
    """Each notebook made from ``py``: its path and its text."""
    return {
        py.with_suffix(".ipynb"): jupytext.writes(solution_notebook(py), fmt="ipynb"),
        EXERCISE_DIR / f"{py.stem}.ipynb": nbformat.writes(student_notebook(py)) + "\n",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    files = {path: text for py in solution_sources() for path, text in targets(py).items()}
    return update(files, args.check, "make_exercises.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
