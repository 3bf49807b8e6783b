"""Every private member of Ray, Optuna and W&B that the study relies on, in one place.

`library_internals.json` lists each member, the library versions it was checked on and why it
is needed; `check_internals` looks each one up at a study's start and fails with the
library's version and the missing members, instead of a study that runs and silently records
less. The classes that override a private hook live here too, so no other module touches one:
`RestorableASHA`, `OutcomeWandbLoggingActor`, `HookedWandbLoggerCallback` (public-named hooks
around Ray's private ones), `SamplingOptunaSearch` and `prepare_cluster_config`.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata, resources
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch


class LibraryInternalsError(RuntimeError):
    """An installed library lacks a private member the study relies on."""


def internals() -> dict[str, dict[str, Any]]:
    """`library_internals.json`: library -> ``checked`` version range and ``members``."""
    return json.loads(resources.files("study").joinpath("library_internals.json").read_text())


def missing_members(*, features: Iterable[str] = ("wandb",),
                    table: dict[str, dict[str, Any]] | None = None) -> dict[str, list[str]]:
    """Library -> the listed members the installed version lacks (``module:Object.name``).

    Entries whose ``feature`` is not in ``features`` (e.g. ``wandb`` when W&B is disabled)
    are skipped: a study that does not use them runs without them."""
    table = internals() if table is None else table
    found: dict[str, list[str]] = {}
    for library, entry in table.items():
        for member in entry["members"]:
            if member.get("feature", "core") not in {"core", *features}:
                continue
            owner = _owner(member)
            gone = [name for name in member["names"] if owner is None or not hasattr(owner, name)]
            found.setdefault(library, []).extend(f"{member['object']}.{n}" for n in gone)
    return {library: gone for library, gone in found.items() if gone}


def check_internals(*, features: Iterable[str] = ("wandb",)) -> None:
    """Fail at once when a private member is gone; warn when a library is outside the range
    the members were checked on (they may still be there, but behave differently).

    Raises:
        LibraryInternalsError: naming each library's version and its missing members.
    """
    table = internals()
    missing = missing_members(features=features, table=table)
    if missing:
        lines = [f"{library} {_version(library)} lacks {', '.join(gone)} (checked on "
                 f"{library}{','.join(table[library]['checked'])})"
                 for library, gone in missing.items()]
        raise LibraryInternalsError(
            "the study relies on private members that the installed libraries do not have: "
            + "; ".join(lines) + ". Install the versions pyproject.toml names"
            + (" or run with --wandb-mode disabled" if "wandb" in features else ""))
    for library, entry in table.items():
        installed = _version(library)
        if installed is not None and Version(installed) not in SpecifierSet(
                ",".join(entry["checked"])):
            warnings.warn(f"{library} {installed} is outside the versions the study's use of "
                          f"its internals was checked on ({','.join(entry['checked'])}); "
                          "the study prints whether Optuna agrees with trials.parquet",
                          stacklevel=2)


def _owner(member: dict[str, Any]) -> Any:
    """The object a member entry names (``module:Object``; an instance when ``instance``),
    or None when the module or object is gone."""
    module_name, _, object_name = member["object"].partition(":")
    try:
        owner = importlib.import_module(module_name)
    except ImportError:
        return None
    if object_name:
        owner = getattr(owner, object_name, None)
    if owner is not None and member.get("instance"):
        owner = owner()
    return owner


def _version(library: str) -> str | None:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return None


def prepare_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """Ray's own order for a cluster file: fill defaults and merge commands, then validate
    (what `ray up` does first).

    Raises:
        jsonschema.ValidationError: the schema rejects the file.
        ValueError: a cross-field check fails (e.g. an undefined head node type).
    """
    util = importlib.import_module("ray.autoscaler._private.util")
    config = util.prepare_config(config)
    util.validate_config(config)
    return config


class RestorableASHA(ASHAScheduler):
    """ASHA that relearns its rungs when a study is restored.

    Ray Tune leaves the scheduler out of its experiment snapshot (`TuneController` saves the
    searcher, not ``_scheduler_alg``), so after a driver kill ASHA would start again with empty
    rungs and let every resumed or new trial through the next milestones. Each trial added
    with results already in storage (a restored one) is replayed into its bracket, so
    decisions after a resume compare against the scores recorded before the kill.

    Args:
        reported: a trial -> the rows it reported so far (none for a new trial).
    """

    def __init__(self, *, reported: Callable[[Any], list[dict[str, Any]]], **kwargs: Any):
        super().__init__(**kwargs)
        self.reported = reported

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        bracket = self._trial_info[trial.trial_id]
        for row in self.reported(trial):
            if self._time_attr in row and self._metric in row:
                bracket.on_result(trial, row[self._time_attr], self._metric_op * row[self._metric])


OUTCOME_PREFIX = "trial/"
"""W&B keys of a trial's outcome, logged with its last step."""


class OutcomeWandbLoggingActor(_WandbLoggingActor):
    """Ray's W&B logging actor, except that it also logs the outcome's text values (Ray's
    drops every string, e.g. ``trial/stop_reason``) and leaves the run's config as
    `wandb.init` set it (Ray's sets the sampled values again from every result, over the
    values the trial trained with)."""

    def _handle_result(self, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        log, config_update = super()._handle_result(result)
        log.update({k: v for k, v in result.items()
                    if k.startswith(OUTCOME_PREFIX) and isinstance(v, str)})
        sampled = result.get("config", {})
        return log, {k: v for k, v in config_update.items() if k not in sampled}


class HookedWandbLoggerCallback(WandbLoggerCallback):
    """Ray's W&B callback with public-named hooks around its private ones, so subclasses in
    `study.tune.tuning` change what a run is started with and what happens once it finished
    without touching Ray's internals."""

    _logger_actor_cls = OutcomeWandbLoggingActor

    def init_kwargs(self, trial: Any, wandb_init_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The `wandb.init` arguments of ``trial``'s run (subclasses add to them)."""
        return wandb_init_kwargs

    def start_logging_actor(self, trial: Any, exclude_results: list[str],
                            wandb_init_kwargs: dict[str, Any]) -> None:
        """Start ``trial``'s logging actor (Ray's own step; subclasses wrap it)."""
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    def run_finished(self, trial: Any) -> None:
        """Called once ``trial``'s actor returned from `wandb.finish` (or at the experiment's
        end, when the upload timeout ran out)."""

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs) -> None:
        self.start_logging_actor(trial, exclude_results,
                                 self.init_kwargs(trial, dict(wandb_init_kwargs)))

    def _cleanup_logging_actor(self, trial: Any) -> None:
        super()._cleanup_logging_actor(trial)
        self.run_finished(trial)


class SamplingOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch reduced to sampling: `study.tune.optuna_truth.OptunaRecorder` writes
    every result and outcome, so Ray's own tells (which record ASHA stops as COMPLETE) are
    switched off."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Recorded by `OptunaRecorder` (which also sees the report that made ASHA stop)."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """Recorded by `OptunaRecorder` with the trial's outcome."""
