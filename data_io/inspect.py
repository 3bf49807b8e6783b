"""`python -m data_io.inspect DIR [--json]`: what a CinC 2017 directory holds and what failed.

Parses and validates every record (no cache), then prints the records that loaded, the count
per class, the quarantined records with their reasons, the sampling rate and the length range.
Exits 0 whenever the directory loads, even with quarantined records; 2 with a one-line error
when it cannot be loaded at all.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from data_io.cinc2017 import CINC_FS_HZ, load_cinc2017
from data_io.errors import DatasetError
from data_io.records import EcgArrays


def summarize(arrays: EcgArrays) -> dict:
    """The JSON-ready summary printed by this command."""
    seconds = arrays.lengths / arrays.fs_hz
    return {
        "records": len(arrays),
        "classes": arrays.class_counts(),
        "quarantined": [q.to_dict() for q in arrays.quarantined],
        "fs_hz": arrays.fs_hz,
        "length_s": {
            "min": round(float(seconds.min()), 3),
            "median": round(float(np.median(seconds)), 3),
            "max": round(float(seconds.max()), 3),
        },
    }


def render_text(summary: dict, *, directory: str) -> str:
    """A short human-readable version of ``summary``."""
    classes = ", ".join(f"{k} {v}" for k, v in summary["classes"].items())
    length = summary["length_s"]
    lines = [
        f"{directory}: {summary['records']} records at {summary['fs_hz']:g} Hz ({classes})",
        f"length: min {length['min']:g} s, median {length['median']:g} s, "
        f"max {length['max']:g} s",
        f"quarantined: {len(summary['quarantined'])}",
    ]
    lines += [f"  {q['record']}: {q['reason']}" for q in summary["quarantined"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_io.inspect",
        description=(
            "Validate a PhysioNet/CinC 2017 directory (WFDB .hea + .mat per record and "
            "REFERENCE.csv) and report records per class, quarantined records with the "
            "reason, the sampling rate and the record lengths."
        ),
    )
    parser.add_argument(
        "directory", help="folder holding A00001.hea, A00001.mat, ... and REFERENCE.csv"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--fs-hz", type=float, default=CINC_FS_HZ,
        help="expected sampling rate; records at another rate are quarantined (default 300)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def _show_progress(*, quiet: bool, json_mode: bool) -> bool:
    # A progress bar in JSON mode only when stderr is a terminal: `2>&1` pipes stay parseable.
    return not quiet and (not json_mode or sys.stderr.isatty())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        arrays = load_cinc2017(
            args.directory,
            expected_fs_hz=args.fs_hz,
            progress=_show_progress(quiet=args.quiet, json_mode=args.json),
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(arrays)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_text(summary, directory=args.directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
