"""The explanation methods as data: one JSON spec per method, read by `study` and `reports`.

A spec (``study/explanation_methods/<name>.json``, or one in a folder of
``$ECG_STUDY_EXPLANATION_METHODS``) names the function that computes the method
(``"module:function"``, imported by `study.explain.explanation_methods` only), its settings
and ``--smoke`` overrides, how its cost is counted, and each map it writes: the archive keys,
the gallery panel, and how the map is scored (or that it is not). `reports` reads the same
specs to score and draw the maps, so adding a method is its spec plus its function.
docs/explanations.md walks through it. Standard library only, like `study.folder_format`:
`reports` imports it without torch.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

SPECS_ENV = "ECG_STUDY_EXPLANATION_METHODS"
"""Extra folders of method specs (``os.pathsep``-separated), read after the built-in ones."""
BUILT_IN = Path(__file__).with_name("explanation_methods")
"""The specs shipped with the package."""


class SpecError(ValueError):
    """A method spec that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ScoreRule:
    """How a map becomes one non-negative map per record (`reports.explanation_scores`).

    Attributes:
        reduce: ``(B, C, T) -> (B, T)`` by name: ``channel`` (the first), ``true_class``,
            ``channel_mean``.
        transform: ``absolute`` (the sign is meaningless) or ``positive_part`` (evidence for
            the class).
        records: which rows were computed: ``all``, or ``shift_reached`` (rows the shift ran
            on and whose target was reached).
    """

    reduce: str
    transform: str
    records: str = "all"


@dataclass(frozen=True)
class MapSpec:
    """One map a method writes.

    Attributes:
        name: its name in the report (score tables, legends).
        keys: archive keys, regular expressions matched in full; the first key of the
            archive matching one of them, in this order, is the map.
        panel: the gallery panel kind (`reports.galleries.PANEL_KINDS`; ``none``: not drawn).
        title: the panel's title.
        score: how it is scored; None where it is shown but is not a relevance map.
        note: why this reduction and transform (printed under the score table).
    """

    name: str
    keys: tuple[str, ...]
    panel: str
    title: str
    score: ScoreRule | None
    note: str

    def key(self, names: Any) -> str | None:
        """The first of ``names`` (archive keys) this map is stored under, by `keys` order."""
        names = list(names)
        for pattern in self.keys:
            found = next((n for n in names if re.fullmatch(pattern, n)), None)
            if found is not None:
                return found
        return None

    def matches(self, name: str) -> bool:
        """Whether archive key ``name`` is (one of) this map's."""
        return any(re.fullmatch(pattern, name) for pattern in self.keys)


@dataclass(frozen=True)
class MethodSpec:
    """One explanation method.

    Attributes:
        name: its key in the settings (``--smoke`` overrides, the benchmark's overrides).
        compute: ``"module:function"``; ``function(model, batch, settings)`` returns npz-ready
            arrays under the method's keys (`models.explanation_maps.Batch`).
        order: where its panels come in a gallery, lowest first.
        settings: default settings (durations in seconds).
        smoke: overrides of ``settings`` for a ``--smoke`` study.
        cost: how its passes are counted (`study.tune.explanation_cost.COST_RULES`).
        runs_on: ``all`` records, or ``not_normal`` (those not predicted normal).
        maps: the maps it writes.
        path: the spec file.
    """

    name: str
    compute: str
    order: int
    settings: Mapping[str, Any]
    smoke: Mapping[str, Any]
    cost: str
    runs_on: str
    maps: tuple[MapSpec, ...]
    path: Path


def spec_dirs() -> tuple[Path, ...]:
    """The built-in folder, then those of `SPECS_ENV`."""
    extra = [Path(p) for p in os.environ.get(SPECS_ENV, "").split(os.pathsep) if p]
    return (BUILT_IN, *extra)


def method_specs() -> Mapping[str, MethodSpec]:
    """Every method spec of `spec_dirs`, by name, in gallery order.

    Raises:
        SpecError: a malformed spec, a missing folder or two specs of one name (the message
            names the files).
    """
    return _read_specs(_listing(spec_dirs()))


def map_specs() -> Mapping[str, MapSpec]:
    """Every map of every method, by name, in gallery order."""
    return MappingProxyType({m.name: m for spec in method_specs().values() for m in spec.maps})


def producer(map_name: str) -> str:
    """The method that writes map ``map_name``."""
    for spec in method_specs().values():
        if any(m.name == map_name for m in spec.maps):
            return spec.name
    raise KeyError(f"no explanation method writes a map named {map_name!r}")


def _listing(dirs: tuple[Path, ...]) -> tuple[tuple[Path, int], ...]:
    """Every spec file of ``dirs`` with its modification time: the cache key, so that a spec
    added or edited while a process runs is read again."""
    files = []
    for folder in dirs:
        if not folder.is_dir():
            raise SpecError(f"{folder}: no such folder of explanation method specs "
                            f"(from ${SPECS_ENV})")
        files.extend((path, path.stat().st_mtime_ns) for path in sorted(folder.glob("*.json")))
    return tuple(files)


@functools.cache
def _read_specs(listing: tuple[tuple[Path, int], ...]) -> Mapping[str, MethodSpec]:
    specs: dict[str, MethodSpec] = {}
    for path, _ in listing:
        spec = read_spec(path)
        if spec.name in specs:
            raise SpecError(f"{path}: method {spec.name!r} is already defined by "
                            f"{specs[spec.name].path}")
        specs[spec.name] = spec
    ordered = sorted(specs.values(), key=lambda s: (s.order, s.name))
    return MappingProxyType({s.name: s for s in ordered})


_METHOD_FIELDS = {"name": str, "compute": str, "order": int, "settings": dict, "smoke": dict,
                  "cost": str, "runs_on": str, "maps": list}
_MAP_FIELDS = {"name": str, "keys": list, "panel": str, "title": str, "note": str}
_SCORE_FIELDS = {"reduce": str, "transform": str, "records": str}
RUNS_ON = ("all", "not_normal")


def read_spec(path: Path) -> MethodSpec:
    """One spec file, checked for its fields and their types.

    Raises:
        SpecError: unreadable JSON, a missing or mistyped field, a smoke override of a
            setting the method does not have (the message names the file).
    """
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: cannot read an explanation method spec: {exc}") from exc
    data = _fields(raw, _METHOD_FIELDS, where=str(path))
    unknown = sorted(set(data["smoke"]) - set(data["settings"]))
    if unknown:
        raise SpecError(f"{path}: smoke overrides {unknown} are not settings of the method "
                        f"(settings: {sorted(data['settings'])})")
    if ":" not in data["compute"]:
        raise SpecError(f"{path}: compute {data['compute']!r} is not 'module:function'")
    if data["runs_on"] not in RUNS_ON:
        raise SpecError(f"{path}: runs_on {data['runs_on']!r} is not one of {list(RUNS_ON)}")
    maps = tuple(_map(item, where=f"{path} maps[{i}]") for i, item in enumerate(data["maps"]))
    return MethodSpec(**{**data, "maps": maps, "path": Path(path),
                         "settings": MappingProxyType(data["settings"]),
                         "smoke": MappingProxyType(data["smoke"])})


def _map(raw: Any, *, where: str) -> MapSpec:
    data = _fields(raw, {**_MAP_FIELDS, "score": (dict, type(None))}, where=where)
    score = data.pop("score")
    if score is not None:
        rule = _fields({"records": "all", **score}, _SCORE_FIELDS, where=f"{where} score")
        score = ScoreRule(**rule)
    for pattern in data["keys"]:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise SpecError(f"{where}: key {pattern!r} is not a regular expression: "
                            f"{exc}") from exc
    return MapSpec(**{**data, "keys": tuple(data["keys"]), "score": score})


def _fields(raw: Any, types: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected an object, got {type(raw).__name__}")
    data = {k: v for k, v in raw.items() if not k.startswith("_")}
    missing = sorted(set(types) - set(data))
    extra = sorted(set(data) - set(types))
    if missing or extra:
        raise SpecError(f"{where}: missing fields {missing}, unknown fields {extra} "
                        f"(fields: {sorted(types)})")
    wrong = [f"{k} ({type(v).__name__})" for k, v in data.items()
             if not isinstance(v, types[k]) or (isinstance(v, bool) and types[k] is int)]
    if wrong:
        raise SpecError(f"{where}: fields of the wrong type: {', '.join(wrong)}")
    return data
