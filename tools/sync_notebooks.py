"""Regenerate the lesson notebooks (.ipynb) from their jupytext pairs (.py, "percent" format).

The .py file is the one we write and review; the .ipynb, committed with its outputs
stripped, is what a student opens in Jupyter or Colab. tests/test_notebooks.py checks
that each pair is in sync.

    python tools/sync_notebooks.py            # rewrite every examples/notebooks/NN_*.ipynb
    python tools/sync_notebooks.py --check    # only report the ones out of date (exit 1)
    python tools/sync_notebooks.py examples/notebooks/01_convolution_by_hand.py

The same as ``jupytext --to ipynb examples/notebooks/NN_slug.py`` for each file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "examples" / "notebooks"


def pairs() -> list[Path]:
    """The lessons' .py files: examples/notebooks/NN_slug.py."""
    return sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def render(py: Path) -> str:
    """The .ipynb text for ``py``: its cells, no outputs, pairing metadata kept."""
    nb = jupytext.read(py)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return jupytext.writes(nb, fmt="ipynb")


def cells(nb) -> list[tuple[str, str]]:
    """(type, source) of each cell: what the sync check compares."""
    return [(c.cell_type, c.source) for c in nb.cells]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="the .py files (default: all)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    files = {
        py.with_suffix(".ipynb"): render(py) for py in [p.resolve() for p in args.files] or pairs()
    }
    # jupytext gives each new cell a random id: compare what a reader sees.
    return update(files, args.check, "sync_notebooks.py", same=same_cells)


def same_cells(old: str, new: str) -> bool:
    """Whether two notebooks' texts have the same cells (type and source)."""
    return cells(nbformat.reads(old, 4)) == cells(nbformat.reads(new, 4))


def update(files: dict, check: bool, command: str, same=str.__eq__) -> int:
    """Write each ``{path: text}`` whose file is missing or not ``same`` as ``text``; with
    ``check``, write nothing and return 1 if any is stale (``command`` is the script to
    run then). make_exercises.py uses it too."""
    stale = []
    for path, text in files.items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old is not None and same(old, text):
            continue
        stale.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if check and stale:
        print(f"out of date (run python tools/{command}):")
        print("\n".join(f"  {p.relative_to(REPO_ROOT)}" for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
