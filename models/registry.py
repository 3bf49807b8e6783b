"""Name -> model class registry, and `build_model` for plain JSON configs."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from models.presets import load_preset

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

PRESET_KEY = "preset"
"""Model-config key naming a preset that the config's other keys override."""

# Filled by the `@register` decorators when `models/__init__.py` imports every model module.
_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator that makes a model buildable as ``{"name": name, ...}``.

    Raises:
        ValueError: if ``name`` is already taken (the message lists the known names).
    """

    def decorator(cls: ModelClass) -> ModelClass:
        if name in _REGISTRY:
            raise ValueError(
                f"model name {name!r} is already registered (to {_REGISTRY[name].__qualname__}); "
                f"known models: {registered_models()}"
            )
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered_models() -> list[str]:
    """Names accepted by `build_model`, sorted."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {registered_models()}") from None


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build a model from a JSON-style config: ``{"name": ..., **keyword_arguments}``.

    A ``"preset"`` key starts from that named preset (`models.load_preset`) and the config's
    other keys override it, e.g. ``{"name": "dualnet", "preset": "dualnet_m", "dropout": 0.3}``
    (how a search space picks a size without copying the preset's channels). The config is
    not modified. The built model carries ``model.config``: the name plus every
    constructor argument, defaults filled in, so a checkpoint holding it rebuilds the same
    architecture even if a default changes later.

    Raises:
        ValueError: if ``"name"`` is missing or unknown, or the preset is unknown or names
            another model.
        TypeError: for a keyword the model does not take (e.g. a misspelled hyperparameter).
    """
    kwargs = copy.deepcopy(dict(config))
    if PRESET_KEY in kwargs:
        kwargs = _over_preset(kwargs)
    if "name" not in kwargs:
        raise ValueError(f"model config has no 'name'; known models: {registered_models()}")
    name = kwargs.pop("name")
    cls = model_class(name)
    model = cls(**kwargs)
    bound = inspect.signature(cls).bind(**kwargs)
    bound.apply_defaults()
    model.config = {"name": name, **_as_json(dict(bound.arguments))}
    return model


def _over_preset(config: dict[str, Any]) -> dict[str, Any]:
    """The preset named by ``config["preset"]`` with the rest of ``config`` over it."""
    name = config.pop(PRESET_KEY)
    preset = load_preset(name)
    if config.get("name", preset["name"]) != preset["name"]:
        raise ValueError(
            f"preset {name!r} is a {preset['name']!r} model, "
            f"but the config names {config['name']!r}"
        )
    return {**preset, **config}


def _as_json(value: Any) -> Any:
    """Tuples (used as immutable defaults) become lists, so configs survive a JSON round trip."""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(item) for item in value]
    return value
