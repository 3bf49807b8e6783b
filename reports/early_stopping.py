"""An audit of ASHA's early stopping: do low-budget scores rank trials as the full budget does,
and which parameter values does ASHA stop?

ASHA keeps a trial at milestone e_k only if its score there ranks in the top 1/rf. That is a
good rule only when the ranking at e_k predicts the ranking at e_{k+1} and at the full budget,
so `rung_correlations` measures exactly that (Spearman rank correlation). And ASHA favours
configurations that learn fast, so `stopped_early_by_value` shows, per sampled parameter,
whether some values (deep, bidirectional, small learning rate...) are stopped systematically;
their full-budget quality is then never observed, which biases every later analysis.
"""

from __future__ import annotations

import math
import warnings
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from reports.artifact import Figure, Section, Sources, Table
from reports.bootstrap import DEFAULT_RESAMPLES
from reports.cv_tables import holm_adjust
from reports.naming import parameter_name, with_parameter_words
from reports.study_data import StudyData
from study.folder_format import COMPLETED, EARLY_STOPPED, EPOCH, STOP_REASON, TRIAL_ID

CONSECUTIVE = "consecutive"
TO_FINAL = "to_final"
INACTIVE = "(inactive)"
AUDITED = (COMPLETED, EARLY_STOPPED)  # diverged and errored trials were not stopped by ASHA
MIN_EXPECTED_FOR_CHI2 = 5.0


# -- rung correlations ---------------------------------------------------------------------

def milestone_metrics(study: StudyData) -> dict[int, tuple[str, str]]:
    """(metric, mode) the audit reads at each milestone: at the rungs what ASHA ranked on
    (`StudyData.rung`), at the full budget the study metric the study selects on."""
    return {**{epoch: study.rung for epoch in study.milestones[:-1]},
            study.milestones[-1]: (study.metric, study.mode)}


def milestone_scores(study: StudyData) -> pd.DataFrame:
    """Score of every trial at every ASHA milestone it reached, on `milestone_metrics`.

    Returns:
        One row per trial (index ``trial_id``), one column per milestone epoch; NaN where the
        trial did not reach the milestone (or reported no score there).
    """
    trials = study.trials.drop_duplicates([TRIAL_ID, EPOCH], keep="last")
    columns = {}
    for epoch, (metric, _) in milestone_metrics(study).items():
        rows = trials[trials[EPOCH] == epoch]
        columns[epoch] = (rows.set_index(TRIAL_ID)[metric] if metric in rows
                          else pd.Series(dtype=float))
    wide = pd.DataFrame(columns, columns=study.milestones).astype(float)
    return wide.dropna(how="all")


def rung_pairs(study: StudyData) -> pd.DataFrame:
    """The paired scores behind `rung_correlations`, one row per (comparison, trial).

    ``comparison`` is ``"consecutive"`` for milestones (e_k, e_{k+1}), using every trial with a
    score at both, and ``"to_final"`` for (e_k, full budget), using only trials that completed
    the full budget.

    Returns:
        Columns ``comparison``, ``rung_from``, ``epoch_from``, ``epoch_to``, ``trial_id``,
        ``score_from``, ``score_to``.
    """
    wide = milestone_scores(study)
    completed = set(study.final()[TRIAL_ID])
    frames = []
    for comparison, rung_from, epoch_from, epoch_to in _pair_specs(study.milestones):
        both = wide[[epoch_from, epoch_to]].dropna()
        if comparison == TO_FINAL:
            both = both[both.index.isin(completed)]
        frames.append(pd.DataFrame({
            "comparison": comparison,
            "rung_from": rung_from,
            "epoch_from": epoch_from,
            "epoch_to": epoch_to,
            TRIAL_ID: both.index.astype(str),
            "score_from": both[epoch_from].to_numpy(),
            "score_to": both[epoch_to].to_numpy(),
        }))
    columns = ["comparison", "rung_from", "epoch_from", "epoch_to", TRIAL_ID, "score_from",
               "score_to"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


MIN_RANK_TRIALS = 10
"""Fewer trials than this cannot support a rank correlation: with 4-5 pairs a perfect rho
arises by chance often (p >= 0.08 for n = 5) and its intervals collapse to a point."""

MIN_SCATTER_TRIALS = 3
"""Fewer pairs than this leave Spearman's rho undefined: the rung scatter is not drawn."""


def rung_correlations(
    study: StudyData, *, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """Spearman rank correlation of trial scores between ASHA milestones.

    One row per consecutive pair of milestones (trials with a score at both) and per milestone
    against the full budget (trials that completed it); see `rung_pairs`.

    Args:
        study: the study.
        n_bootstrap: bootstrap resamples of trials for the percentile interval (0: none).
        seed: seed of the bootstrap.
        confidence: level of both intervals.

    Returns:
        Columns ``comparison``, ``rung_from``, ``epoch_from``, ``epoch_to``, ``n_trials``,
        ``rho``, ``p_value`` (H0: rho = 0), ``ci_low``/``ci_high`` (Fisher z interval with the
        Bonett-Wright standard error, the headline interval), ``boot_low``/``boot_high``
        (bootstrap percentile interval over trials). NaN where fewer than 3 trials (4 for the
        Fisher interval) or constant scores leave the correlation undefined.
    """
    pairs = rung_pairs(study)
    modes = {epoch: mode for epoch, (_, mode) in milestone_metrics(study).items()}
    rows = []
    for comparison, rung_from, epoch_from, epoch_to in _pair_specs(study.milestones):
        sel = pairs[(pairs["comparison"] == comparison) & (pairs["epoch_from"] == epoch_from)]
        # A rung ranked on a loss and a budget scored on F1: rho of "better" against "better".
        sign = _better(modes[epoch_from]) * _better(modes[epoch_to])
        rows.append({
            "comparison": comparison,
            "rung_from": rung_from,
            "epoch_from": epoch_from,
            "epoch_to": epoch_to,
            "n_trials": len(sel),
            **spearman_with_ci(sign * sel["score_from"].to_numpy(), sel["score_to"].to_numpy(),
                               n_bootstrap=n_bootstrap, seed=seed, confidence=confidence),
            "caveat": (f"too few trials (n < {MIN_RANK_TRIALS}): not evidence"
                       if len(sel) < MIN_RANK_TRIALS else ""),
        })
    columns = ["comparison", "rung_from", "epoch_from", "epoch_to", "n_trials", "rho", "p_value",
               "ci_low", "ci_high", "boot_low", "boot_high", "caveat"]
    return pd.DataFrame(rows, columns=columns)


def _better(mode: str) -> int:
    """+1 where a higher score is better, -1 where a lower one is."""
    return -1 if mode == "min" else 1


def spearman_with_ci(
    x: np.ndarray, y: np.ndarray, *, n_bootstrap: int = 1000, seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Spearman's rho of paired samples with two confidence intervals.

    ``ci_low``/``ci_high``: Fisher z transform with the Bonett & Wright (2000) standard error
    for Spearman's rho, sqrt((1 + rho^2 / 2) / (n - 3)); deterministic, always contains rho, and
    better calibrated than the bootstrap for the few trials of the higher rungs.
    ``boot_low``/``boot_high``: percentile interval of rho over ``n_bootstrap`` resamples of the
    pairs (resamples with constant scores are skipped).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    out = dict.fromkeys(("rho", "p_value", "ci_low", "ci_high", "boot_low", "boot_high"),
                        math.nan)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    result = stats.spearmanr(x, y)
    rho = float(np.clip(result.statistic, -1.0, 1.0))
    out["rho"], out["p_value"] = rho, float(result.pvalue)
    quantile = stats.norm.ppf(0.5 + confidence / 2)
    if n > 3 and abs(rho) < 1.0 - 1e-9:  # at |rho| = 1 the Fisher interval is a point
        with np.errstate(divide="ignore"):
            z = np.arctanh(rho)
        se = math.sqrt((1 + rho**2 / 2) / (n - 3))
        out["ci_low"], out["ci_high"] = float(np.tanh(z - quantile * se)), float(
            np.tanh(z + quantile * se))
    if n_bootstrap > 0:
        rhos = _bootstrap_spearman(x, y, n_bootstrap=n_bootstrap, seed=seed)
        if np.isfinite(rhos).any():
            tail = 100 * (1 - confidence) / 2
            out["boot_low"], out["boot_high"] = (float(v) for v in
                                                 np.nanpercentile(rhos, [tail, 100 - tail]))
    return out


def _bootstrap_spearman(x: np.ndarray, y: np.ndarray, *, n_bootstrap: int, seed: int) -> np.ndarray:
    """Spearman's rho of ``n_bootstrap`` resamples of the pairs, drawn by
    `scipy.stats.bootstrap` (NaN for resamples with constant scores)."""
    with warnings.catch_warnings():
        # Constant resamples give NaN and scipy warns that its interval is degenerate; that
        # interval is not used: the caller takes the percentile interval of the finite ones.
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap((x, y), _spearman_rho, paired=True, vectorized=True,
                                 n_resamples=n_bootstrap, method="percentile",
                                 rng=np.random.default_rng(seed))
    return result.bootstrap_distribution


def _spearman_rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis`` of same-shaped arrays (NaN where either is constant)."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx -= rx.mean(axis=axis, keepdims=True)
    ry -= ry.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=axis) / denominator, np.nan)


def _pair_specs(milestones: list[int]) -> list[tuple[str, int, int, int]]:
    """(comparison, rung_from, epoch_from, epoch_to) of every pair the audit compares."""
    consecutive = [(CONSECUTIVE, k, a, b) for k, (a, b) in enumerate(pairwise(milestones))]
    to_final = [(TO_FINAL, k, a, milestones[-1]) for k, a in enumerate(milestones[:-1])]
    return consecutive + to_final


# -- verdict -------------------------------------------------------------------------------

WINNER_COLUMNS = (EPOCH, "ranked_on", "n_scored", "n_stopped_here", "kept_places", "winner_rank",
                  "winner_kept", "winner_score", "best_stopped_score")


def winner_ranks(study: StudyData) -> pd.DataFrame:
    """Where the eventual best trial ranked at each earlier milestone, among ALL trials
    scored there: those ASHA stopped at that milestone included, with the score at which it
    stopped them. Unlike correlations to later epochs (survivors only), nothing is
    range-restricted here.

    Returns:
        One row per milestone before the full budget, columns `WINNER_COLUMNS`: trials
        scored there, trials stopped there, the places ASHA keeps (ceil(n / reduction
        factor)), the winner's rank (1 = best) on the metric ASHA ranked on there, whether
        it ranked within the kept places, its score and the best score of a trial stopped
        there. Empty without a completed trial.
    """
    final = study.final().dropna(subset=[study.metric])
    if final.empty:
        return pd.DataFrame(columns=list(WINNER_COLUMNS))
    winner = final.sort_values(study.metric, ascending=study.mode == "min",
                               kind="stable").iloc[0]
    wide = milestone_scores(study)
    metrics = milestone_metrics(study)
    per_trial = study.trials.drop_duplicates(TRIAL_ID, keep="last").set_index(TRIAL_ID)
    factor = float(study.record.get("plan", {}).get("reduction_factor") or 3.0)
    rows = []
    for rung, epoch in enumerate(study.milestones[:-1]):
        metric, mode = metrics[epoch]
        ascending = mode == "min"
        scored = wide[epoch].dropna()
        stopped_here = [t for t in scored.index
                        if per_trial.at[t, STOP_REASON] == EARLY_STOPPED
                        and int(per_trial.at[t, "max_rung"]) == rung]
        ranks = scored.rank(ascending=ascending, method="min")
        rank = int(ranks[winner[TRIAL_ID]]) if winner[TRIAL_ID] in ranks else None
        kept = math.ceil(len(scored) / factor)
        stopped_scores = scored[stopped_here]
        rows.append({
            EPOCH: epoch, "ranked_on": metric, "n_scored": len(scored),
            "n_stopped_here": len(stopped_here),
            "kept_places": kept, "winner_rank": rank,
            "winner_kept": None if rank is None else rank <= kept,
            "winner_score": float(scored.get(winner[TRIAL_ID], math.nan)),
            "best_stopped_score": (float(stopped_scores.min() if ascending
                                         else stopped_scores.max())
                                   if len(stopped_scores) else math.nan),
        })
    return pd.DataFrame(rows, columns=list(WINNER_COLUMNS))


def rung_verdict(correlations: pd.DataFrame, winners: pd.DataFrame) -> str:
    """One sentence: were this study's rungs trustworthy?

    Trustworthy: every consecutive-milestone rank correlation rests on at least
    `MIN_RANK_TRIALS` trials with a 95% interval above 0, and the eventual best trial ranked
    within ASHA's kept places at every milestone. Doubtful: an interval reaches 0, or the
    winner ranked outside the kept places (it survived by the timing of the asynchronous
    comparisons). Otherwise the study has too few trials to judge.
    """
    consecutive = correlations[correlations["comparison"] == CONSECUTIVE]
    missed = winners[winners["winner_kept"] == False]  # noqa: E712 (None: not scored)
    winner_text = ""
    if len(missed):
        epochs = ", ".join(str(int(e)) for e in missed[EPOCH])
        winner_text = (f" the eventual best trial ranked outside ASHA's kept places at epoch "
                       f"{epochs}, so a slightly different arrival order would have stopped it")
    weak = consecutive[~(consecutive["ci_low"] > 0)]
    few = consecutive[consecutive["n_trials"] < MIN_RANK_TRIALS]
    if len(few):
        smallest = int(few["n_trials"].min())
        base = (f"Rungs cannot be judged: a rank correlation between milestones needs at least "
                f"{MIN_RANK_TRIALS} trials at both; this study has {smallest}")
        return base + (f", and{winner_text}." if winner_text else ".")
    if len(weak) or winner_text:
        reasons = []
        if len(weak):
            reasons.append("the rank correlation between epochs " + ", ".join(
                f"{int(r.epoch_from)} and {int(r.epoch_to)}" for r in weak.itertuples())
                + " has a 95% interval reaching 0")
        if winner_text:
            reasons.append(winner_text.strip())
        return "Rungs doubtful: " + "; ".join(reasons) + "."
    return ("Rungs trustworthy: scores at each milestone rank trials as the next milestone "
            "does (every 95% interval above 0), and the eventual best trial ranked within "
            "ASHA's kept places at every milestone.")


# -- who gets stopped ------------------------------------------------------------------------

def stopped_early_by_value(
    study: StudyData, *, n_bins: int = 4, n_permutations: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Share of trials ASHA stopped early, per value of every sampled parameter.

    The trials audited are those that completed or were stopped early (diverged and errored
    trials were not ASHA's decision). Numeric parameters with more than ``n_bins`` possible
    values are binned (geometric bins for log-scale parameters, over the space's range);
    conditional parameters get an ``"(inactive)"`` level. Whether stopping depends on the
    parameter is tested on the levels x {stopped, not} table: Fisher's exact test for 2 x 2
    tables; Pearson's chi-square when every expected count is at least 5; otherwise a Monte
    Carlo permutation test of the chi-square statistic (``n_permutations`` label shuffles).

    Returns:
        One row per (parameter, value), values in the space's order: ``parameter``, ``value``
        (label), ``n_trials``, ``n_stopped``, ``n_stopped_first_rung`` (stopped at the first
        milestone), ``share_stopped``, ``overall_share`` (all audited trials), and per
        parameter ``n_audited``, ``test``, ``statistic`` (Pearson chi-square), ``cramers_v``,
        ``p_value`` and ``p_holm`` (Holm-adjusted across parameters).
    """
    per_trial = study.trials.drop_duplicates(TRIAL_ID, keep="last")
    per_trial = per_trial[per_trial[STOP_REASON].isin(AUDITED)].reset_index(drop=True)
    stopped = (per_trial[STOP_REASON] == EARLY_STOPPED).to_numpy()
    first_rung = stopped & (per_trial["max_rung"].to_numpy() <= 0)
    overall = float(stopped.mean()) if len(stopped) else math.nan
    frames = []
    unvaried = study.unvaried(per_trial)
    for name, spec in study.parameters.items():
        column = study.parameter_column(name)
        if column not in per_trial or (name in unvaried and not spec.get("conditional")):
            continue  # one level: nothing to test (the section says so)
        levels = parameter_levels(per_trial[column], spec, n_bins=n_bins)
        table = pd.DataFrame({"value": levels, "stopped": stopped, "first": first_rung})
        counts = table.groupby("value", observed=True).agg(
            n_trials=("stopped", "size"), n_stopped=("stopped", "sum"),
            n_stopped_first_rung=("first", "sum"),
        ).reset_index()
        test = stopping_test(counts["n_stopped"].to_numpy(), counts["n_trials"].to_numpy(),
                             n_permutations=n_permutations, seed=seed)
        counts.insert(0, "parameter", name)
        counts["value"] = counts["value"].astype(str)
        counts["share_stopped"] = counts["n_stopped"] / counts["n_trials"]
        counts["overall_share"] = overall
        counts["n_audited"] = len(per_trial)
        frames.append(counts.assign(**test))
    columns = ["parameter", "value", "n_trials", "n_stopped", "n_stopped_first_rung",
               "share_stopped", "overall_share", "n_audited", "test", "statistic", "cramers_v",
               "p_value", "p_holm"]
    if not frames:
        return pd.DataFrame(columns=columns)
    result = pd.concat(frames, ignore_index=True)
    per_parameter = result.drop_duplicates("parameter")
    adjusted = dict(zip(per_parameter["parameter"], holm_adjust(per_parameter["p_value"]),
                        strict=True))
    result["p_holm"] = result["parameter"].map(adjusted)
    return result[columns]


def stopping_tests(shares: pd.DataFrame) -> pd.DataFrame:
    """One row per parameter of `stopped_early_by_value`, most significant first, with the
    value stopped most often."""
    most = shares.sort_values("share_stopped", ascending=False, kind="stable").drop_duplicates(
        "parameter")[["parameter", "value", "share_stopped"]].rename(
        columns={"value": "most_stopped_value", "share_stopped": "its_share_stopped"})
    tests = shares.drop_duplicates("parameter")[
        ["parameter", "n_audited", "overall_share", "test", "statistic", "cramers_v", "p_value",
         "p_holm"]]
    merged = tests.merge(most, on="parameter")
    return merged.sort_values("p_value", kind="stable", na_position="last").reset_index(drop=True)


def parameter_levels(values: pd.Series, spec: dict[str, Any], *, n_bins: int = 4) -> pd.Categorical:
    """The audit's level of every value of one parameter, as an ordered categorical.

    Categorical parameters keep their choices; numeric ones with at most ``n_bins`` possible
    values keep their values; other numeric ones are cut into ``n_bins`` bins over the space's
    range (geometric for log-scale parameters), labelled ``[low, high)``. Missing values
    (inactive conditional parameters) become ``"(inactive)"``.
    """
    active = values.notna().to_numpy()
    if "choices" in spec:
        # Equal numbers hash equally, so 4.0 (an int column holding NaN) finds choice 4.
        names = {choice: str(choice) for choice in spec["choices"]}
        order = list(names.values())
        labels = np.array([names.get(v, str(v)) for v in values], dtype=object)
        extra = sorted(set(labels[active]) - set(order))  # values outside the recorded space
        order += extra
    else:
        labels, order = _numeric_levels(values, spec, n_bins=n_bins)
    labels = np.where(active, labels, INACTIVE)
    if not active.all():
        order = [*order, INACTIVE]
    return pd.Categorical(labels, categories=order, ordered=True)


def _numeric_levels(values: pd.Series, spec: dict[str, Any], *, n_bins: int
                    ) -> tuple[np.ndarray, list[str]]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    observed = numbers[np.isfinite(numbers)]
    low = float(spec.get("low", observed.min() if observed.size else 0.0))
    high = float(spec.get("high", observed.max() if observed.size else 1.0))
    step = spec.get("step")  # 1 for integer parameters, None for continuous ones
    if step and not spec.get("log") and round((high - low) / step) + 1 <= n_bins:
        grid = low + step * np.arange(round((high - low) / step) + 1)
        labels = np.array([_format_number(v) for v in numbers], dtype=object)
        return labels, [_format_number(v) for v in grid]
    edges = np.geomspace(low, high, n_bins + 1) if spec.get("log") else np.linspace(
        low, high, n_bins + 1)
    names = [f"[{_format_number(a)}, {_format_number(b)}{']' if i == n_bins - 1 else ')'}"
             for i, (a, b) in enumerate(pairwise(edges))]
    with np.errstate(invalid="ignore"):
        index = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, n_bins - 1)
    labels = np.array([names[i] for i in index], dtype=object)
    return labels, names


def _format_number(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.3g}"


def stopping_test(
    n_stopped: np.ndarray, n_trials: np.ndarray, *, n_permutations: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Test of independence of stopping and level, from per-level counts.

    Returns:
        ``test`` (``"fisher_exact"``, ``"chi2"``, ``"chi2_permutation"`` or ``"not_testable"``
        when there is a single level or nobody/everybody was stopped), ``statistic`` (Pearson
        chi-square, no continuity correction), ``cramers_v`` and ``p_value``.
    """
    n_stopped = np.asarray(n_stopped, dtype=int)
    n_trials = np.asarray(n_trials, dtype=int)
    table = np.column_stack([n_stopped, n_trials - n_stopped])  # (levels, 2)
    table = table[table.sum(axis=1) > 0]
    untestable = {"test": "not_testable", "statistic": math.nan, "cramers_v": math.nan,
                  "p_value": math.nan}
    if table.shape[0] < 2 or (table.sum(axis=0) == 0).any():
        return untestable
    pearson = stats.chi2_contingency(table, correction=False)
    chi2 = float(pearson.statistic)
    n = table.sum()
    result = {"statistic": chi2, "cramers_v": math.sqrt(chi2 / n)}
    if table.shape[0] == 2:
        return {**result, "test": "fisher_exact",
                "p_value": float(stats.fisher_exact(table).pvalue)}
    if pearson.expected_freq.min() >= MIN_EXPECTED_FOR_CHI2:
        return {**result, "test": "chi2", "p_value": float(pearson.pvalue)}
    return {**result, "test": "chi2_permutation",
            "p_value": _permutation_p(table, n_permutations=n_permutations, seed=seed)}


def _permutation_p(table: np.ndarray, *, n_permutations: int, seed: int) -> float:
    """P-value of the chi-square statistic of ``table`` (levels, [stopped, kept]) under
    shuffled stop labels (margins kept), by `scipy.stats.permutation_test` (exact when the
    trials have fewer orders than ``n_permutations``)."""
    rows = table.sum(axis=1)  # (levels,) trials per level
    level = np.repeat(np.arange(table.shape[0]), rows)  # (n,)
    stopped = np.concatenate([np.arange(r) < k for k, r in zip(table[:, 0], rows, strict=True)])
    one_hot = np.eye(table.shape[0])[level]  # (n, levels)
    expected = stats.contingency.expected_freq(table)  # (levels, 2), the same for every shuffle

    def chi2(labels: np.ndarray, axis: int = -1) -> np.ndarray:
        counts = np.moveaxis(labels, axis, -1) @ one_hot  # (..., levels) stopped per level
        observed = np.stack([counts, rows - counts], axis=-1)  # (..., levels, 2)
        return ((observed - expected) ** 2 / expected).sum(axis=(-2, -1))

    result = stats.permutation_test((stopped,), chi2, permutation_type="pairings",
                                    vectorized=True, n_resamples=n_permutations,
                                    alternative="greater", rng=np.random.default_rng(seed))
    return float(result.pvalue)


# -- figures -------------------------------------------------------------------------------

def rung_scatter_figure(pairs: pd.DataFrame, correlations: pd.DataFrame, *,
                        names: dict[int, str]) -> go.Figure:
    """Scores at consecutive milestones, one panel per pair, rho and its interval in titles.
    ``names``: the metric's name at each milestone epoch (the diagonal is drawn where both
    axes show the same metric)."""
    specs = correlations[correlations["comparison"] == CONSECUTIVE].reset_index(drop=True)
    titles = [
        f"epoch {r.epoch_from} → {r.epoch_to}: ρ = {_fmt(r.rho)} [{_fmt(r.ci_low)}, "
        f"{_fmt(r.ci_high)}], n = {r.n_trials}"
        + (" (too few trials)" if r.n_trials < MIN_RANK_TRIALS else "")
        for r in specs.itertuples()
    ]
    figure = make_subplots(rows=1, cols=max(len(specs), 1), subplot_titles=titles or None)
    for col, spec in enumerate(specs.itertuples(), start=1):
        sel = pairs[(pairs["comparison"] == CONSECUTIVE) & (pairs["epoch_from"] == spec.epoch_from)]
        figure.add_trace(go.Scatter(
            x=sel["score_from"], y=sel["score_to"], mode="markers", text=sel[TRIAL_ID],
            marker={"size": 7, "opacity": 0.75, "color": "#1f77b4"}, showlegend=False,
            hovertemplate="%{text}<br>%{x:.3f} → %{y:.3f}<extra></extra>",
        ), row=1, col=col)
        values = pd.concat([sel["score_from"], sel["score_to"]])
        if len(values) and names[spec.epoch_from] == names[spec.epoch_to]:
            low, high = float(values.min()), float(values.max())
            figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines",
                                        line={"dash": "dot", "color": "grey"}, showlegend=False,
                                        hoverinfo="skip"), row=1, col=col)
        figure.update_xaxes(title_text=f"{names[spec.epoch_from]} at epoch {spec.epoch_from}",
                            row=1, col=col)
        figure.update_yaxes(title_text=f"{names[spec.epoch_to]} at epoch {spec.epoch_to}",
                            row=1, col=col)
    figure.update_annotations(font_size=12)
    figure.update_layout(width=max(420 * len(specs), 460), height=420, template="simple_white",
                         margin={"t": 60})
    return figure


def early_stop_share_figure(shares: pd.DataFrame, *, n_cols: int = 3) -> go.Figure:
    """Share of trials stopped early per parameter value; dashed line: share over all trials."""
    parameters = list(dict.fromkeys(shares["parameter"]))
    n_cols = max(1, min(n_cols, len(parameters)))
    n_rows = max(1, math.ceil(len(parameters) / n_cols))
    tests = shares.drop_duplicates("parameter").set_index("parameter")
    titles = [f"{parameter_name(p)} (p = {_fmt(tests.at[p, 'p_value'], digits=2, general=True)})"
              for p in parameters]
    figure = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles or None,
                           vertical_spacing=0.5 / n_rows if n_rows > 1 else 0.1)
    for i, parameter in enumerate(parameters):
        row, col = divmod(i, n_cols)
        sel = shares[shares["parameter"] == parameter]
        figure.add_trace(go.Bar(
            x=sel["value"], y=sel["share_stopped"], marker_color="#d62728", showlegend=False,
            text=[f"{s}/{n}" for s, n in zip(sel["n_stopped"], sel["n_trials"], strict=True)],
            textposition="outside",
            hovertemplate="%{x}: %{y:.0%} stopped (%{text})<extra></extra>",
        ), row=row + 1, col=col + 1)
        # Explicit width and opacity: the simple_white template draws shapes at 0.3 opacity.
        figure.add_hline(y=float(sel["overall_share"].iloc[0]), line_dash="dash",
                         line_color="black", line_width=1.5, opacity=1, layer="above",
                         row=row + 1, col=col + 1)
    figure.update_xaxes(type="category")
    figure.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="stopped early")
    figure.update_annotations(font_size=12)
    figure.update_layout(width=380 * n_cols, height=320 * n_rows, template="simple_white",
                         margin={"t": 60})
    return figure


def _fmt(value: float, *, digits: int = 2, general: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}" if general else f"{value:.{digits}f}"


# -- section -------------------------------------------------------------------------------

def early_stopping_section(
    study: StudyData, *, n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Section:
    """The early-stopping audit of one study: rung correlations and who gets stopped."""
    title = "Early-stopping audit (ASHA)"
    notes = []
    figures: list[Figure] = []
    tables: list[Table] = []
    per_trial = study.trials.drop_duplicates(TRIAL_ID, keep="last")
    excluded = per_trial[STOP_REASON].value_counts().drop(list(AUDITED), errors="ignore")
    if len(study.milestones) < 2:
        notes.append(f"ASHA had a single milestone (epoch {study.milestones[-1]}): no trial could "
                     "be stopped early, so there is nothing to audit.")
        return Section(title=title, notes=notes)
    pairs = rung_pairs(study)
    correlations = rung_correlations(study, n_bootstrap=n_bootstrap, seed=seed)
    pair_sources = Sources(study=study.name, trials=tuple(sorted(set(pairs[TRIAL_ID]))))
    winners = winner_ranks(study)
    notes.append(rung_verdict(correlations, winners))
    names = {epoch: study.metric_display if metric == study.metric else metric
             for epoch, (metric, _) in milestone_metrics(study).items()}
    if study.rung[0] != study.metric:
        notes.append(f"ASHA ranked its rungs on {study.rung[0]} (--rung-metric), so the audit "
                     f"reads that at the rungs and {study.metric_display} at the full budget; "
                     f"a rank correlation pairs better with better (a "
                     f"{'lower' if study.rung[1] == 'min' else 'higher'} {study.rung[0]} with "
                     f"a {'lower' if study.mode == 'min' else 'higher'} {study.metric_display}).")
    notes.append("Correlations to a later epoch use only the trials ASHA let continue: they "
                 "span a narrower range of scores than all trials (range restriction), which "
                 "pulls rho towards 0, so a low rho among survivors alone does not condemn a "
                 "rung. The table of the eventual best trial's rank uses every trial scored at "
                 "each milestone, the stopped ones at the rung they reached.")
    if not winners.empty:
        tables.append(Table(
            name="early_stop_winner_ranks",
            title="The eventual best trial at each earlier milestone, ranked among all "
                  "trials scored there (stopped ones included)",
            frame=winners, sources=Sources(study=study.name,
                                           trials=tuple(sorted(set(per_trial[TRIAL_ID]))))))
    consecutive = correlations[correlations["comparison"] == CONSECUTIVE]
    most_pairs = int(consecutive["n_trials"].max()) if len(consecutive) else 0
    if most_pairs >= MIN_SCATTER_TRIALS:
        figures.append(Figure(
            name="early_stop_rung_scatter",
            title="Scores of the same trials at consecutive ASHA milestones; "
                  "ρ: Spearman, interval: 95% Fisher z with the Bonett-Wright standard error",
            figure=rung_scatter_figure(pairs, correlations, names=names),
            sources=pair_sources,
        ))
    else:
        notes.append(f"Rung scatter not drawn: needs at least {MIN_SCATTER_TRIALS} trials "
                     f"scored at two consecutive milestones; this study has {most_pairs}.")
    computable = bool((correlations["n_trials"] >= MIN_SCATTER_TRIALS).any())
    if computable:
        tables.append(Table(
            name="early_stop_rung_correlations",
            title="Spearman correlation of scores between ASHA milestones (consecutive pairs, "
                  "and each milestone against the full budget for trials that completed it)",
            frame=correlations, sources=pair_sources,
        ))
    shares = stopped_early_by_value(study, seed=seed)
    audited = per_trial[per_trial[STOP_REASON].isin(AUDITED)]
    notes += [f"Who ASHA stops: {name} was {value} in every audited trial (not varied); not "
              "tested" for name, value in study.unvaried(audited).items()
              if not study.parameters[name].get("conditional")]
    if len(audited) < MIN_RANK_TRIALS:
        notes.append(f"Who ASHA stops, by parameter value: not computed; needs at least "
                     f"{MIN_RANK_TRIALS} completed or stopped trials; this study has "
                     f"{len(audited)}.")
    elif not shares.empty:
        share_sources = Sources(study=study.name, trials=tuple(sorted(audited[TRIAL_ID])))
        figures.append(Figure(
            name="early_stop_share",
            title="Share of trials ASHA stopped early per parameter value (dashed: all trials; "
                  "labels: stopped/trials; p: test of independence)",
            figure=early_stop_share_figure(shares), sources=share_sources,
        ))
        tables.append(Table(name="early_stop_tests",
                            title="Does early stopping depend on the parameter?",
                            frame=with_parameter_words(stopping_tests(shares)),
                            sources=share_sources,
                            float_format="{:.3g}"))
        tables.append(Table(name="early_stop_by_value",
                            title="Trials stopped early per parameter value",
                            frame=with_parameter_words(shares), sources=share_sources,
                            float_format="{:.3g}"))
    few = correlations[correlations["n_trials"] < MIN_RANK_TRIALS]
    if len(few) and computable:
        notes.append(f"{len(few)} of {len(correlations)} rank correlations rest on fewer than "
                     f"{MIN_RANK_TRIALS} trials (column caveat): they cannot tell a good rung "
                     "from a lucky one, and a rho of +-1 there has no interval.")
    notes.append("Rank correlations are Spearman's rho over the trials scored at both epochs; "
                 "ci_low/ci_high is a 95% Fisher z interval with the Bonett-Wright (2000) "
                 "standard error, boot_low/boot_high a bootstrap percentile interval over "
                 f"trials ({n_bootstrap} resamples). A low rho between early milestones means "
                 "ASHA's early decisions are close to random with respect to the final ranking.")
    notes.append("Stopping tests: Fisher's exact test on 2 x 2 tables, Pearson's chi-square when "
                 "all expected counts are at least 5, otherwise a permutation test of the "
                 "chi-square statistic; p_holm adjusts across parameters.")
    if len(excluded):
        notes.append("Not audited (not stopped by ASHA): " + ", ".join(
            f"{count} {reason}" for reason, count in excluded.items()) + " trial(s).")
    return Section(title=title, figures=figures, tables=tables, notes=notes)


