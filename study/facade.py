"""A subpackage's public names, each imported from its module on first use (PEP 562).

Importing one module of a subpackage runs the subpackage's ``__init__``; a facade that
imported every module there would make ``python -m study.run --help`` load Ray, Optuna and
torch. `lazy_exports` gives the subpackage its documented names without that cost.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that resolves each name of ``exports`` (name ->
    module of the package that defines it) by importing that module."""

    def resolve(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return resolve
