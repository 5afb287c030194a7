"""The docs site builds, strictly (warnings are errors), and shows what it promises.

Builds ``python -m sphinx -W -b html docs <tmp>`` once, in a subprocess, after the lesson
notebooks were executed in this pytest process through tools/run_notebooks.py (so the
build reuses the executed copies in build/notebooks/ and runs no notebook itself), then
checks pages: rendered math, lines of tinycnn's code included from the source, the
lessons with their outputs, and every public name in the API reference.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("myst_nb", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("furo", reason="the docs extra is not installed (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # run_notebooks (myst-nb brings nbclient along)

import run_notebooks  # noqa: E402
from public_api import public_modules, public_names  # noqa: E402 (tools/public_api.py)

from tinycnn.kernels import reference  # noqa: E402
from tinycnn.layers import dense  # noqa: E402
from tinycnn.optimizers import adam  # noqa: E402

DOCS = ROOT / "docs"
BUILD_SECONDS = 300  # the bound on these 2 cores

# docs page -> the pages it must link to (every page of the site must build)
CONCEPT_PAGES = [
    "index",
    "getting_started",
    "layers/index",
    "layers/conv2d",
    "layers/im2col",
    "layers/max_pooling",
    "layers/dense",
    "layers/activations",
    "layers/softmax_cross_entropy",
    "layers/dropout",
    "optimizers",
    "initialisation",
    "backprop",
    "gradient_checking",
    "backends",
    "how_it_works",
    "performance",
    "results",
    "api/index",
]


def text_of(page: Path) -> str:
    """The visible text of an HTML page (tags stripped, entities decoded)."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def lesson_notebooks() -> list[Path]:
    return run_notebooks.lesson_notebooks()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Execute the lessons here (cached per process), then build the site into a tmp dir."""
    for notebook in lesson_notebooks():
        run_notebooks.execute(notebook)  # cached per process; a failing lesson fails here, named

    out = tmp_path_factory.mktemp("docs_html")
    doctrees = tmp_path_factory.mktemp("docs_doctrees")
    command = [sys.executable, "-m", "sphinx", "-W", "-b", "html", "-d", str(doctrees)]
    start = time.perf_counter()
    result = subprocess.run(
        [*command, str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2 * BUILD_SECONDS,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, (
        f"the docs build failed (exit {result.returncode}):\n{result.stderr[-6000:]}"
    )
    return out, seconds, result.stdout


def test_builds_in_time(site):
    _, seconds, _ = site
    assert seconds < BUILD_SECONDS, f"the docs build took {seconds:.0f} s"


def test_reuses_the_executed_lessons(site):
    # the lessons ran once, in this process, above; the build only copied their outputs
    _, _, stdout = site
    executed = [line for line in stdout.splitlines() if line.startswith("tinycnn docs: executing")]
    assert not executed, "the build executed lessons again:\n" + "\n".join(executed)


@pytest.mark.parametrize("page", CONCEPT_PAGES)
def test_page_exists(site, page):
    out, _, _ = site
    assert (out / f"{page}.html").is_file(), f"{page}.html is missing from the site"


def test_math_is_rendered(site):
    # dollarmath turned $$...$$ into MathJax blocks: no dollar pair left in the text,
    # and the conv2d page holds the weight gradient's formula
    out, _, _ = site
    page = out / "layers" / "conv2d.html"
    raw = page.read_text(encoding="utf-8")
    blocks = re.findall(r'<div class="math notranslate nohighlight">(.*?)</div>', raw, re.S)
    assert len(blocks) >= 5
    assert any(r"\frac{\partial L}{\partial K_{i,j,c,f}}" in html.unescape(b) for b in blocks)
    assert "$$" not in text_of(page)
    assert 'class="math notranslate nohighlight"' in raw  # inline math too
    assert "mathjax" in raw.lower()


@pytest.mark.parametrize(
    ("page", "function"),
    [
        ("layers/conv2d", reference._conv2d_backward_linear),
        ("layers/im2col", reference.col2im),
        ("layers/max_pooling", reference.maxpool_backward),
        ("layers/dense", dense.Dense._backward),
        ("optimizers", adam.Adam.update_param),
    ],
)
def test_code_is_included_from_the_source(site, page, function):
    # every non-blank line of the function, as it is in the source today, is on the page
    out, _, _ = site
    text = text_of(out / f"{page}.html")
    lines = [line.strip() for line in inspect.getsource(function).splitlines() if line.strip()]
    absent = [line for line in lines if line not in text]
    assert not absent, f"{page}: lines of {function.__qualname__} not on the page: {absent[:3]}"


def test_col2im_page_has_the_plus_equals(site):
    out, _, _ = site
    text = text_of(out / "layers" / "im2col.html")
    assert "+= dcols[" in text
    assert "Why +=" in text


def test_lessons_are_rendered_with_outputs(site):
    out, _, _ = site
    notebooks = lesson_notebooks()
    if not notebooks:
        pytest.skip("no lesson notebooks in examples/notebooks")
    for notebook in notebooks:
        page = out / "lessons" / f"{notebook.stem}.html"
        assert page.is_file(), f"lesson {notebook.name} is not on the site"
        raw = page.read_text(encoding="utf-8")
        assert 'class="cell_output' in raw, f"{notebook.name} is shown without outputs"
    images = list((out / "_images").glob("*.png"))
    assert images, "no lesson shows a figure"


def test_every_public_name_is_in_the_api_reference(site):
    out, _, _ = site
    pages = list((out / "api" / "generated").glob("*.html"))
    anchors = set()
    for page in pages:
        anchors |= set(re.findall(r'id="(tinycnn[\w.]*)"', page.read_text(encoding="utf-8")))
    documented = set()  # id() of every object documented in full somewhere
    for anchor in anchors:
        module_name, _, attr = anchor.rpartition(".")
        try:
            documented.add(id(getattr(importlib.import_module(module_name), attr)))
        except (ImportError, AttributeError, ValueError):
            continue  # a method or attribute anchor (Class.method)
    modules = public_modules()
    missing = []
    for module in modules:
        page = out / "api" / "generated" / f"{module.__name__}.html"
        if not page.is_file():  # a module named in another's __all__ (datasets.idx): its page
            page = next(
                out / "api" / "generated" / f"{m.__name__}.html"
                for m in modules
                if any(getattr(m, n, None) is module for n in public_names(m))
            )
        text = text_of(page)
        for name in public_names(module):
            obj = getattr(module, name)
            if f"{module.__name__}.{name}" not in text:
                missing.append(f"{module.__name__}.{name} (not on {page.name})")
            elif not isinstance(obj, types.ModuleType) and id(obj) not in documented:
                missing.append(f"{module.__name__}.{name} (documented nowhere in full)")
    assert not missing, "missing from the API reference:\n  " + "\n  ".join(missing)


def test_docstrings_are_rendered_with_napoleon(site):
    out, _, _ = site
    raw = (out / "api" / "generated" / "tinycnn.layers.html").read_text(encoding="utf-8")
    assert 'id="tinycnn.layers.Conv2D"' in raw
    assert "Parameters" in raw  # Google-style "Args:" became a parameter list
    assert "(N, H, W, C)" in html.unescape(raw)  # the shapes of the docstrings
