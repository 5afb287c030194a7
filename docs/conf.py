"""Sphinx configuration of the tinycnn docs site.

Build it (offline, warnings as errors; about a minute once the lessons are executed)::

    python -m sphinx -W -b html docs docs/_build/html

Two folders are generated here at each build, and git ignores both:

* ``docs/lessons/``: the executed lesson notebooks. The tests execute them once
  (tools/run_notebooks.py keeps the executed copies in ``build/notebooks/``); the site
  shows those outputs rather than running the notebooks a second time
  (``nb_execution_mode = "off"``). A copy that is missing or older than its notebook is
  executed here first, through the same tools/run_notebooks.py, so that ``sphinx``
  alone gives the full site.
* ``docs/api/generated/``: one page per public module, listing every name of its
  ``__all__`` (or, for a module without one, its own public functions and classes)
  with autodoc, so the reference cannot miss a new name.

Nothing here needs the network while building: no intersphinx. The formulas are
typeset in the reader's browser by MathJax, which Sphinx loads from its CDN (the
default ``mathjax_path``): the pages need the network to show rendered math, and
show the LaTeX source without it.
"""

from __future__ import annotations

import inspect
import shutil
import sys
import types
from pathlib import Path

import nbformat

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the tinycnn of this checkout, for autodoc
sys.path.insert(0, str(ROOT / "tools"))  # run_notebooks, public_api

import run_notebooks  # noqa: E402 (tools/run_notebooks.py)
from public_api import page_modules, public_names  # noqa: E402 (tools/public_api.py)

import tinycnn  # noqa: E402

project = "tinycnn"
author = "the tinycnn authors"
copyright = "tinycnn authors, MIT license"  # noqa: A001 (Sphinx's name)
release = tinycnn.__version__

extensions = [
    "myst_nb",  # MyST markdown pages and the notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Google style: "Args:", "Returns:"
    "sphinx.ext.mathjax",
]

html_theme = "furo"
html_title = f"tinycnn {release}"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links

# The notebooks are executed by the tests (tools/run_notebooks.py), never by myst-nb.
nb_execution_mode = "off"
nb_merge_streams = True

# autodoc: members in source order, signatures with their type hints
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# ---- the lessons: executed copies of examples/notebooks ------------------------------------
NOTEBOOK_FOLDERS = {"lessons": ROOT / "examples" / "notebooks"}  # docs folder -> notebooks


def executed_copy(source: Path) -> Path:
    """The executed copy of ``source`` in build/notebooks/, executing it if it is missing,
    failed part way (no ``tinycnn_run`` metadata) or older than the notebook."""
    copy = run_notebooks.executed_path(source)
    fresh = (
        copy.is_file()
        and copy.stat().st_mtime >= source.stat().st_mtime
        and "tinycnn_run" in nbformat.read(copy, as_version=4).metadata
    )
    if not fresh:
        print(f"tinycnn docs: executing {source.relative_to(ROOT)} (no fresh executed copy)")
        run_notebooks.execute(source)
    return copy


def write_if_changed(path: Path, content: bytes) -> None:
    """Write ``content`` unless ``path`` already holds it: an unchanged page keeps its
    time stamp, so that a second build re-reads only what changed."""
    if not (path.is_file() and path.read_bytes() == content):
        path.write_bytes(content)


def copy_notebooks() -> None:
    for folder, source_dir in NOTEBOOK_FOLDERS.items():
        target = DOCS / folder
        notebooks = sorted(source_dir.glob("*.ipynb"))
        if not notebooks:
            shutil.rmtree(target, ignore_errors=True)
            continue
        target.mkdir(exist_ok=True)
        wanted = {nb.name for nb in notebooks} | {"index.md"}
        for stale in target.iterdir():
            if stale.name not in wanted and stale.is_dir():
                shutil.rmtree(stale)
            elif stale.name not in wanted:
                stale.unlink()
        for source in notebooks:
            write_if_changed(target / source.name, executed_copy(source).read_bytes())
        index = (
            "# The lessons\n\n"
            "The lesson notebooks, shown with the outputs of their last run in the tests\n"
            "(`TINYCNN_QUICK=1`: a small subset of Fashion-MNIST, so the numbers are those\n"
            "of a quick run; the text of each lesson gives the full-data numbers).\n"
            "Open them in Jupyter from `examples/notebooks/` to run them yourself.\n\n"
            "```{toctree}\n:maxdepth: 1\n:glob:\n\n*\n```\n"
        )
        write_if_changed(target / "index.md", index.encode())


# ---- the API reference: one page per public module -----------------------------------------
# Pages in the order of tools/public_api.PAGE_MODULES (the enumeration the tests share); a
# name is documented in full on the first page whose module its object comes from (its
# canonical home) and cross-referenced elsewhere.


def _listed_as(obj, module) -> str | None:
    """The name under which ``module``'s public names list ``obj`` (its own name first)."""
    names = [n for n in public_names(module) if getattr(module, n, None) is obj]
    own = getattr(obj, "__name__", None)
    return own if own in names else (names[0] if names else None)


def _home(obj, modules) -> str | None:
    """The full name under which ``obj`` is documented in full: on the first page that
    lists it and that its ``__module__`` belongs to, or else on the first page that lists it."""
    listing = [m for m in modules if _listed_as(obj, m)]
    origin = getattr(obj, "__module__", "") or ""
    for module in listing:
        if module.__name__ != "tinycnn" and (origin + ".").startswith(module.__name__ + "."):
            return f"{module.__name__}.{_listed_as(obj, module)}"
    return f"{listing[0].__name__}.{_listed_as(obj, listing[0])}" if listing else None


def _entry(module, name: str, modules) -> str:
    obj = getattr(module, name)
    full = f"{module.__name__}.{name}"
    if isinstance(obj, types.ModuleType):
        if any(m is obj for m in modules):  # has its own page
            return f"* ``{full}``: see :doc:`{obj.__name__}`\n\n"
        return f".. automodule:: {obj.__name__}\n   :members:\n\n"
    home = _home(obj, modules)
    if home is not None and home.rpartition(".")[0] != module.__name__:
        role = "class" if inspect.isclass(obj) else "func"
        return f"* ``{full}``: see :py:{role}:`{home}`\n\n"
    if inspect.isclass(obj):
        return f".. autoclass:: {full}\n\n"
    if callable(obj):
        return f".. autofunction:: {full}\n\n"
    return f".. autodata:: {full}\n   :no-value:\n\n"


def write_api_pages() -> None:
    target = DOCS / "api" / "generated"
    target.mkdir(parents=True, exist_ok=True)
    modules = page_modules()
    pages = {f"{m.__name__}.rst" for m in modules}
    for stale in target.glob("*.rst"):
        if stale.name not in pages:
            stale.unlink()
    for module in modules:
        name = module.__name__
        text = f"{name}\n{'=' * len(name)}\n\n.. automodule:: {name}\n   :no-members:\n\n"
        text += "".join(_entry(module, n, modules) for n in public_names(module))
        write_if_changed(target / f"{name}.rst", text.encode())


# ---- pages that may not be there yet ----------------------------------------------------
# Written separately from this configuration; a missing one is left out of the tables of
# contents (with a note) rather than failing the build. Everything else must exist.
OPTIONAL_PAGES = [
    "lessons/index",  # generated above, when examples/notebooks has notebooks
    "exercises",
    "custom_layers",
    "viz",
    "from_keras",
    "layers/batch_normalization",
]


def _page_exists(docname: str) -> bool:
    return any((DOCS / f"{docname}{suffix}").is_file() for suffix in (".md", ".ipynb", ".rst"))


def drop_missing_pages(app, docname, source) -> None:
    """Remove toctree lines naming an optional page that does not exist (source-read)."""
    folder = docname.rpartition("/")[0]
    missing = {p for p in OPTIONAL_PAGES if not _page_exists(p)}
    kept = []
    for line in source[0].splitlines(keepends=True):
        entry = line.strip()
        target = f"{folder}/{entry}" if folder and entry else entry
        if target in missing:
            print(f"tinycnn docs: {target} is not written yet; left out of {docname}")
            continue
        kept.append(line)
    source[0] = "".join(kept)


def order_api_pages(app, docname, source) -> None:
    """api/index lists ``generated/*``: put its pages in the order of PAGE_MODULES (the
    layers first, ``tinycnn`` last) rather than the glob's alphabetical one (source-read)."""
    if docname != "api/index":
        return
    ordered = "\n".join(f"generated/{m.__name__}" for m in page_modules())
    source[0] = source[0].replace(":glob:\n\ngenerated/*", ordered)


def setup(app):
    app.connect("source-read", drop_missing_pages)
    app.connect("source-read", order_api_pages)


copy_notebooks()
write_api_pages()
