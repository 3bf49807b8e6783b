"""`python -m reports.build`: the publication report of one or more finished studies.

Reads only study directories (written by `python -m study.run`) and writes, under ``--out``:
`index.html` (self-contained and offline: plotly.js is inlined once), `figures/*.pdf` and
`figures/*.svg`, `tables/*.csv` and `tables/*.tex` (booktabs), and `manifest.json` naming the
study and trials behind every figure and table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from reports.artifact import Section
from reports.best_config import best_config_section
from reports.bootstrap import DEFAULT_RESAMPLES
from reports.curves import history_section, learning_curves_section
from reports.cv_tables import cv_section
from reports.early_stopping import early_stopping_section
from reports.explanation_sanity import sanity_section
from reports.explanation_scores import explanation_scores_section
from reports.export import (
    STATIC_FORMATS,
    Manifest,
    render_index,
    static_exporter,
    write_figure,
    write_table,
)
from reports.galleries import galleries_section
from reports.importance import importance_section
from reports.marginals import marginals_section
from reports.naming import slug
from reports.overview import leaderboard_section, summary_section
from reports.per_class import per_class_section
from reports.publication_figures import publication_section
from reports.published import published_section
from reports.study_data import ReportError, StudyData, find_latest_study, load_study


def analyses(
    *, reference_dir: Path | None = None, n_bootstrap: int = DEFAULT_RESAMPLES
) -> tuple[tuple[str, Callable[[StudyData], Section]], ...]:
    """Every analysis of a study, in report order: the answer first (summary, leaderboard,
    published results beside it, learning curves, optimisation history, the best
    configuration's per-class scores), then the analyses behind it. Published tables come
    from ``reference_dir`` (default ``<repo>/../shared/reference-results``); bootstrap
    intervals use ``n_bootstrap`` resamples."""
    return (
        ("summary", summary_section),
        ("leaderboard", leaderboard_section),
        ("published results", partial(published_section, reference_dir=reference_dir)),
        ("learning curves", learning_curves_section),
        ("optimisation history", history_section),
        ("best configuration", best_config_section),
        ("parameter importance by budget", partial(importance_section, n_bootstrap=n_bootstrap)),
        ("marginal effects and interactions",
         partial(marginals_section, n_bootstrap=n_bootstrap)),
        ("early-stopping audit", partial(early_stopping_section, n_bootstrap=n_bootstrap)),
        ("per-class scores", per_class_section),
        ("cross-validation", cv_section),
        ("explanation galleries", galleries_section),
        ("explanation scores", explanation_scores_section),
        ("explanation sanity checks", sanity_section),
        ("explanation figures for publication", publication_section),
    )


ANALYSES = analyses()
SEARCH_ANALYSES = ("parameter importance by budget", "marginal effects and interactions",
                   "early-stopping audit")
"""Analyses of a search; a study of fixed configurations (``--presets``) gets a note instead."""
DEFAULT_RUNS = Path("runs")
DEFAULT_OUT = Path("reports/_build")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports.build",
        description=(
            "Build the report of finished studies. It opens with the answer: a summary "
            "(trials, epochs and hours spent), a leaderboard (search-fold, cross-validation "
            "and test scores), published results beside it, learning curves, the "
            "optimisation history and the best configuration's per-class scores; then "
            "parameter importance per ASHA budget "
            "(fANOVA and PED-ANOVA with bootstrap intervals), marginal effects and "
            "interactions, an audit of the early stopping, cross-validation tables with "
            "corrected resampled t-tests, explanation galleries and explanation scores. "
            "PDF/SVG export needs Chrome or Chromium (Debian/Ubuntu: apt-get install "
            "chromium); without it the HTML report is still written."
        ),
    )
    parser.add_argument("--study", action="append", type=Path, metavar="DIR",
                        help=f"a study directory (repeatable; default: the latest under "
                             f"{DEFAULT_RUNS}/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory, replaced on each build (default {DEFAULT_OUT})")
    parser.add_argument("--reference-results", type=Path, metavar="DIR",
                        help="folder of published result tables (CSV) shown beside the "
                             "study's results (default: ../shared/reference-results beside "
                             "the clone)")
    parser.add_argument("--bootstrap", type=_resamples, default=DEFAULT_RESAMPLES,
                        metavar="N",
                        help=f"bootstrap resamples per interval (default {DEFAULT_RESAMPLES}; "
                             "more gives steadier interval bounds, and importance refits "
                             "cost time in proportion)")
    parser.add_argument("--no-static", action="store_true",
                        help="skip PDF/SVG export (HTML, CSV and LaTeX only)")
    parser.add_argument("--png", action="store_true",
                        help="also export every figure as PNG (for Markdown pages such as "
                             "docs/showcase.md)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the figures and tables to each study's W&B group")
    return parser


def _prefixed(section: Section, *, prefix: str) -> Section:
    """The section with every figure and table name prefixed by the study, so reports on
    several studies never overwrite each other's files."""
    return replace(
        section,
        figures=[replace(f, name=f"{prefix}-{f.name}") for f in section.figures],
        tables=[replace(t, name=f"{prefix}-{t.name}") for t in section.tables],
    )


def _resamples(text: str) -> int:
    """``--bootstrap``: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of "
                                         "resamples")
    return value


def study_sections(study: StudyData, *, reference_dir: Path | None = None,
                   n_bootstrap: int = DEFAULT_RESAMPLES) -> list[Section]:
    """Every analysis of one study; an analysis that fails becomes a note, not a crash."""
    sections = []
    for title, analysis in analyses(reference_dir=reference_dir, n_bootstrap=n_bootstrap):
        print(f"  {study.name}: {title}", file=sys.stderr, flush=True)
        if study.fixed_configurations and title in SEARCH_ANALYSES:
            sections.append(Section(title=title.capitalize(), notes=[
                f"Not computed: this study trained fixed configurations "
                f"({', '.join(study.record['plan']['presets'])}) and searched nothing."]))
            continue
        try:
            sections.append(_prefixed(analysis(study), prefix=slug(study.name)))
        except Exception as exc:  # one broken analysis must not hide the others
            message = f"{title} could not be computed: {type(exc).__name__}: {exc}"
            print(f"warning: {message}", file=sys.stderr)
            sections.append(Section(title=title.capitalize(), notes=[message]))
    return sections


def build(
    studies: list[Path], *, out: Path, static: bool, reference_dir: Path | None = None,
    n_bootstrap: int = DEFAULT_RESAMPLES, formats: tuple[str, ...] = STATIC_FORMATS,
) -> tuple[Manifest, list[tuple[str, list[Section]]]]:
    """Write the report of ``studies`` into ``out`` (replaced); returns the manifest and the
    sections it drew."""
    loaded = [load_study(path) for path in studies]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = Manifest(studies=[s.name for s in loaded])
    all_sections = [(study.name, study_sections(study, reference_dir=reference_dir,
                                                n_bootstrap=n_bootstrap))
                    for study in loaded]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        with static_exporter(static) as can_export:
            manifest.static_export = can_export
            for _, sections in all_sections:
                for section in sections:
                    for figure in section.figures:
                        manifest.figures.append(write_figure(figure, out=out,
                                                             static=can_export,
                                                             formats=formats))
                    manifest.tables.extend(write_table(t, out=out) for t in section.tables)
    manifest.warnings = sorted({str(w.message) for w in caught if "static export" in
                                str(w.message)})
    for message in manifest.warnings:
        print(f"warning: {message}", file=sys.stderr)
    (out / "index.html").write_text(render_index(all_sections, manifest=manifest))
    (out / "manifest.json").write_text(manifest.to_json())
    return manifest, all_sections


def log_to_wandb(
    all_sections: list[tuple[str, list[Section]]], *, modes: dict[str, str]
) -> None:
    """Log every figure (interactive) and table of each study to its W&B group, in the W&B
    mode the study itself used (online, offline or disabled)."""
    import wandb

    for study, sections in all_sections:
        run = wandb.init(project="ecg-study", group=study, job_type="report",
                         name=f"{study}-report", mode=modes.get(study, "offline"))
        for section in sections:
            for figure in section.figures:
                run.log({f"report/{figure.name}": wandb.Plotly(figure.figure)})
            for table in section.tables:
                run.log({f"report/{table.name}": wandb.Table(dataframe=table.frame)})
        run.finish()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        studies = args.study or [find_latest_study(DEFAULT_RUNS)]
        print(f"building the report of {', '.join(str(s) for s in studies)} into {args.out} "
              f"({args.bootstrap} bootstrap resamples per interval; the importance refits "
              "fANOVA and PED-ANOVA that often per budget, the slowest part: --bootstrap N "
              "sets it)", file=sys.stderr)
        manifest, sections = build(studies, out=args.out, static=not args.no_static,
                                   reference_dir=args.reference_results,
                                   n_bootstrap=args.bootstrap,
                                   formats=STATIC_FORMATS + (("png",) if args.png else ()))
        if args.wandb:
            modes = {s.name: s.record["plan"].get("wandb_mode", "offline")
                     for s in map(load_study, studies)}
            log_to_wandb(sections, modes=modes)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {args.out / 'index.html'} ({len(manifest.figures)} figures, "
          f"{len(manifest.tables)} tables{'' if manifest.static_export else ', HTML only'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
