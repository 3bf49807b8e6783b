"""Search spaces: one define-by-run Optuna space per module, found and loaded by name.

A space ``search_spaces/<name>.py`` exposes ``define(trial) -> dict`` (it only samples: no
I/O, no torch) and ``SMOKE`` (training-config overrides that make a trial tiny); a space of a
published family may expose ``PUBLISHED_TRAINING`` (its published training as flattened
config values), which a study of the family's presets trains with. The metric a study
optimises belongs to its data set (`data_io.datasets`), not to the space. Modules whose
names start with ``_`` hold shared fragments.

Parameter names are flattened training-config paths (``model/depth``, ``optim/lr``,
``pretrain_epochs``); ``define`` returns the fixed values that go with a sample in the same
form (``{"model/name": "cnn", ...}``). `unflatten` nests both the way Ray Tune does, so
``config["model"]`` goes straight to ``models.build_model``. Parameters under ``space/`` are a
space's own coordinates (e.g. relative gate positions): Optuna learns on them and they are
recorded with the trial, but they are no training options, and `training_config` drops them.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import pkgutil
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json

SPACE_SECTION = "space"
"""Config section holding a space's own coordinates, which are not training options."""


def space_names() -> list[str]:
    """Names accepted by `load_space`: every module of this package not starting with ``_``."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


def load_space(name: str) -> ModuleType:
    """Import the space module ``search_spaces.<name>``.

    Raises:
        ValueError: for an unknown name (the message lists the known spaces).
    """
    names = space_names()
    if name not in names:
        raise ValueError(f"unknown search space {name!r}; known spaces: {names}")
    return importlib.import_module(f"{__name__}.{name}")


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest ``{"model/depth": 7, "epochs": 3}`` into ``{"model": {"depth": 7}, "epochs": 3}``.

    Keys are split on ``/`` as Ray Tune does with a define-by-run space's parameters. Values
    are copied, so the result shares no lists with ``flat``.

    Raises:
        ValueError: if a key is both a value and a section (``"model"`` and ``"model/x"``).
    """
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, leaf = key.split("/")
        node = nested
        for depth, section in enumerate(sections, start=1):
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ValueError(f"{'/'.join(sections[:depth])!r} is both a value and a section")
        if leaf in node:
            raise ValueError(f"{key!r} is both a value and a section")
        node[leaf] = copy.deepcopy(value)
    return nested


def training_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A nested sampled config without the ``space`` section: a partial training config."""
    return {key: value for key, value in config.items() if key != SPACE_SECTION}


def describe_space(name: str, *, n_samples: int = 300, seed: int = 0) -> dict[str, Any]:
    """A JSON-able description of a space, for ``--show-space``.

    The parameters are found by running ``define`` ``n_samples`` times on a random sampler,
    so parameters that exist only in some branches are listed too (with the fraction of
    samples they were active in); a branch rarer than about 1 in ``n_samples`` could be missed.

    Returns:
        ``name``, ``description`` (the module docstring), ``smoke``,
        ``parameters`` (name -> distribution, its attributes, ``conditional`` and
        ``active_fraction``, in sampling order), ``fixed`` (returned values that never
        changed) and ``derived`` (names of returned values that depend on the sample).

    Raises:
        ValueError: for an unknown space, or a parameter sampled from different
            distributions in different samples (which Optuna's samplers cannot model).
    """
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    distributions: dict[str, BaseDistribution] = {}
    counts: dict[str, int] = {}
    order: list[str] = []  # parameters in the order define samples them
    returned: dict[str, dict[str, Any]] = {}  # key -> {JSON text: value}
    for _ in range(n_samples):
        trial = study.ask()
        fixed = space.define(trial)
        study.tell(trial, 0.0)
        _insert_in_order(order, list(trial.distributions))
        for param, distribution in trial.distributions.items():
            first = distributions.setdefault(param, distribution)
            if first != distribution:
                raise ValueError(
                    f"space {name!r} samples {param!r} from {first} and from {distribution}"
                )
            counts[param] = counts.get(param, 0) + 1
        for key, value in fixed.items():
            returned.setdefault(key, {})[json.dumps(value, sort_keys=True)] = value
    return {
        "name": name,
        "description": inspect.cleandoc(space.__doc__ or ""),
        "smoke": copy.deepcopy(space.SMOKE),
        "parameters": {
            param: _describe_distribution(distributions[param], active=counts[param] / n_samples)
            for param in order
        },
        "fixed": {key: next(iter(v.values())) for key, v in returned.items() if len(v) == 1},
        "derived": [key for key, values in returned.items() if len(values) > 1],
    }


def _insert_in_order(order: list[str], sampled: list[str]) -> None:
    """Add the parameters of one sample that ``order`` lacks, each after the parameter
    sampled just before it, so a branch's parameters follow the choice that opened it."""
    for position, param in enumerate(sampled):
        if param not in order:
            after = order.index(sampled[position - 1]) + 1 if position else 0
            order.insert(after, param)


def _describe_distribution(distribution: BaseDistribution, *, active: float) -> dict[str, Any]:
    # distribution_to_json gives {"name": "FloatDistribution", "attributes": {...}}.
    described = json.loads(distribution_to_json(distribution))
    return {
        "distribution": described["name"],
        **described["attributes"],
        "conditional": active < 1.0,
        "active_fraction": round(active, 3),
    }
