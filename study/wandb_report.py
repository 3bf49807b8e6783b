"""`python -m study.wandb_report NAME`: a study's report as one W&B run beside its trial runs.

`python -m reports.build` writes the report as files (it reads study directories and never
logs anywhere). This command logs the part of it that belongs to study NAME as a W&B run in
the study's group (job type ``report``): every figure as an interactive plotly chart (from the
report's plotly JSON), every table as a W&B table (from its CSV), and the offline
`index.html`. Without a W&B key the run is written offline under the study directory, for
`wandb sync`. Exit status: 0 logged, 2 bad input (one `error:` line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from study.tune.plan import Plan, StudyError
from study.tune.study_arg import add_study_arguments, study_dir_of, study_plan
from study.tune.wandb_mode import MODES, resolve_mode

PROJECT = "ecg-study"
"""The W&B project of every study (`study.tune.tuning` logs the trials there)."""
DEFAULT_REPORT = Path("reports/_build")
JOB_TYPE = "report"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.wandb_report",
        description="Log a study's report (built by python -m reports.build) as one W&B run "
                    "in the study's group, beside its trial runs: figures as interactive "
                    "charts, tables as W&B tables, and the offline index.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_study_arguments(p)
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                   help="the report directory python -m reports.build wrote")
    p.add_argument("--wandb-mode", choices=MODES,
                   help="default: online when logged in to W&B, else offline")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    study_dir = study_dir_of(parser, args)
    try:
        plan = study_plan(study_dir)
        manifest = _load_manifest(args.report, study=plan.name)
        run_dir = log_report(plan=plan, report=args.report.resolve(), manifest=manifest,
                             mode=resolve_mode(args.wandb_mode))
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"logged the report of study {plan.name} to W&B run {plan.name}-report "
          f"(group {plan.name}, job type {JOB_TYPE}): {run_dir}")
    if "offline-run-" in str(run_dir):
        print(f"upload it with `wandb sync {run_dir}`")
    return 0


def _load_manifest(report: Path, *, study: str) -> dict[str, Any]:
    path = report / "manifest.json"
    if not path.is_file():
        raise StudyError(f"no report at {report} ({path.name} missing); build it with "
                         f"`python -m reports.build --out {report}`")
    manifest = json.loads(path.read_text())
    if study not in manifest.get("studies", []):
        raise StudyError(f"the report at {report} is of {', '.join(manifest['studies'])}, "
                         f"not of study {study}")
    return manifest


def report_items(*, report: Path, manifest: dict[str, Any], study: str) -> dict[str, Any]:
    """W&B key -> object: ``figures/NAME`` plotly charts, ``tables/NAME`` tables of
    ``study``, and ``report/index`` (the whole offline page)."""
    import pandas as pd
    import plotly.io as pio
    import wandb

    items: dict[str, Any] = {}
    for entry in manifest["figures"]:
        if entry["study"] == study and "json" in entry["files"]:
            figure = pio.read_json(report / entry["files"]["json"])
            items[f"figures/{entry['name']}"] = wandb.Plotly(figure)
    for entry in manifest["tables"]:
        if entry["study"] == study:
            frame = pd.read_csv(report / entry["files"]["csv"])
            items[f"tables/{entry['name']}"] = wandb.Table(dataframe=frame)
    items["report/index"] = wandb.Html(str(report / "index.html"), inject=False)
    return items


def log_report(*, plan: Plan, report: Path, manifest: dict[str, Any], mode: str) -> Path:
    """Log the report as one run; returns the run's local directory."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    items = report_items(report=report, manifest=manifest, study=plan.name)
    run = wandb.init(
        project=PROJECT, group=plan.name, job_type=JOB_TYPE, name=f"{plan.name}-report",
        tags=[plan.space, plan.dataset, JOB_TYPE], dir=plan.study_dir, mode=mode,
        config={"study": plan.name, "space": plan.space, "dataset": plan.dataset,
                "optuna_study": plan.optuna_study_name, "report": str(report)},
    )
    run.log(items, step=0)
    run.summary.update({"report/figures": sum(k.startswith("figures/") for k in items),
                        "report/tables": sum(k.startswith("tables/") for k in items)})
    run_dir = Path(run.dir).parent  # <dir>/wandb/<offline-run-...>/files -> the run directory
    run.finish()
    return run_dir


if __name__ == "__main__":
    raise SystemExit(main())
