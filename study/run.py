"""`python -m study.run`: a hyperparameter study with Ray Tune, Optuna (TPE) and ASHA.

Starts (or joins, with ``--address``) a Ray cluster, samples configurations from a search
space with Optuna's TPE, trains each on the chosen data set (`data_io.datasets`, whose metric
ASHA and the searcher optimise) with the single-trial trainer, lets ASHA stop the weak
ones, logs every trial to W&B and writes everything a report needs into one study directory:
`study.json`, `folds.csv`, the Optuna storage, Ray Tune's experiment, `trials.parquet` (one
row per trial and epoch), `best_config.json`, and predictions plus explanation arrays of the
best trials (with ``--mitdb-dir`` also on MIT-BIH windows with annotated abnormal beats).
``--resume`` continues a study whose driver was killed. The flags live in `study.tune.cli`,
the listings in `study.tune.listing`, the study itself in `study.tune.driver` (imported only
when a study runs, so --help and the listings answer in about a second).

Exit status: 0 done, 2 bad input, 3 the storage filled up or turned read-only mid-study (one
`error:` line names the path and the problem; `--resume` continues once it is writable again).
"""

from __future__ import annotations

from study.tune.cli import build_parser
from study.tune.listing import answer_listing


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    listed = answer_listing(args)
    if listed is not None:
        return listed
    if not args.space and not args.presets and not args.resume:
        parser.error("--space (or --presets) is required (see --list-spaces)")
    from study.tune.driver import run_command  # Ray, torch and Optuna: only for a study

    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
