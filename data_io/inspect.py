"""`python -m data_io.inspect DIR [--dataset NAME] [--json]`: what a data directory holds and
what failed.

Parses and validates every record (no cache), then prints the records that loaded, the count
per class, the quarantined records with their reasons, the sampling rate and the length range
(and, for data sets of fixed windows, the items and the window). Exits 0 whenever the
directory loads, even with quarantined records; 2 with a one-line error when it cannot be
loaded at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from types import MappingProxyType

import numpy as np

from data_io.datasets import Dataset, dataset_names, load_dataset
from data_io.errors import DatasetError
from data_io.records import EcgArrays


def summarize(arrays: EcgArrays, *, dataset: Dataset | None = None) -> dict:
    """The JSON-ready summary printed by this command.

    ``records`` counts the groups (records, patients) that contributed items; for a data set
    whose items are windows of records (``input_samples`` set) the summary also names the
    data set and gives ``items`` and ``window`` (samples per item).
    """
    seconds = arrays.lengths / arrays.fs_hz
    groups = ({dataset.group_of(i) for i in arrays.record_ids} if dataset is not None
              else set(arrays.record_ids))
    summary = {
        "records": len(groups),
        "classes": arrays.class_counts(),
        "quarantined": [q.to_dict() for q in arrays.quarantined],
        "fs_hz": arrays.fs_hz,
        "leads": arrays.n_leads,
        "length_s": {
            "min": round(float(seconds.min()), 3),
            "median": round(float(np.median(seconds)), 3),
            "max": round(float(seconds.max()), 3),
        },
    }
    if dataset is not None and dataset.facts.get("input_samples"):
        summary = {"dataset": dataset.name, **summary, "items": len(arrays),
                   "window": int(dataset.facts["input_samples"])}
    return summary


def render_text(summary: dict, *, directory: str) -> str:
    """A short human-readable version of ``summary``."""
    classes = ", ".join(f"{k} {v}" for k, v in summary["classes"].items())
    length = summary["length_s"]
    items = (f", {summary['items']} items of {summary['window']} samples"
             if "items" in summary else "")
    leads = f", {summary['leads']} leads" if summary["leads"] > 1 else ""
    lines = [
        f"{directory}: {summary['records']} records{items} at {summary['fs_hz']:g} Hz{leads} "
        f"({classes})",
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
            "Validate a data directory (default: PhysioNet/CinC 2017, WFDB .hea + .mat per "
            "record and REFERENCE.csv; --dataset mitdb-beats or mitdb-pvc-apb: the MIT-BIH "
            "Arrhythmia Database, .hea/.dat/.atr; --dataset numpy-records: your own .npy "
            "records, labels.csv and records.json, see docs/own-data.md) and report records "
            "and items per class, quarantined records with the reason, the sampling rate, the "
            "leads and the lengths."
        ),
    )
    parser.add_argument(
        "directory", help="the data folder, e.g. one holding A00001.hea, A00001.mat, ... and "
                          "REFERENCE.csv"
    )
    parser.add_argument("--dataset", choices=dataset_names(), default="cinc2017", metavar="NAME",
                        help=f"data set: {', '.join(dataset_names())} (default cinc2017)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--fs-hz", type=float,
        help="expected source sampling rate, for data sets that check it (CinC 2017: records "
             "at another rate are quarantined; default: the data set's, 300 for CinC 2017; "
             "numpy-records read theirs from records.json)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def _show_progress(*, quiet: bool, json_mode: bool) -> bool:
    # A progress bar in JSON mode only when stderr is a terminal: `2>&1` pipes stay parseable.
    return not quiet and (not json_mode or sys.stderr.isatty())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load_dataset(args.dataset)
    if args.fs_hz is not None:
        dataset = replace(dataset, facts=MappingProxyType(
            {**dataset.facts, "source_fs_hz": args.fs_hz}))
    try:
        dataset.check(args.directory)
        arrays = dataset.load(
            args.directory, options=dataset.resolve_options({}),
            progress=_show_progress(quiet=args.quiet, json_mode=args.json),
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(arrays, dataset=dataset)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_text(summary, directory=args.directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
