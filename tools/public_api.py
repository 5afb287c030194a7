"""What tinycnn's public names are: the one enumeration that the API reference
(docs/conf.py, one page per module) and the tests (every public name has a docstring and
is on the site) share, so that the two cannot disagree.

Public names: each ``__all__`` (tinycnn's and every public subpackage's), and for a
public module without ``__all__`` (callbacks, metrics, backend...) its own functions and
classes not starting with ``_``.
"""

from __future__ import annotations

import importlib
import inspect
import types

import tinycnn

# The API reference's pages, in the order a reader meets them; ``tinycnn`` itself last.
# Every module in ``tinycnn.__all__`` must be here (page_modules() fails otherwise).
PAGE_MODULES = [
    "tinycnn.layers",
    "tinycnn.models",
    "tinycnn.losses",
    "tinycnn.optimizers",
    "tinycnn.training",
    "tinycnn.callbacks",
    "tinycnn.metrics",
    "tinycnn.preprocessing",
    "tinycnn.datasets",
    "tinycnn.initializers",
    "tinycnn.backend",
    "tinycnn.kernels",
    "tinycnn.viz",  # public, but not in tinycnn.__all__ (an optional extra)
    "tinycnn.exercises",  # public, but not in tinycnn.__all__
    "tinycnn",
]


def public_names(module: types.ModuleType) -> list[str]:
    """``module.__all__``, or else its own public functions and classes (not imported ones)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    ]


def page_modules() -> list[types.ModuleType]:
    """The modules of :data:`PAGE_MODULES`, imported, in that order. A module that is
    not there (a checkout without viz) is left out; one that is there but fails to import
    raises. Raises ValueError when ``tinycnn.__all__`` names a module missing from
    PAGE_MODULES: add it there, and the reference gets its page."""
    unlisted = [
        f"tinycnn.{name}"
        for name in tinycnn.__all__
        if isinstance(getattr(tinycnn, name), types.ModuleType)
        and f"tinycnn.{name}" not in PAGE_MODULES
    ]
    if unlisted:
        raise ValueError(f"add {unlisted} to PAGE_MODULES in tools/public_api.py")
    modules = []
    for name in PAGE_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if error.name != name:  # the module is there but a dependency is missing
                raise
    return modules


def public_modules() -> list[types.ModuleType]:
    """Every public module: those of :func:`page_modules`, then the modules that an
    ``__all__`` lists (``tinycnn.datasets.fashion_mnist``...), documented on the page of
    the module that lists them."""
    modules = page_modules()
    for module in list(modules):
        for name in public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) and obj not in modules:
                modules.append(obj)
    return modules
