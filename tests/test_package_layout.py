"""The package's shape: imports go one way, all at the top of each module, and the
model's methods show their real arguments.

The rules (issue 11): ``models/`` uses ``training/`` and ``saving.py``, which get the
model passed in and never import ``models/``; no tinycnn module imports tinycnn inside
a function (an import hidden there is how an import cycle used to be dodged).
Each module is read with ``ast``, nothing is executed.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import tinycnn
from tinycnn import training

PACKAGE = Path(tinycnn.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The tinycnn modules an import statement of module ``importer`` loads: for
    ``from .x import y``, ``tinycnn...x`` and, if ``y`` is a module, ``tinycnn...x.y``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "tinycnn"]
    if node.level:
        is_package = MODULES[importer].name == "__init__.py"
        base = importer.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "tinycnn":
        return []
    found = [target]
    found += [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return found


def top_level_imports(name: str) -> set[str]:
    """The tinycnn modules that importing module ``name`` imports (not counting its own
    parent packages, which are always being imported already), with the packages that
    importing each of them runs first (``import tinycnn.a.b`` runs ``tinycnn/a/__init__``)."""
    tree = ast.parse(MODULES[name].read_text())
    own_packages = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
    found = set()
    for node in module_level_statements(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in imported_modules(node, name):
                parts = target.split(".")
                found |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)}
    return found - own_packages - {name}


def module_level_statements(tree: ast.Module):
    """Every statement run when the module is imported: the top level, including the
    bodies of top-level ``try``/``if``/``with`` blocks, never a function's or class's body."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.Try, ast.If, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []))
        if isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def test_the_walk_sees_every_module_and_its_imports():
    # the checks below are only as good as this: they must see real edges
    assert {"tinycnn", "tinycnn.training.loop", "tinycnn.saving", "tinycnn.models.sequential"} <= (
        MODULES.keys()
    )
    assert "tinycnn.backend" in top_level_imports("tinycnn.training.loop")
    assert "tinycnn.models.sequential" in top_level_imports("tinycnn.models.zoo")
    assert {"tinycnn.kernels.cpu_conv", "tinycnn.kernels.reference"} <= top_level_imports(
        "tinycnn.kernels"
    )  # one of them inside a module-level try
    assert "tinycnn.saving" in top_level_imports("tinycnn.models.loading")
    assert "tinycnn.models" in top_level_imports("tinycnn")


def test_no_tinycnn_import_inside_a_function():
    """An import inside a function hides a dependency (and once hid an import cycle).
    A module's ``__getattr__`` (a lazy attribute of the module) may import."""
    hidden = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        lazy = {
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        }
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if function in lazy:
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and imported_modules(node, name):
                    hidden.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert hidden == []


def reachable_from(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in top_level_imports(todo.pop()):
            if target not in seen and target in MODULES:
                seen.add(target)
                todo.append(target)
    return seen


def test_there_is_no_import_cycle():
    cycles = sorted(name for name in MODULES if name != "tinycnn" and name in reachable_from(name))
    assert cycles == []


@pytest.mark.parametrize("module", ["tinycnn.training", "tinycnn.saving"])
def test_training_and_saving_never_import_models(module):
    """Sequential calls them and passes itself in: the dependency goes one way."""
    starts = [name for name in MODULES if name == module or name.startswith(module + ".")]
    for start in starts:
        reached = {start, *reachable_from(start)}
        assert not [m for m in reached if m.split(".")[:2] == ["tinycnn", "models"]], start


def test_load_model_and_model_file_error_keep_their_names():
    from tinycnn.saving import ModelFileError

    assert tinycnn.load_model is tinycnn.models.load_model
    assert issubclass(ModelFileError, ValueError)


FIT_ARGUMENTS = [
    "epochs",
    "batch_size",
    "validation_data",
    "validation_split",
    "shuffle",
    "callbacks",
    "verbose",
    "seed",
    "initial_epoch",
]


def test_fit_shows_its_real_arguments():
    """help(model.fit) and Jupyter's tooltip list what fit takes, with the defaults of
    the loop it calls, and the docstring says what each one means."""
    parameters = inspect.signature(tinycnn.Sequential.fit).parameters
    assert list(parameters) == ["self", "x", "y", *FIT_ARGUMENTS]
    loop_parameters = inspect.signature(training.fit).parameters
    assert list(loop_parameters) == ["model", "x", "y", *FIT_ARGUMENTS]
    for name in FIT_ARGUMENTS:
        assert parameters[name].default == loop_parameters[name].default, name
        assert f"    {name}: " in tinycnn.Sequential.fit.__doc__, name
    assert parameters["epochs"].default == 1 and parameters["batch_size"].default == 32


@pytest.mark.parametrize("method", ["compile", "fit", "evaluate", "predict", "save"])
def test_the_keras_methods_have_docstrings(method):
    doc = inspect.getdoc(getattr(tinycnn.Sequential, method))
    assert doc and len(doc) > 40, method


def test_compile_says_what_its_arguments_are():
    doc = inspect.getdoc(tinycnn.Sequential.compile)
    for name in ("optimizer:", "loss:", "metrics:", '"adam"', "sparse_categorical_crossentropy"):
        assert name in doc, name
