"""Names in a report: file-safe slugs for figures and tables, and parameters as words."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
PARAMETER_NAMES_FILE = Path(__file__).with_name("parameter_names.json")


def slug(text: str, *, max_chars: int = 60) -> str:
    """Lowercase ``text`` with every run of unsafe characters replaced by '-'."""
    return _UNSAFE.sub("-", str(text).lower()).strip("-.")[:max_chars] or "x"


@cache
def parameter_names() -> MappingProxyType[str, str]:
    """Sampled parameter (``model/depth``) -> how a reader names it (``CNN depth``), from
    `parameter_names.json`."""
    return MappingProxyType(json.loads(PARAMETER_NAMES_FILE.read_text()))


def parameter_name(name: str) -> str:
    """A sampled parameter as words: its entry in `parameter_names.json`, else (a parameter
    of a space added since) the last part of its name with spaces for underscores."""
    known = parameter_names()
    if name in known:
        return known[name]
    return name.rsplit("/", 1)[-1].replace("_", " ")


def config_value(value: Any) -> str:
    """A configuration value as a table cell: 3 significant digits for floats."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def with_parameter_words(frame: pd.DataFrame, *, column: str = "parameter") -> pd.DataFrame:
    """``frame`` with a ``name`` column (the parameter in words) right after ``column``."""
    if column not in frame:
        return frame
    named = frame.copy()
    named.insert(named.columns.get_loc(column) + 1, "name",
                 [parameter_name(p) for p in named[column]])
    return named
