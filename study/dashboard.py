"""`python -m study.dashboard NAME`: optuna-dashboard on a study's Optuna storage.

Serves the storage a study wrote (its SQLite file, or the team's PostgreSQL database) with the
learning curve of every trial, PRUNED trials included, and their ``tune_trial_id`` / stop
reason / rung as user attributes. Needs the ``dashboard`` extra
(``pip install -e ".[dashboard]"``). Exit status: 0 stopped with Ctrl-C, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from study.tune.optuna_storage import masked, open_storage
from study.tune.plan import StudyError
from study.tune.study_arg import add_study_arguments, study_dir_of, study_plan

INSTALL_HINT = 'pip install -e ".[dashboard]"'


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.dashboard",
        description="Start optuna-dashboard on the Optuna storage of a study (runs/NAME, or "
                    "--study-dir) and print the address of the study's page.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_study_arguments(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 to let other machines in: the "
                        "dashboard has no login)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    study_dir = study_dir_of(parser, args)
    try:
        import optuna_dashboard
    except ImportError:
        print(f"error: optuna-dashboard is not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        plan = study_plan(study_dir)
        storage = open_storage(plan.optuna_storage)
        study_id = storage.get_study_id_from_name(plan.optuna_study_name)
    except (StudyError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"optuna-dashboard on {masked(plan.optuna_storage)}: study {plan.name} is at "
          f"http://{args.host}:{args.port}/dashboard/studies/{study_id} (Ctrl-C stops it)",
          flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
