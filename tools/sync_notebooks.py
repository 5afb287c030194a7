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
    stale = []
    for py in [p.resolve() for p in args.files] or pairs():
        ipynb = py.with_suffix(".ipynb")
        text = render(py)
        old = ipynb.read_text(encoding="utf-8") if ipynb.exists() else None
        # jupytext gives each new cell a random id: compare what a reader sees.
        if old is not None and cells(nbformat.reads(old, 4)) == cells(nbformat.reads(text, 4)):
            continue
        stale.append(ipynb)
        if not args.check:
            ipynb.write_text(text, encoding="utf-8")
            print(f"wrote {ipynb.relative_to(REPO_ROOT)}")
    if args.check and stale:
        print("out of date (run python tools/sync_notebooks.py):")
        for p in stale:
            print(f"  {p.relative_to(REPO_ROOT)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
