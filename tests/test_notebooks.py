"""The lesson notebooks (examples/notebooks): each one is there, runs, draws, and is in sync.

Each notebook is executed once per pytest session by tools/run_notebooks.py (nbclient,
kernel ``python3``, ``TINYCNN_QUICK=1``); the executed copies land in build/notebooks/,
where the docs build picks them up. A notebook ends with ``assert`` cells of its own, so
"it ran without an error" already means its numbers were checked.

A notebook that loads Fashion-MNIST is skipped (with the reason) when the data is not
found where tests/real_data.py looks; the others always run.
Time per notebook: ``pytest -s tests/test_notebooks.py`` prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))

nbformat = pytest.importorskip("nbformat", reason="pip install 'tinycnn[notebooks]'")
jupytext = pytest.importorskip("jupytext", reason="pip install 'tinycnn[notebooks]'")
pytest.importorskip("nbclient", reason="pip install 'tinycnn[notebooks]'")

import run_notebooks  # noqa: E402  (tools/ is put on sys.path just above)
from real_data import DATA, data_present  # noqa: E402

NOTEBOOK_DIR = REPO_ROOT / "examples" / "notebooks"
LESSONS = [
    "01_convolution_by_hand",
    "02_convolution_backward",
    "03_pooling_dense_softmax",
    "04_gradient_checking",
    "05_training",
    "06_looking_inside",
    "07_training_diagnostics",
    "08_speed_and_backends",
]


def needs_data(nb) -> bool:
    """Whether the notebook loads Fashion-MNIST (it then needs the real files); building
    ``fashion_mnist_cnn`` on random images does not count."""
    return any(cell.cell_type == "code" and ".load_data(" in cell.source for cell in nb.cells)


def test_every_lesson_is_there_and_nothing_else():
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert found == LESSONS, f"examples/notebooks holds {found}, expected {LESSONS}"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_and_shows_a_figure(name):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    assert path.is_file(), f"missing lesson notebook {path.relative_to(REPO_ROOT)}"
    if needs_data(nbformat.read(path, as_version=4)) and not data_present(DATA):
        pytest.skip(
            f"{name} loads Fashion-MNIST, not found in {DATA} "
            "(set TINYCNN_DATA to the folder holding the four IDX files)"
        )
    nb = run_notebooks.execute(path)  # raises, naming the cell, if any cell fails
    seconds = run_notebooks.TIMINGS.get(path.resolve(), nb.metadata["tinycnn_run"]["seconds"])
    print(
        f"\n{name}: {seconds:.1f} s (TINYCNN_QUICK={nb.metadata['tinycnn_run']['TINYCNN_QUICK']})"
    )

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, f"{name}: error outputs {[e.ename + ': ' + e.evalue for e in errors]}"
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert figures, f"{name}: no cell shows a figure (no image/png output)"
    asserts = [c for c in nb.cells if c.cell_type == "code" and "assert" in c.source]
    assert asserts, f"{name}: no cell checks a computed number (no assert)"


@pytest.mark.parametrize("name", LESSONS)
def test_ipynb_is_stripped_and_in_sync_with_its_py(name):
    ipynb, py = NOTEBOOK_DIR / f"{name}.ipynb", NOTEBOOK_DIR / f"{name}.py"
    assert ipynb.is_file() and py.is_file(), f"{name}: needs both .ipynb and its .py pair"
    nb = nbformat.read(ipynb, as_version=4)
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{name}.ipynb cell {i} has an execution count"
    assert "py:percent" in nb.metadata.get("jupytext", {}).get("formats", ""), (
        f"{name}.ipynb lacks the jupytext pairing metadata (formats: ipynb,py:percent)"
    )
    pair = jupytext.read(py)
    have = [(c.cell_type, c.source) for c in nb.cells]
    want = [(c.cell_type, c.source) for c in pair.cells]
    assert have == want, (
        f"{name}.ipynb is out of sync with {name}.py: run python tools/sync_notebooks.py"
    )


def test_a_failing_cell_is_named_and_a_run_is_cached(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nquick = os.environ['TINYCNN_QUICK']"),
        nbformat.v4.new_code_cell("assert quick == '1'\nprint('ran')"),
        nbformat.v4.new_code_cell("raise ValueError('shape (3, 4) is wrong')"),
    ]
    path = tmp_path / "broken_lesson.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(run_notebooks.NotebookError) as error:
        run_notebooks.execute(path, env={"TINYCNN_QUICK": "1"})
    message = str(error.value)
    assert "broken_lesson.ipynb: cell 3 of 3 raised ValueError: shape (3, 4) is wrong" in message

    nb.cells = nb.cells[:2]  # fixed: runs, and a second call is served from the cache
    nbformat.write(nb, path)
    first = run_notebooks.execute(path, env={"TINYCNN_QUICK": "1"})
    assert first.cells[1].outputs[0].text == "ran\n"
    assert run_notebooks.execute(path, env={"TINYCNN_QUICK": "1"}) is first
    assert run_notebooks.executed_path(path).is_file()
