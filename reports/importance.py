"""Parameter importance per ASHA budget: which hyperparameters matter, compared at equal epochs.

Optuna's own importance tools read one value per trial, and with ASHA that value is the last
report: 1 epoch for a trial stopped at the first rung, the full budget for a finished one, so
they rank parameters partly by how long their trials were allowed to train. Here every ASHA
milestone epoch gets its own fit, on exactly the trials that reached it, scored at it.

fANOVA silently drops parameters that are not set in every trial, so conditional parameters
are fitted per active branch: the unconditional parameters on all trials, and each conditional
parameter on the trials where it was sampled, next to the unconditional ones. Inactive values
are never imputed. Uncertainty comes from a bootstrap over trials.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from plotly.colors import hex_to_rgb, qualitative
from plotly.subplots import make_subplots

from reports.artifact import Figure, Section, Sources, Table
from reports.bootstrap import DEFAULT_RESAMPLES, percentile_interval
from reports.naming import parameter_name, with_parameter_words
from reports.study_data import ReportError, StudyData
from study.folder_format import TRIAL_ID

__all__ = [
    "ALL_TRIALS",
    "COLUMNS",
    "METHODS",
    "branch_labels",
    "importance_bar_figure",
    "importance_budget_figure",
    "importance_by_budget",
    "importance_section",
    "parameter_label",
    "rebuild_distributions",
]

METHODS: tuple[str, ...] = ("ped_anova", "fanova")
"""Importance methods `importance_by_budget` knows, in the order figures show them."""

ALL_TRIALS = "all"
"""`branch` of the fit on every trial (the unconditional parameters)."""

COLUMNS: tuple[str, ...] = (
    "budget_epoch", "method", "parameter", "branch",
    "importance", "ci_low", "ci_high", "n_trials",
)

METHOD_TITLES = MappingProxyType({"ped_anova": "PED-ANOVA", "fanova": "fANOVA"})

# Attributes of each distribution class in a space description (`describe_space` form).
_DISTRIBUTION_ATTRIBUTES = MappingProxyType({
    "CategoricalDistribution": ("choices",),
    "FloatDistribution": ("low", "high", "log", "step"),
    "IntDistribution": ("low", "high", "log", "step"),
})
_DIRECTIONS = MappingProxyType({"max": "maximize", "min": "minimize"})
_INACTIVE = "<inactive>"
_PALETTE = qualitative.Dark24


def rebuild_distributions(
    parameters: Mapping[str, Mapping[str, Any]],
) -> dict[str, BaseDistribution]:
    """Optuna distributions from a space description's ``parameters`` (`StudyData.parameters`).

    Raises:
        ReportError: for a distribution class the description format does not cover.
    """
    rebuilt = {}
    for name, description in parameters.items():
        kind = description["distribution"]
        if kind not in _DISTRIBUTION_ATTRIBUTES:
            raise ReportError(f"parameter {name!r} has distribution {kind!r}; known: "
                              f"{sorted(_DISTRIBUTION_ATTRIBUTES)}")
        attributes = {key: description[key] for key in _DISTRIBUTION_ATTRIBUTES[kind]}
        rebuilt[name] = json_to_distribution(json.dumps({"name": kind, "attributes": attributes}))
    return rebuilt


def importance_by_budget(
    study: StudyData,
    *,
    methods: Sequence[str] = METHODS,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    min_trials: int = 4,
    confidence: float = 0.95,
    ped_anova_quantile: float = 0.25,
    fanova_trees: int = 32,
) -> pd.DataFrame:
    """Parameter importances at every ASHA milestone, each from the trials that reached it.

    Args:
        study: the study to analyse.
        methods: names from `METHODS`.
        n_bootstrap: bootstrap refits per budget and branch (trials resampled with
            replacement); 0 gives no interval (NaN bounds).
        seed: seeds the resampling and fANOVA's forest; equal seeds give equal tables.
        min_trials: budgets and branches with fewer scored trials are skipped (listed in
            ``frame.attrs["notes"]``).
        confidence: coverage of the percentile interval (reported as computed: it can miss
            the point estimate, and ``frame.attrs["notes"]`` counts how often it does).
        ped_anova_quantile: PED-ANOVA's target quantile (which fraction of trials counts as
            good). Optuna's 0.1 leaves one or two trials at the sizes these studies have.
        fanova_trees: trees in fANOVA's random forest (64 in Optuna; fits dominate the cost).

    Returns:
        One row per budget, method and reported parameter, columns `COLUMNS`. ``branch`` is
        `ALL_TRIALS` for unconditional parameters (importances normalised over them) and, for
        a conditional parameter, the condition under which it is sampled (e.g.
        ``model/readout=last_plus_pool``); its importance is its share in the fit on that
        branch's trials, next to the unconditional parameters. ``n_trials`` counts the
        trials of the fit. Skipped budgets and branches are listed in
        ``frame.attrs["notes"]``.

    Raises:
        ValueError: for an unknown method.
    """
    table, notes = _importance_table(
        study, methods=methods, n_bootstrap=n_bootstrap, seed=seed, min_trials=min_trials,
        confidence=confidence, ped_anova_quantile=ped_anova_quantile,
        fanova_trees=fanova_trees,
    )
    table.attrs["notes"] = notes
    return table


@dataclass(frozen=True)
class _Branch:
    """One importance fit: which trials, which parameters, which of them to report."""

    label: str
    mask: pd.Series  # rows of the budget frame in this branch
    fitted: tuple[str, ...]
    reported: tuple[str, ...]


def _importance_table(
    study: StudyData,
    *,
    methods: Sequence[str],
    n_bootstrap: int,
    seed: int,
    min_trials: int,
    confidence: float,
    ped_anova_quantile: float,
    fanova_trees: int,
) -> tuple[pd.DataFrame, list[str]]:
    evaluators = _evaluators(
        methods, seed=seed, ped_anova_quantile=ped_anova_quantile, fanova_trees=fanova_trees
    )
    distributions = rebuild_distributions(study.parameters)
    labels = branch_labels(study)
    direction = _DIRECTIONS[study.mode]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    missed = 0
    for epoch in study.milestones:
        frame = _scored(study, epoch)
        if len(frame) < min_trials:
            notes.append(f"epoch {epoch}: {len(frame)} scored trial(s), fewer than "
                         f"{min_trials}; no importance computed")
            continue
        for index, branch in enumerate(_branches(study, frame, labels)):
            rows_in = frame[branch.mask].reset_index(drop=True)
            if len(rows_in) < min_trials or not branch.reported:
                reason = (f"{len(rows_in)} trial(s), fewer than {min_trials}"
                          if len(rows_in) < min_trials else "no parameter varies")
                notes.append(f"epoch {epoch}, branch {branch.label}: {reason}; skipped")
                continue
            params = [
                {name: _to_optuna(distributions[name], row[study.parameter_column(name)])
                 for name in branch.fitted}
                for _, row in rows_in.iterrows()
            ]
            scores = rows_in[study.metric].to_numpy(dtype=float)
            fit = _Fit(params, scores, {n: distributions[n] for n in branch.fitted}, direction,
                       branch.fitted, evaluators)
            estimate = fit(np.arange(len(rows_in)))
            rng = np.random.default_rng([seed, epoch, index])
            resamples = [fit(rng.integers(0, len(rows_in), len(rows_in)))
                         for _ in range(n_bootstrap)]
            for method in evaluators:
                for name in branch.reported:
                    boot = np.array([r[method][name] for r in resamples], dtype=float)
                    low, high = percentile_interval(boot, confidence=confidence)
                    missed += _misses(estimate[method][name], low, high)
                    rows.append({
                        "budget_epoch": epoch, "method": method, "parameter": name,
                        "branch": branch.label, "importance": estimate[method][name],
                        "ci_low": low, "ci_high": high, "n_trials": len(rows_in),
                    })
    reported = {row["parameter"] for row in rows}
    unvaried = study.unvaried(study.trials)
    notes += [f"{name}: {value} in every trial (not varied); no importance"
              for name, value in unvaried.items() if name not in reported]
    if missed:
        notes.append(f"{missed} of {len(rows)} bootstrap percentile intervals do not contain "
                     "their point estimate (a resample repeats trials, which biases a "
                     "normalised importance from few trials); they are shown as computed")
    return pd.DataFrame(rows, columns=list(COLUMNS)), notes


def _misses(estimate: float, low: float, high: float) -> bool:
    """Whether a finite interval leaves out its finite point estimate."""
    finite = all(math.isfinite(v) for v in (estimate, low, high))
    return finite and not low <= estimate <= high


def _scored(study: StudyData, epoch: int) -> pd.DataFrame:
    """The trials that reached ``epoch``, scored there, with a finite score."""
    frame = study.at_epoch(epoch)
    return frame[np.isfinite(frame[study.metric].to_numpy(dtype=float))].reset_index(drop=True)


def _varies(frame: pd.DataFrame, column: str) -> bool:
    """Whether a parameter takes more than one value; a missing value counts as the ``None``
    choice (callers pass only the trials where the parameter is active)."""
    return column in frame and frame[column].map(_choice_text).nunique() > 1


def _branches(
    study: StudyData, frame: pd.DataFrame, labels: Mapping[str, str]
) -> Iterator[_Branch]:
    """The fits at one budget: all trials with the unconditional parameters, then one per
    conditional parameter on the trials where it is active."""
    unconditional = [n for n, d in study.parameters.items() if not d["conditional"]]
    fitted = tuple(n for n in unconditional if _varies(frame, study.parameter_column(n)))
    yield _Branch(ALL_TRIALS, pd.Series(True, index=frame.index), fitted, fitted)
    for name, description in study.parameters.items():
        column = study.parameter_column(name)
        if not description["conditional"]:
            continue
        mask = frame[column].notna() if column in frame else pd.Series(False, index=frame.index)
        active = frame[mask]
        context = tuple(n for n in unconditional if _varies(active, study.parameter_column(n)))
        reported = (name,) if _varies(active, column) else ()
        yield _Branch(labels[name], mask, context + reported, reported)


def branch_labels(study: StudyData) -> dict[str, str]:
    """For each conditional parameter, the condition under which it is sampled.

    The condition is inferred from the trials: the nearest earlier categorical parameter
    whose values on trials where the parameter is active never occur where it is inactive
    (``model/readout=last_plus_pool``, or ``p in {a, b}``). Where no parameter separates
    them (e.g. it was active in every trial), the label is ``<name> active``.
    """
    trials = study.trials.drop_duplicates(TRIAL_ID)
    names = list(study.parameters)
    labels = {}
    for position, name in enumerate(names):
        if not study.parameters[name]["conditional"]:
            continue
        column = study.parameter_column(name)
        active = trials[column].notna() if column in trials else pd.Series(False, trials.index)
        labels[name] = f"{name} active"
        for parent in reversed(names[:position]):
            parent_column = study.parameter_column(parent)
            if (study.parameters[parent]["distribution"] != "CategoricalDistribution"
                    or parent_column not in trials):
                continue
            values = trials[parent_column].map(_choice_text)
            inside, outside = set(values[active]), set(values[~active])
            if inside and outside and inside.isdisjoint(outside):
                labels[name] = _condition(parent, study.parameters[parent]["choices"], inside)
                break
    return labels


def _condition(parent: str, choices: Sequence[Any], values: set[str]) -> str:
    ordered = [_choice_text(c) for c in choices if _choice_text(c) in values]
    if len(ordered) == 1:
        return f"{parent}={ordered[0]}"
    return f"{parent} in {{{', '.join(ordered)}}}"


def _choice_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _INACTIVE
    return str(value.item() if isinstance(value, np.generic) else value)


def _to_optuna(distribution: BaseDistribution, value: Any) -> Any:
    """A trials.parquet value as the distribution's own type (numpy ints, 7.0 for 7, ...).

    Parquet stores a sampled ``None`` choice (e.g. no class weighting) as a missing value;
    within a branch the parameter is active, so a missing value there is that ``None``."""
    if _choice_text(value) == _INACTIVE and None in getattr(distribution, "choices", ()):
        value = None
    return distribution.to_external_repr(distribution.to_internal_repr(value))


def _evaluators(
    methods: Sequence[str], *, seed: int, ped_anova_quantile: float, fanova_trees: int
) -> dict[str, Callable[[], BaseImportanceEvaluator]]:
    known: dict[str, Callable[[], BaseImportanceEvaluator]] = {
        "ped_anova": lambda: PedAnovaImportanceEvaluator(target_quantile=ped_anova_quantile),
        "fanova": lambda: FanovaImportanceEvaluator(n_trees=fanova_trees, seed=seed),
    }
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown importance method(s) {unknown}; known: {list(known)}")
    return {m: known[m] for m in methods}


@dataclass(frozen=True)
class _Fit:
    """Importances of one set of trials, refitted on any resample of them (by row index)."""

    params: list[dict[str, Any]]
    scores: np.ndarray
    distributions: dict[str, BaseDistribution]
    direction: str
    names: tuple[str, ...]
    evaluators: Mapping[str, Callable[[], BaseImportanceEvaluator]]

    def __call__(self, rows: np.ndarray) -> dict[str, dict[str, float]]:
        with _quiet_optuna():
            study = optuna.create_study(direction=self.direction)
            study.add_trials([
                optuna.trial.create_trial(
                    params=self.params[i], distributions=self.distributions,
                    value=float(self.scores[i]),
                )
                for i in rows
            ])
            found = {}
            for method, make in self.evaluators.items():
                try:
                    result = get_param_importances(study, evaluator=make(), params=list(self.names))
                except (ValueError, RuntimeError, ZeroDivisionError):
                    result = {}  # fANOVA on equal scores ("zero total variance"): NaN
                found[method] = {n: float(result.get(n, math.nan)) for n in self.names}
            return found


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-study log lines and small-sample warnings inside bootstrap loops."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(level)


# --- drawing ------------------------------------------------------------------------------


def parameter_label(parameter: str, branch: str) -> str:
    """How a table row's parameter is named in figures, in words (its branch after a bar
    if any)."""
    words = parameter_name(parameter)
    return words if branch == ALL_TRIALS else f"{words} | {branch}"


def _colours(labels: Sequence[str]) -> dict[str, str]:
    return {label: _PALETTE[i % len(_PALETTE)] for i, label in enumerate(labels)}


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = hex_to_rgb(hex_colour)
    return f"rgba({red}, {green}, {blue}, {alpha})"


def importance_budget_figure(table: pd.DataFrame) -> go.Figure:
    """Importance against budget: one column of panels per method, one line (with its
    bootstrap band) per parameter; two traces per method and parameter."""
    table = table.assign(label=[parameter_label(p, b) for p, b in
                                zip(table["parameter"], table["branch"], strict=True)])
    methods = list(dict.fromkeys(table["method"]))
    labels = list(dict.fromkeys(table["label"]))
    colours = _colours(labels)
    figure = make_subplots(rows=1, cols=max(len(methods), 1), shared_yaxes=True,
                           subplot_titles=[METHOD_TITLES.get(m, m) for m in methods])
    for col, method in enumerate(methods, start=1):
        for label in labels:
            rows = table[(table["method"] == method) & (table["label"] == label)]
            rows = rows.sort_values("budget_epoch")
            x = rows["budget_epoch"].tolist()
            figure.add_trace(go.Scatter(
                x=x + x[::-1], y=rows["ci_high"].tolist() + rows["ci_low"].tolist()[::-1],
                mode="lines", fill="toself", fillcolor=_rgba(colours[label], 0.1),
                line={"width": 0},
                hoverinfo="skip", legendgroup=label, showlegend=False,
            ), row=1, col=col)
            figure.add_trace(go.Scatter(
                x=x, y=rows["importance"], mode="lines+markers", name=label,
                line={"color": colours[label]}, legendgroup=label, showlegend=col == 1,
                customdata=rows[["ci_low", "ci_high", "n_trials"]],
                hovertemplate=(f"{label}<br>epoch %{{x}}: %{{y:.3f}} "
                               "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                               "<br>%{customdata[2]} trials<extra></extra>"),
            ), row=1, col=col)
        figure.update_xaxes(type="log", tickvals=sorted(set(table["budget_epoch"])),
                            title_text="budget (epochs trained, ASHA milestone)", row=1, col=col)
    figure.update_yaxes(title_text="importance (share, normalised per fit)", row=1, col=1)
    figure.update_layout(width=520 * max(len(methods), 1) + 260, height=480,
                         template="simple_white", legend_title_text="parameter")
    return figure


def importance_bar_figure(table: pd.DataFrame) -> go.Figure:
    """Importances at the largest budget in ``table``: methods side by side with their
    bootstrap intervals as error bars; one trace per method."""
    if table.empty:
        return go.Figure(layout={"template": "simple_white"})
    epoch = int(table["budget_epoch"].max())
    rows = table[table["budget_epoch"] == epoch]
    rows = rows.assign(label=[parameter_label(p, b) for p, b in
                              zip(rows["parameter"], rows["branch"], strict=True)])
    order = (rows.groupby("label", sort=False)["importance"].mean()
             .sort_values(ascending=False).index.tolist())
    figure = go.Figure()
    for method in dict.fromkeys(rows["method"]):
        part = rows[rows["method"] == method].set_index("label").reindex(order)
        figure.add_trace(go.Bar(
            x=order, y=part["importance"], name=METHOD_TITLES.get(method, method),
            error_y={"type": "data", "symmetric": False,
                     "array": (part["ci_high"] - part["importance"]).clip(lower=0),
                     "arrayminus": (part["importance"] - part["ci_low"]).clip(lower=0)},
        ))
    figure.update_layout(
        barmode="group", template="simple_white", width=max(600, 70 * len(order) + 200),
        height=480, xaxis_title="parameter", xaxis_tickangle=-35,
        yaxis_title=f"importance at epoch {epoch} (share, normalised per fit)",
        legend_title_text="method",
    )
    return figure


MIN_IMPORTANCE_TRIALS = 20
"""Fewer trials than this cannot rank parameters: a functional ANOVA of a handful of fits
attributes most variance to whichever parameter happened to vary with the score."""


def importance_section(
    study: StudyData, *, n_bootstrap: int = DEFAULT_RESAMPLES, **options: Any
) -> Section:
    """Importance figures and table for a report; ``options`` go to `importance_by_budget`.
    Without a budget that enough trials reached, one line says so instead of empty figures."""
    title = "Parameter importance by budget"
    min_trials = options.get("min_trials", 4)
    reached = max((len(_scored(study, e)) for e in study.milestones), default=0)
    if reached < min_trials:
        return Section(title=title, notes=[
            f"Not computed: needs at least {min_trials} trials scored at one ASHA milestone; "
            f"this study has {reached}."])
    table = importance_by_budget(study, n_bootstrap=n_bootstrap, **options)
    if table.empty:
        return Section(title=title, notes=[
            "Not computed: no parameter varies among the trials at any milestone.",
            *table.attrs.get("notes", [])])
    table["caveat"] = np.where(table["n_trials"] < MIN_IMPORTANCE_TRIALS,
                               f"too few trials (n < {MIN_IMPORTANCE_TRIALS}): not evidence", "")
    few = table.loc[table["n_trials"] < MIN_IMPORTANCE_TRIALS, "budget_epoch"].unique()
    trials = tuple(sorted(set(study.trials[TRIAL_ID])))
    sources = Sources(study=study.name, trials=trials)
    notes = [
        study.budget_verdict,
        "Importances are computed separately at each ASHA milestone, from the trials that "
        "reached it, scored at that epoch; each fit's importances sum to 1.",
        "Conditional parameters are fitted on the trials where they are active (their "
        "branch), next to the unconditional parameters; inactive values are never imputed.",
        f"Intervals: 95% percentile bootstrap over trials ({n_bootstrap} resamples with "
        "replacement, each refitted), as computed.",
        *table.attrs.get("notes", []),
        *([f"{study.n_diverged} diverged trial(s) left out (no score measures their "
            "configuration)."] if study.n_diverged else []),
        *([f"Importances at epoch(s) {', '.join(str(int(e)) for e in sorted(few))} rest on "
           f"fewer than {MIN_IMPORTANCE_TRIALS} trials (column caveat): a ranking of parameters "
           "from so few fits is not evidence, whatever its interval says."] if len(few) else []),
    ]
    final = int(table["budget_epoch"].max()) if not table.empty else None
    return Section(
        title=title,
        figures=[
            Figure(name="importance-by-budget",
                   title="Parameter importance at each ASHA milestone (bootstrap band)",
                   figure=importance_budget_figure(table), sources=sources),
            Figure(name="importance-final-budget",
                   title=f"Parameter importance at epoch {final}, by method",
                   figure=importance_bar_figure(table), sources=sources),
        ],
        tables=[Table(name="importance-by-budget", title="Parameter importance by budget",
                      frame=with_parameter_words(table.reset_index(drop=True)),
                      sources=sources)],
        notes=notes,
    )
