"""Search spaces as a person reads them: one line per space, and a space's parameters as a
table (``python -m study.run --list-spaces`` / ``--show-space NAME``; ``--json`` for
machines is `search_spaces.describe_space` itself)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from search_spaces import load_space


def first_paragraph(text: str) -> str:
    """The first paragraph of a docstring on one line."""
    paragraph = inspect.cleandoc(text or "").split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def space_line(name: str, *, width: int = 16) -> str:
    """``convlstm         ConvLSTM space: does a recurrent head ... which head?``"""
    return f"{name:{width}} {first_paragraph(load_space(name).__doc__ or '')}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, bool | None) else str(value)


def _categorical(d: Mapping[str, Any]) -> str:
    return ", ".join(_value(c) for c in d["choices"])


def _numeric(d: Mapping[str, Any]) -> str:
    text = f"{_value(d['low'])} to {_value(d['high'])}"
    if d.get("log"):
        text += ", log scale"
    step = d.get("step")
    if step not in (None, 1):
        text += f", step {_value(step)}"
    return text


DISTRIBUTIONS: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "CategoricalDistribution": ("one of", _categorical),
    "IntDistribution": ("integer", _numeric),
    "FloatDistribution": ("float", _numeric),
}
"""Optuna distribution name -> (kind shown, renderer of its values)."""


def render_space(description: Mapping[str, Any]) -> str:
    """`search_spaces.describe_space`'s dict as readable text."""
    params = description["parameters"]
    width = max((len(p) for p in [*params, *description["fixed"]]), default=10) + 2
    lines = [description["name"], "", description["description"], "",
             "score: the data set's study metric (--show-dataset NAME)", "",
             "parameters, in sampling order:"]
    for name, d in params.items():
        kind, render = DISTRIBUTIONS[d["distribution"]]
        condition = (f"   [conditional: in {d['active_fraction']:.0%} of samples]"
                     if d["conditional"] else "")
        lines.append(f"  {name:{width}}{kind:8} {render(d)}{condition}")
    if description["fixed"]:
        lines += ["", "fixed in every sample:"]
        lines += [f"  {k:{width}}{_value(v)}" for k, v in description["fixed"].items()]
    if description["derived"]:
        lines += ["", f"derived from the sample: {', '.join(description['derived'])}"]
    lines += ["", f"--smoke settings: {json.dumps(description['smoke'])}"]
    return "\n".join(lines)
