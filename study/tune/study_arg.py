"""The study a command works on: ``NAME`` (its directory is runs/NAME) or ``--study-dir``."""

from __future__ import annotations

import argparse
from pathlib import Path

from study.folder_format import STUDY_RECORD
from study.tune.plan import Plan, StudyError, load_plan, resolve_study_dir


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="study name (its directory is runs/NAME)")
    parser.add_argument("--study-dir", help="study directory, instead of runs/NAME")


def study_dir_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The study directory the arguments name (exits 2 through ``parser`` when neither is)."""
    if not args.name and not args.study_dir:
        parser.error("give the study NAME or --study-dir")
    return resolve_study_dir(name=args.name, study_dir=args.study_dir)


def study_plan(study_dir: Path) -> Plan:
    """The plan of the study in ``study_dir``.

    Raises:
        StudyError: no study there.
    """
    if not (study_dir / STUDY_RECORD).is_file():
        raise StudyError(f"no study at {study_dir} ({STUDY_RECORD} missing)")
    return load_plan(study_dir)
