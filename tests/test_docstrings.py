"""Every public name of tinycnn has a docstring: the API reference (docs/api/) is made
from them, so a name without one would be an empty entry on the site.

Public names: each ``__all__`` (tinycnn's and every public subpackage's), and for a
public module without ``__all__`` (callbacks, metrics, backend...) its own functions and
classes not starting with ``_``; for every class among them, its public methods and
properties (a docstring inherited from a base class counts, as in Keras's reference).
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import tinycnn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # public_api

from public_api import public_modules, public_names  # noqa: E402 (tools/public_api.py)


def _members(cls) -> list[tuple[str, type]]:
    """(name, defining class) of the public methods and properties of a tinycnn class (its
    own and those it inherits from tinycnn classes; not those of ``object`` or other
    libraries)."""
    members = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("tinycnn"):
            continue
        raw = vars(owner)[name]
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if isinstance(raw, property) or inspect.isfunction(raw):
            members.append((name, owner))
    return members


def _method_doc(cls, name: str) -> str | None:
    """The docstring of ``cls.name``, or of the same name in a base class."""
    for klass in cls.__mro__:
        raw = vars(klass).get(name)
        if raw is None:
            continue
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if getattr(raw, "__doc__", None) and raw.__doc__.strip():
            return raw.__doc__
    return None


def missing_docstrings() -> list[str]:
    missing, seen = [], set()
    for module in public_modules():
        if not (module.__doc__ or "").strip():
            missing.append(f"module {module.__name__}")
        for name in public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                continue  # checked as a module above
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and obj not in seen:
                seen.add(obj)
                for member, owner in _members(obj):
                    if not _method_doc(owner, member):  # reported once, where it is defined
                        missing.append(f"{owner.__module__}.{owner.__qualname__}.{member}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    missing = missing_docstrings()
    assert not missing, (
        f"{len(missing)} public names have no docstring (the API reference shows them "
        "empty); write one for each:\n  " + "\n  ".join(missing)
    )


def test_the_check_sees_the_public_names():
    # guards the test above against checking nothing: the names it walks include the
    # layers, the models, methods of classes and the functions of a module without __all__
    names = {f"{m.__name__}.{n}" for m in public_modules() for n in public_names(m)}
    for expected in (
        "tinycnn.Sequential",
        "tinycnn.layers.Conv2D",
        "tinycnn.optimizers.Adam",
        "tinycnn.losses.SoftmaxCrossEntropy",
        "tinycnn.backend.get_array_module",
        "tinycnn.callbacks.EarlyStopping",
        "tinycnn.datasets.fashion_mnist.load_data",
    ):
        assert expected in names
    members = dict(_members(tinycnn.layers.Conv2D))
    assert {"forward", "backward", "get_config"} <= set(members)


def test_a_missing_docstring_is_reported(monkeypatch):
    def undocumented():
        pass

    monkeypatch.setattr(tinycnn.layers, "Undocumented", undocumented, raising=False)
    monkeypatch.setattr(tinycnn.layers, "__all__", [*tinycnn.layers.__all__, "Undocumented"])
    assert "tinycnn.layers.Undocumented" in missing_docstrings()


def test_no_test_module_imports_another():
    # shared helpers live in tools/ (public_api) or in non-test modules; a test module
    # imported by another would run its tests twice and couple the two files
    tests = Path(__file__).resolve().parent
    pattern = re.compile(r"^\s*(from|import)\s+(tests\.)?test_\w+", re.M)
    offenders = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"these files import a test module: {offenders}"
