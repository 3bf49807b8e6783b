"""Named model configs (the thesis' table rows), stored as data in ``presets.json``."""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def _presets() -> dict[str, dict[str, Any]]:
    text = resources.files("models").joinpath("presets.json").read_text(encoding="utf-8")
    return json.loads(text)


def preset_names() -> list[str]:
    """Names accepted by `load_preset`, sorted."""
    return sorted(_presets())


def load_preset(name: str) -> dict[str, Any]:
    """A fresh copy of a named model config, ready for `models.build_model`.

    Raises:
        ValueError: for an unknown preset (the message lists the preset names).
    """
    try:
        preset = _presets()[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; presets: {preset_names()}") from None
    return copy.deepcopy(preset)
