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

A study may fix options in every trial (``--set``, ``--smoke``, a data set's training
settings). `define_fixed` runs a space with those options fixed: a fixed parameter is never
sampled (Optuna neither draws nor records it as a parameter; the trial keeps them as the user
attribute `FIXED_ATTR`), the space branches on the fixed value, and the fixed values are
returned with the space's own, so the trial's config is the configuration that trains.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import pkgutil
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json

SPACE_SECTION = "space"
"""Config section holding a space's own coordinates, which are not training options."""
FIXED_ATTR = "fixed_options"
"""Optuna user attribute of a trial: the options the study fixed (flattened names -> values)."""


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


def flatten_options(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.001}, "epochs": 3}`` -> ``{"optim/lr": 0.001, "epochs": 3}``:
    every leaf under its path, the form of a space's parameter names (``data/augment/p``);
    the inverse of `unflatten`. Values are copied."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten_options(value, prefix=f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = copy.deepcopy(value)
    return flat


class FixedOptionsTrial:
    """An Optuna trial (or Ray Tune's wrapper of one) whose fixed options are answered with
    their values instead of being sampled.

    A space asks ``suggest_*("optim/lr", ...)``; for a name in ``fixed`` the fixed value comes
    back and nothing is drawn or recorded as a parameter, so the space's branches and derived
    values follow the value that trains. Everything else passes to the wrapped trial.

    Raises (from the ``suggest_*`` methods):
        ValueError: a fixed categorical value that is not one of the space's choices (the
            space may branch or look values up on it).
    """

    def __init__(self, trial: Any, *, fixed: Mapping[str, Any]) -> None:
        self._trial = trial
        self._fixed = dict(fixed)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        if name in self._fixed:
            return self._fixed[name]
        return self._trial.suggest_float(name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        if name in self._fixed:
            return self._fixed[name]
        return self._trial.suggest_int(name, *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name not in self._fixed:
            return self._trial.suggest_categorical(name, choices)
        value = self._fixed[name]
        if value not in list(choices):
            raise ValueError(f"{name}={json.dumps(value)} is not one of the space's choices "
                             f"{json.dumps(list(choices))}")
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def define_fixed(trial: Any, *, space: str, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Run space ``space``'s ``define`` on ``trial`` with the flattened options ``fixed``
    fixed (see `FixedOptionsTrial`); returns the space's fixed values with ``fixed`` over
    them, and records ``fixed`` on the trial as the user attribute `FIXED_ATTR`.

    Module-level with plain-data arguments, so a `functools.partial` of it pickles (Ray
    restores a study's searcher from its experiment snapshot)."""
    returned = load_space(space).define(FixedOptionsTrial(trial, fixed=fixed)) or {}
    if fixed:
        trial.set_user_attr(FIXED_ATTR, copy.deepcopy(dict(fixed)))
    return {**returned, **copy.deepcopy(dict(fixed))}


def training_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A nested sampled config without the ``space`` section: a partial training config."""
    return {key: value for key, value in config.items() if key != SPACE_SECTION}


def describe_space(name: str, *, n_samples: int = 300, seed: int = 0,
                   fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able description of a space, for ``--show-space`` and a study's record.

    The parameters are found by running ``define`` ``n_samples`` times on a random sampler,
    so parameters that exist only in some branches are listed too (with the fraction of
    samples they were active in); a branch rarer than about 1 in ``n_samples`` could be missed.
    With ``fixed`` (flattened options a study fixes), the space is run as the study runs it
    (`define_fixed`): a fixed option is no parameter, it is listed under ``fixed``.

    Returns:
        ``name``, ``description`` (the module docstring), ``smoke``,
        ``parameters`` (name -> distribution, its attributes, ``conditional`` and
        ``active_fraction``, in sampling order), ``fixed`` (returned values that never
        changed, the study's fixed options included), ``fixed_by_study`` (the names of
        ``fixed``) and ``derived`` (names of returned values that depend on the sample).

    Raises:
        ValueError: for an unknown space, a fixed value the space cannot take, or a parameter
            sampled from different distributions in different samples (which Optuna's
            samplers cannot model).
    """
    space = load_space(name)
    fixed = dict(fixed or {})
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the throwaway study is no news
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    distributions: dict[str, BaseDistribution] = {}
    counts: dict[str, int] = {}
    order: list[str] = []  # parameters in the order define samples them
    returned: dict[str, dict[str, Any]] = {}  # key -> {JSON text: value}
    for _ in range(n_samples):
        trial = study.ask()
        values = define_fixed(trial, space=name, fixed=fixed)
        study.tell(trial, 0.0)
        _insert_in_order(order, list(trial.distributions))
        for param, distribution in trial.distributions.items():
            first = distributions.setdefault(param, distribution)
            if first != distribution:
                raise ValueError(
                    f"space {name!r} samples {param!r} from {first} and from {distribution}"
                )
            counts[param] = counts.get(param, 0) + 1
        for key, value in values.items():
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
        "fixed_by_study": sorted(fixed),
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
