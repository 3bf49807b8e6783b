"""Types and ranges of the trainer's options, checked before anything trains.

`study/options.json` gives each option of `train_defaults.json` (all sections but ``model``,
whose constructor checks its own keywords) a kind and, where it has one, a range; names that
must be one of a registry's (learning-rate schedules, batchings, normalizations, class-weight
rules) are checked against that registry itself, so a new entry is allowed at once.
`check_options` raises one `ValueError` naming the option, the value and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from importlib import resources
from typing import Any

from data_io.augment import Augmenter
from data_io.batching import BATCHING
from data_io.preprocess import NORMALIZATION_NAMES
from study.schedules import LR_SCHEDULES
from study.trainer import CLASS_WEIGHTS, OPTIMIZERS

CHOICES: Mapping[str, Collection[str]] = {
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "normalization": NORMALIZATION_NAMES,
    "batching": BATCHING,
    "class_weights": CLASS_WEIGHTS,
}
"""Registries whose names an option of kind ``choice`` (or ``weights``) may take."""

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def option_specs() -> dict[str, Any]:
    """`study/options.json`: section -> option -> spec (or option -> spec at top level)."""
    return json.loads(resources.files("study").joinpath("options.json").read_text())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range_text(spec: Mapping[str, Any]) -> str:
    parts = []
    if "min" in spec:
        parts.append(f"{'>' if spec.get('min_exclusive') else '>='} {spec['min']:g}")
    if "max" in spec:
        parts.append(f"{'<' if spec.get('max_exclusive') else '<='} {spec['max']:g}")
    return " and ".join(parts)


def _in_range(value: float, spec: Mapping[str, Any]) -> bool:
    low = spec.get("min")
    if low is not None and (value <= low if spec.get("min_exclusive") else value < low):
        return False
    high = spec.get("max")
    return high is None or (value < high if spec.get("max_exclusive") else value <= high)


def _number(value: Any, spec: Mapping[str, Any]) -> str:
    allowed = " ".join(p for p in ("a finite number", _range_text(spec)) if p)
    return "" if _is_number(value) and _in_range(value, spec) else allowed


def _integer(value: Any, spec: Mapping[str, Any]) -> str:
    allowed = " ".join(p for p in ("an integer", _range_text(spec)) if p)
    ok = isinstance(value, int) and not isinstance(value, bool) and _in_range(value, spec)
    return "" if ok else allowed


def _boolean(value: Any, spec: Mapping[str, Any]) -> str:
    return "" if isinstance(value, bool) else "true or false"


def _choice(value: Any, spec: Mapping[str, Any]) -> str:
    names = sorted(CHOICES[spec["choices"]])
    return "" if value in names else f"one of {', '.join(names)}"


def _weights(value: Any, spec: Mapping[str, Any]) -> str:
    names = sorted(CHOICES[spec["choices"]])
    weights = list(value.values()) if isinstance(value, dict) else value
    ok = (value is None or (isinstance(value, str) and value in names)) or (
        isinstance(weights, list) and weights
        and all(_is_number(v) and v >= 0 for v in weights))
    return "" if ok else (f"null, one of {', '.join(names)}, or non-negative weights: a list, "
                          "one per class, or an object {class label: weight}")


def _fractions(value: Any, spec: Mapping[str, Any]) -> str:
    ok = isinstance(value, list) and all(_is_number(v) and 0 < v < 1 for v in value)
    return "" if ok else "a list of fractions, each > 0 and < 1"


def _augment(value: Any, spec: Mapping[str, Any]) -> str:
    if value is not None and not isinstance(value, dict | list):
        return ("null, an object {augmentation: {p: ..., parameter: ...}} or a list "
                "[{name: augmentation, p: ..., parameter: ...}]")
    try:
        Augmenter.from_config(value)
    except (ValueError, TypeError) as exc:
        return f"a valid augmentation config ({exc})"
    return ""


def _stats(value: Any, spec: Mapping[str, Any]) -> str:
    ok = value is None or (isinstance(value, dict) and set(value) == {"mean", "std"}
                           and all(isinstance(v, list) for v in value.values()))
    return "" if ok else "null or {mean: [[...]], std: [[...]]} (the trainer writes it)"


def _device(value: Any, spec: Mapping[str, Any]) -> str:
    ok = isinstance(value, str) and DEVICE_PATTERN.fullmatch(value)
    return "" if ok else "auto, cpu, cuda, cuda:N or mps"


KINDS: Mapping[str, Callable[[Any, Mapping[str, Any]], str]] = {
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "choice": _choice,
    "weights": _weights,
    "fractions": _fractions,
    "augment": _augment,
    "stats": _stats,
    "device": _device,
}
"""Option kind -> check returning '' when the value is allowed, else what is allowed."""


def check_option(name: str, value: Any, spec: Mapping[str, Any]) -> None:
    """Raise `ValueError` naming ``name``, ``value`` and what is allowed when it is not."""
    allowed = KINDS[spec["kind"]](value, spec)
    if allowed:
        note = f" ({spec['note']})" if "note" in spec else ""
        raise ValueError(f"{name}={json.dumps(value)} is not allowed: must be {allowed}{note}")


def check_options(config: Mapping[str, Any], *, only: set[str] | None = None) -> None:
    """Check a resolved training config (`study.config.resolve_config`) against
    `study/options.json`; ``only``: just these flattened names (e.g. ``loss/focal_gamma``).

    Raises:
        ValueError: the first option whose value is not allowed.
    """
    for key, spec in option_specs().items():
        if "kind" in spec:
            items = [(key, config.get(key), spec)]
        else:
            items = [(f"{key}/{option}", config.get(key, {}).get(option), option_spec)
                     for option, option_spec in spec.items()]
        for name, value, option_spec in items:
            if only is None or name in only:
                check_option(name, value, option_spec)
