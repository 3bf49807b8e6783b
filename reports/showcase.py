"""`python -m reports.showcase --study DIR`: a finished study's headline tables as Markdown,
for a page such as docs/showcase.md that quotes a committed study (`bench/results/showcase/`).

The tables are the report's own (summary, leaderboard with the baseline rows, paired
cross-validation tests), so the page and the committed files cannot disagree: a test renders
them again from the files and looks for them in the page. The wall-time row is left out: it
is read from file times, which a clone does not keep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from reports.cv_tables import paired_tests
from reports.overview import leaderboard, study_summary
from reports.study_data import ReportError, StudyData, load_study

LEADERBOARD_ROWS = 5
CLONE_DEPENDENT_ROWS = ("Wall time",)
"""Summary rows computed from file modification times (not kept by git)."""


def summary_markdown(study: StudyData) -> str:
    summary = study_summary(study)
    summary = summary[~summary["Item"].isin(CLONE_DEPENDENT_ROWS)]
    return summary.to_markdown(index=False)


def leaderboard_markdown(study: StudyData) -> str:
    board = leaderboard(study, n_rows=LEADERBOARD_ROWS)
    board = board.astype(object).where(board.notna(), None)  # NaN (no score) as "–"
    return board.to_markdown(index=False, floatfmt=".3f", missingval="–")


def paired_markdown(study: StudyData) -> str:
    """Each other cross-validated candidate (the baseline included) against the best, paired
    by fold: mean difference, corrected resampled t-test p and the naive one."""
    if study.cv is None:
        return "No cross-validation in this study."
    tests = paired_tests(study)
    table = pd.DataFrame({
        "Candidate": tests["candidate"], "Against": tests["best"],
        "Folds": tests["n_folds"], "Mean difference": tests["mean_difference"],
        "p (corrected)": tests["p_value"], "p (naive)": tests["p_naive"]})
    return table.to_markdown(index=False, floatfmt=".3f", missingval="–")


def showcase_markdown(directory: str | Path) -> str:
    """The three tables of ``directory``'s study, each under a bold caption."""
    study = load_study(directory)
    return "\n\n".join([
        f"**Study `{study.name}`: what it ran**\n\n{summary_markdown(study)}",
        f"**Leaderboard (search fold, cross-validation, test set)**\n\n"
        f"{leaderboard_markdown(study)}",
        f"**Paired cross-validation: each candidate minus the best, per fold**\n\n"
        f"{paired_markdown(study)}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True, metavar="DIR",
                        help="a study directory, e.g. bench/results/showcase/cnn")
    args = parser.parse_args(argv)
    try:
        print(showcase_markdown(args.study))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
