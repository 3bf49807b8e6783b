"""Published training protocols as data: the training config a named preset trains with.

A model published with its own training values (optimiser, rate and schedule, batch, epochs,
loss, augmentation) trains with them when it is trained by its preset name: ``study.train
--preset dualnet_s`` and a ``--presets`` study take `preset_config`, the protocol file
``study/configs/<protocol>.json`` that ``study/preset_protocols.json`` names for the preset,
with the preset as its model. Presets without a protocol train with the defaults
(`study.engine.config`). Command-line options (``--epochs``, ``--fs-hz``) still win.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from models import load_preset
from search_spaces import load_space, unflatten
from study.engine.config import merge_sections


@functools.cache
def _preset_protocols() -> dict[str, str]:
    return json.loads(resources.files("study").joinpath("preset_protocols.json").read_text())


def protocol_names() -> list[str]:
    """Protocol files shipped in ``study/configs``, by name (without ``.json``)."""
    folder = resources.files("study").joinpath("configs")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def load_protocol(name: str) -> dict[str, Any]:
    """A fresh copy of ``study/configs/<name>.json``.

    Raises:
        ValueError: an unknown protocol (the message lists the shipped ones).
    """
    if name not in protocol_names():
        raise ValueError(f"unknown training protocol {name!r}; known: {protocol_names()}")
    return json.loads(resources.files("study").joinpath("configs", f"{name}.json").read_text())


def preset_protocol(preset: str) -> str | None:
    """The protocol a preset is published with, or None (it trains with the defaults)."""
    return _preset_protocols().get(preset)


def preset_config(preset: str) -> dict[str, Any]:
    """The partial training config of ``preset``: its protocol (if any) with its model.

    Raises:
        ValueError: an unknown preset or protocol.
    """
    model = load_preset(preset)
    protocol = preset_protocol(preset)
    config = {} if protocol is None else load_protocol(protocol)
    config["model"] = model
    return config


def study_preset_config(preset: str, *, space: str) -> dict[str, Any]:
    """What a ``--presets`` study trains ``preset`` with: its space's ``PUBLISHED_TRAINING``
    (e.g. HADLN's), then its protocol file (`preset_config`), with the preset as its model."""
    published = unflatten(dict(getattr(load_space(space), "PUBLISHED_TRAINING", {})))
    return merge_sections(published, preset_config(preset))
