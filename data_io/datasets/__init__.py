"""Data sets as a study axis: one module plus one JSON file of facts per data set, by name.

A data set ``data_io/datasets/<module>.py`` sits next to ``<module>.json``, which holds its
facts as data: ``name``, ``description``, its ``classes`` (label, metric key, display name),
the ``normal_class``, the study ``metric`` (name, kind, mode and the classes it averages or
its positive class), further mean-F1 ``extra_metrics`` reported beside it (name, classes), the
``per_class_metrics`` reported beside it, what one ``item`` is (``record`` unless it says
``beat`` or ``segment``), the ``group`` that folds
keep together (record or patient) and how an item id names its group, the default sampling
rate ``fs_hz`` (and whether a study may ``resample``), the ``input_samples`` of a fixed-length
item, ``n_leads`` (null: from the data), the default ``n_folds``, user ``options`` with their
choices, ``training`` overrides (e.g. batching fixed-length items) and ``smoke`` ones, its
``synthetic`` counterpart and the ``published`` result tables that match it. A synthetic set
says ``"extends": "<base>"`` and inherits every fact it does not set.

The module provides the behaviour: ``check(directory)`` (raise `DatasetError` for a
directory that cannot hold the data set), ``load(directory, *, dataset, options, progress)``
returning an `EcgArrays` at the source rate (the cache resamples), ``fold_plan(...)`` (the
fold table, the groups held out, notes), and synthetic sets ``generate(out, *, n_records,
seed)``. Nothing downstream branches on a data set's name: metrics, ASHA's metric, class names
in reports and the explanation target class are read from these facts.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from data_io.errors import DatasetError

REQUIRED_FACTS = ("name", "description", "classes", "normal_class", "metric", "group",
                  "fs_hz", "resample", "n_leads", "n_folds")
METRIC_KINDS = ("mean_f1", "auroc")
"""How a study metric is computed (see `study.engine.metrics`): mean F1 over ``classes``, or the
AUROC of the ``positive`` class against the others."""


@dataclass(frozen=True)
class ClassInfo:
    """One class: its ``label`` (as in the files), metric ``key`` (``val/f1_<key>``) and
    display ``name``."""

    label: str
    key: str
    name: str


@dataclass(frozen=True)
class MetricInfo:
    """The study metric: ``val/<name>``, computed by ``kind`` over ``classes`` (mean F1) or for
    ``positive`` (AUROC), optimised in ``mode``; ``display`` heads report tables."""

    name: str
    kind: str
    mode: str
    classes: tuple[str, ...]
    positive: str | None
    display: str

    @property
    def key(self) -> str:
        return f"val/{self.name}"


@dataclass(frozen=True)
class Dataset:
    """A data set's facts (from its JSON) and its module (loading, folds, generation).

    Attributes:
        name: the data set's name (``--dataset``).
        facts: the resolved JSON facts (inherited ones filled in), as recorded in study.json.
        module_name: the module that loads it, imported on first use (`module`): the facts
            alone answer listings without importing the readers (wfdb, scipy).
    """

    name: str
    facts: Mapping[str, Any]
    module_name: str

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def description(self) -> str:
        return self.facts["description"]

    @property
    def item(self) -> str:
        """What one item is, for messages: ``record`` unless the facts say (``beat``)."""
        return self.facts.get("item", "record")

    def count(self, n: int) -> str:
        """``961`` -> ``"961 beats"`` (``"1 record"``): ``n`` items, named as they are."""
        return f"{n} {self.item}{'' if n == 1 else 's'}"

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return tuple(ClassInfo(**c) for c in self.facts["classes"])

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels in class-index order."""
        return tuple(c["label"] for c in self.facts["classes"])

    @property
    def n_classes(self) -> int:
        return len(self.facts["classes"])

    @property
    def normal_index(self) -> int | None:
        """Index of the normal class (the explanation target of the shift perturbation);
        None where no class is normal (e.g. PVC vs APB segments)."""
        normal = self.facts["normal_class"]
        return None if normal is None else self.labels.index(normal)

    @property
    def metric(self) -> MetricInfo:
        m = self.facts["metric"]
        return MetricInfo(name=m["name"], kind=m["kind"], mode=m["mode"],
                          classes=tuple(m.get("classes", ())), positive=m.get("positive"),
                          display=m.get("display", m["name"]))

    @property
    def per_class_metrics(self) -> tuple[str, ...]:
        return tuple(self.facts.get("per_class_metrics", ("f1",)))

    @property
    def fs_hz(self) -> float:
        """The study rate when ``--fs-hz`` is not given."""
        return float(self.facts["fs_hz"])

    @property
    def resample(self) -> bool:
        """Whether a study may run at another rate (fixed-length windows may not)."""
        return bool(self.facts["resample"])

    @property
    def n_leads(self) -> int | None:
        """Leads of every item; None where each folder's records decide (own NumPy records).
        Models take the loaded arrays' lead count either way."""
        n_leads = self.facts["n_leads"]
        return None if n_leads is None else int(n_leads)

    @property
    def n_folds(self) -> int:
        return int(self.facts["n_folds"])

    @property
    def group_key(self) -> str:
        """What folds keep together: ``record`` or ``patient``."""
        return self.facts["group"]["key"]

    @property
    def synthetic(self) -> str | None:
        return self.facts.get("synthetic")

    @property
    def generates(self) -> bool:
        """A synthetic set: the study writes its records when no --data-dir is given."""
        return hasattr(self.module, "generate")

    @property
    def max_generated(self) -> int | None:
        """The most records a synthetic set can generate (None: no limit)."""
        limit = getattr(self.module, "max_records", None)
        return None if limit is None else int(limit())

    @property
    def training(self) -> dict[str, Any]:
        """Training-config sections merged under every trial (e.g. batching)."""
        return copy.deepcopy(dict(self.facts.get("training", {})))

    @property
    def smoke(self) -> dict[str, Any]:
        """Training-config sections merged over a space's smoke settings with ``--smoke``
        (e.g. larger batches of short beat windows, so a smoke epoch takes few steps)."""
        return copy.deepcopy(dict(self.facts.get("smoke", {})))

    def group_of(self, item_id: str) -> str:
        """The group (record, patient) an item belongs to, from its id."""
        separator = self.facts["group"].get("separator")
        return item_id.split(separator, 1)[0] if separator else item_id

    def resolve_options(self, given: Mapping[str, str]) -> dict[str, str]:
        """``given`` over the defaults of the data set's ``options``.

        Raises:
            DatasetError: an option the data set does not have, or a value not among its
                choices (the message lists them).
        """
        declared = self.facts.get("options", {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise DatasetError(f"data set {self.name} has no option {unknown[0]!r}; "
                               f"its options: {known}")
        resolved = {}
        for option, spec in declared.items():
            value = given.get(option, spec["default"])
            if value not in spec["choices"]:
                raise DatasetError(f"data set {self.name}: option {option}={value!r} is not one "
                                   f"of {', '.join(spec['choices'])}")
            resolved[option] = value
        return resolved

    def check(self, directory: Path) -> None:
        self.module.check(Path(directory))

    def load(self, directory: Path, *, options: Mapping[str, str], progress: bool):
        return self.module.load(Path(directory), dataset=self, options=dict(options),
                                progress=progress)

    def fold_plan(self, arrays, *, n_folds: int, seed: int, options: Mapping[str, str]):
        return self.module.fold_plan(arrays, dataset=self, n_folds=n_folds, seed=seed,
                                     options=dict(options))

    def generate(self, out: Path, *, n_records: int, seed: int) -> None:
        self.module.generate(Path(out), n_records=n_records, seed=seed)

    def describe(self) -> dict[str, Any]:
        """The JSON-able definition (recorded in study.json, printed by --show-dataset)."""
        return {"name": self.name, **copy.deepcopy(dict(self.facts))}


def _facts_of(module_name: str) -> dict[str, Any]:
    """The parsed facts of one module (a fresh copy: callers may change it)."""
    return copy.deepcopy(_registry(tuple(__path__))[1][module_name])


def _modules() -> dict[str, str]:
    """Data-set name -> module name, for every module of this package not starting with _."""
    return dict(_registry(tuple(__path__))[0])


@functools.cache
def _registry(paths: tuple[str, ...]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(name -> module, module -> facts) of the modules found on ``paths``, each module's
    ``<module>.json`` read from beside it: parsed once per search path."""
    names, facts = {}, {}
    for info in pkgutil.iter_modules(list(paths)):
        if not info.name.startswith("_"):
            path = Path(info.module_finder.path) / f"{info.name}.json"
            facts[info.name] = json.loads(path.read_text("utf-8"))
            names[facts[info.name]["name"]] = info.name
    return names, facts


def dataset_names() -> list[str]:
    """Names accepted by `load_dataset`, sorted."""
    return sorted(_modules())


def load_dataset(name: str) -> Dataset:
    """The data set ``name``, its facts resolved (a synthetic set inherits from its base).

    Raises:
        ValueError: an unknown name (the message lists the known data sets), or facts that
            miss a required entry or name an unknown metric kind or class.
    """
    modules = _modules()
    if name not in modules:
        raise ValueError(f"unknown data set {name!r}; known data sets: {sorted(modules)}")
    facts = _facts_of(modules[name])
    base = facts.pop("extends", None)
    if base is not None:
        facts = {**load_dataset(base).describe(), **facts}
    facts.pop("name")
    _check_facts(name, facts)
    return Dataset(name=name, facts=MappingProxyType(facts),
                   module_name=f"{__name__}.{modules[name]}")


def _check_facts(name: str, facts: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED_FACTS if k != "name" and k not in facts]
    if missing:
        raise ValueError(f"data set {name}: its JSON lacks {', '.join(missing)}")
    labels = [c["label"] for c in facts["classes"]]
    metric = facts["metric"]
    if metric["kind"] not in METRIC_KINDS:
        raise ValueError(f"data set {name}: metric kind {metric['kind']!r} is not one of "
                         f"{METRIC_KINDS}")
    for extra in facts.get("extra_metrics", ()):
        if extra.get("kind") != "mean_f1":
            raise ValueError(f"data set {name}: extra metric {extra.get('name')!r} must be of "
                             "kind mean_f1")
    extra_classes = [c for extra in facts.get("extra_metrics", ()) for c in extra["classes"]]
    named = [*metric.get("classes", ()), *extra_classes,
             *([metric["positive"]] if "positive" in metric else []),
             *([facts["normal_class"]] if facts["normal_class"] is not None else [])]
    unknown = sorted(set(named) - set(labels))
    if unknown:
        raise ValueError(f"data set {name}: classes {unknown} are not among its labels {labels}")
