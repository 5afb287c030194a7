"""Execute the lesson notebooks (examples/notebooks) once per process, and keep the results.

Used by the tests (tests/test_notebooks.py) and the docs build, so that a pytest session
runs each notebook only once::

    from run_notebooks import execute          # with tools/ on sys.path
    nb = execute("examples/notebooks/01_convolution_by_hand.ipynb")

* The kernel is ``python3`` from ipykernel: jupyter_client starts it with the running
  interpreter (``sys.executable``), so it sees the same virtual environment and tinycnn.
* The working directory is the notebook's folder.
* ``TINYCNN_QUICK=1`` is set unless the environment already has ``TINYCNN_QUICK``: the
  lessons then run on a small data subset (seconds rather than minutes).
* ``TINYCNN_DATA`` is set to ``../shared/data/fashion-mnist`` beside the repository when
  it is unset and that folder exists (the same rule as tests/real_data.py).
* Figures go inline: ``MPLBACKEND`` is left to ipykernel (its inline backend), even when
  the calling process set ``MPLBACKEND=Agg`` for its own plots.
* The executed copy is written to ``build/notebooks/<path, "/" replaced by "__">.ipynb``
  (e.g. ``build/notebooks/examples__notebooks__01_convolution_by_hand.ipynb``), with the
  run time in ``metadata["tinycnn_run"]``, and kept in a module-level cache keyed by the
  notebook's path and content hash.
* A failing cell raises :class:`NotebookError` naming the notebook, the cell and the
  exception (nbclient's traceback, trimmed); the partly executed copy is written too.

Run every lesson from the command line (prints each one's time)::

    python tools/run_notebooks.py                       # all of examples/notebooks
    python tools/run_notebooks.py examples/notebooks/04_gradient_checking.ipynb
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "examples" / "notebooks"
BUILD_DIR = REPO_ROOT / "build" / "notebooks"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "fashion-mnist"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# (resolved path, sha256 of the file, extra env items) -> executed notebook
_CACHE: dict[tuple, nbformat.NotebookNode] = {}
# resolved path -> seconds the last execution took in this process
TIMINGS: dict[Path, float] = {}


class NotebookError(RuntimeError):
    """A cell of a notebook raised (or timed out)."""


def executed_path(path: Path) -> Path:
    """Where the executed copy of ``path`` is written."""
    path = Path(path).resolve()
    try:
        rel = path.relative_to(REPO_ROOT)
    except ValueError:  # a notebook outside the repository (a test's temporary one)
        rel = Path(path.name)
    return BUILD_DIR / (rel.with_suffix("").as_posix().replace("/", "__") + ".ipynb")


def kernel_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the kernel starts with (see the module docstring)."""
    env = dict(os.environ)
    env.setdefault("TINYCNN_QUICK", "1")
    if not env.get("TINYCNN_DATA") and DEFAULT_DATA.is_dir():
        env["TINYCNN_DATA"] = str(DEFAULT_DATA)
    # ipykernel picks the inline backend only when MPLBACKEND is unset; a test process's
    # "Agg" would otherwise leave the notebook without a single figure.
    env.pop("MPLBACKEND", None)
    env.update(extra or {})
    return env


def _trim(error: Exception, limit: int = 25) -> str:
    """The exception's name, value and the last lines of its traceback, without colours."""
    if isinstance(error, CellExecutionError) and error.traceback:
        lines = _ANSI.sub("", str(error.traceback)).strip().splitlines()
        tail = lines[-limit:]
        head = ["..."] if len(lines) > limit else []
        return "\n".join(head + tail)
    return _ANSI.sub("", f"{type(error).__name__}: {error}").strip()


def execute(
    path: str | os.PathLike,
    timeout: int = 300,
    env: dict[str, str] | None = None,
) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` and return the executed copy (cached per process).

    ``timeout``: seconds one cell may run. ``env``: extra environment variables for the
    kernel (they are part of the cache key).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    content = path.read_bytes()
    key = (path, hashlib.sha256(content).hexdigest(), tuple(sorted((env or {}).items())))
    if key in _CACHE:
        return _CACHE[key]

    nb = nbformat.reads(content.decode("utf-8"), as_version=4)
    current = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_cell_start,
    )
    out = executed_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        client.execute(env=kernel_env(env))
    except (CellExecutionError, CellTimeoutError) as error:
        nbformat.write(nb, out)
        index = current["index"]
        cell_no = "?" if index is None else index + 1
        name = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        what = f"{error.ename}: {error.evalue}" if getattr(error, "ename", None) else "timed out"
        raise NotebookError(
            f"{name}: cell {cell_no} of {len(nb.cells)} raised {what}\n"
            f"(executed copy: {out})\n{_trim(error)}"
        ) from None
    seconds = time.perf_counter() - start
    TIMINGS[path] = seconds
    nb.metadata["tinycnn_run"] = {
        "seconds": round(seconds, 2),
        "TINYCNN_QUICK": kernel_env(env)["TINYCNN_QUICK"],
    }
    nbformat.write(nb, out)
    _CACHE[key] = nb
    return nb


def lesson_notebooks() -> list[Path]:
    """Every notebook in examples/notebooks, sorted by name."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or lesson_notebooks()
    failed, total = 0, 0.0
    for p in paths:
        try:
            execute(p)
        except NotebookError as error:
            failed += 1
            print(f"FAIL {p}\n{error}\n", flush=True)
            continue
        seconds = TIMINGS[Path(p).resolve()]
        total += seconds
        print(f"{seconds:7.1f} s  {p}  -> {executed_path(p).relative_to(REPO_ROOT)}", flush=True)
    print(f"{total:7.1f} s  total, {len(paths) - failed} ran, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
