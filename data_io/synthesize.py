"""Command line: write a synthetic data set with ground truth in the CinC 2017 file layout,
or (``--format mitdb``) in the MIT-BIH Arrhythmia Database layout.

    python -m data_io.synthesize --out data/synthetic --records 500 --seed 0
    python -m data_io.synthesize --format mitdb --out data/mb --records 12 --seed 1

The directory then reads like the challenge data (`<id>.mat`, `<id>.hea`, REFERENCE.csv,
RECORDS) plus MASKS.npz (per-sample abnormal-beat masks by record id) and SYNTHETIC.json (how
it was made). SYNTHETIC.json is written first and marked complete last, so a directory holding
one is known to be ours and may be overwritten by a later run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from data_io.atomic import write_text_atomic
from data_io.cinc_format import write_record, write_reference
from data_io.cli_types import whole_number
from data_io.datasets import load_dataset
from data_io.synthetic import (
    GENERATOR_VERSION,
    MASKS_FILE,
    MIN_FS_HZ,
    iter_records,
    load_params,
    mask_writer,
    normalised_weights,
    to_digital,
)
from data_io.synthetic_mitdb import write_mitdb

MANIFEST_FILE = "SYNTHETIC.json"
ADC_GAIN = 1000.0
"""ADC units per mV, as in the CinC 2017 files."""

_PROGRESS_MIN_RECORDS = 200
_OWN_RECORD_FILE = re.compile(r"S\d{5,}\.(hea|mat)")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for unusable arguments)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return exc.code if isinstance(exc.code, int) else 2
    problem = _output_problem(args.out)
    if problem is not None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    if args.format == "mitdb":
        return _write_mitdb(args)
    classes = tuple(load_params()["class_weights"])
    weights = dict.fromkeys(classes, 1.0) if args.balanced else None
    counts = write_dataset(
        out=args.out,
        n_records=args.records,
        seed=args.seed,
        fs_hz=args.fs_hz,
        class_weights=weights,
    )
    listed = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(
        f"wrote {args.records} records ({listed}) at {args.fs_hz:g} Hz, seed {args.seed}, "
        f"to {args.out}"
    )
    return 0


def _write_mitdb(args: argparse.Namespace) -> int:
    try:
        counts = write_mitdb(out=args.out, n_records=args.records, seed=args.seed)
    except ValueError as exc:
        print(f"python -m data_io.synthesize: error: {exc}", file=sys.stderr)
        return 2
    listed = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
    print(f"wrote {args.records} MIT-BIH-format records (beats: {listed}), seed {args.seed}, "
          f"to {args.out}")
    return 0


def write_dataset(
    *,
    out: str | os.PathLike[str],
    n_records: int,
    seed: int,
    fs_hz: float,
    class_weights: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Generate ``n_records`` records into ``out`` (created if needed); returns class counts.

    Record files of an earlier synthetic run that the new run does not rewrite are removed,
    so the directory never holds records that RECORDS does not list.
    """
    out = Path(out)
    params = load_params()
    classes, probs = normalised_weights(
        params["class_weights"] if class_weights is None else class_weights
    )
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "params_sha256": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
        "seed": seed,
        "n_records": n_records,
        "fs_hz": fs_hz,
        "adc_gain": ADC_GAIN,
        "class_weights": dict(zip(classes, probs.tolist(), strict=True)),
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, {**manifest, "complete": False})
    labels: dict[str, str] = {}
    records = iter_records(
        n_records=n_records, seed=seed, fs_hz=fs_hz, class_weights=class_weights, params=params
    )
    progress = tqdm(
        records,
        total=n_records,
        desc="synthesize",
        unit="rec",
        file=sys.stderr,
        disable=None if n_records >= _PROGRESS_MIN_RECORDS else True,
    )
    with mask_writer(out / MASKS_FILE) as add_mask:
        for record_id, record in progress:
            digital = to_digital(record.signal_mv, adc_gain=ADC_GAIN)
            write_record(
                directory=out,
                record_id=record_id,
                digital=digital,
                fs_hz=fs_hz,
                adc_gain=ADC_GAIN,
            )
            add_mask(record_id, record.abnormal_mask)
            labels[record_id] = record.label
    _remove_stale_records(out, keep=set(labels))
    write_reference(directory=out, labels=labels)
    counts = {name: sum(label == name for label in labels.values()) for name in classes}
    _write_manifest(out, {**manifest, "class_counts": counts, "complete": True})
    return counts


def _parser() -> argparse.ArgumentParser:
    cinc_like = ", ".join(f"{k} {v:g}" for k, v in load_params()["class_weights"].items())
    parser = argparse.ArgumentParser(
        prog="python -m data_io.synthesize",
        description=(
            "Write synthetic single-lead ECG records with known ground truth, laid out like "
            "the PhysioNet/CinC 2017 data (<id>.mat and <id>.hea files, REFERENCE.csv, RECORDS), "
            "so any "
            "pipeline that reads the challenge data can be tested on them. Classes: N normal "
            "sinus rhythm, A atrial fibrillation, O other (premature beats), ~ noisy. Also "
            "writes MASKS.npz (per-sample masks of abnormal beats) and SYNTHETIC.json."
        ),
    )
    parser.add_argument(
        "--format",
        choices=("cinc", "mitdb"),
        default="cinc",
        help="cinc: CinC 2017 layout (default); mitdb: MIT-BIH layout (two leads at 360 Hz, "
             "WFDB .hea/.dat/.atr with beats of the AAMI classes, one 'patient' per record, "
             "named after real MIT-BIH records; --fs-hz and --balanced do not apply)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output directory: new, empty, or an earlier synthetic output",
    )
    parser.add_argument(
        "--records",
        type=whole_number(at_least=1),
        required=True,
        help="number of records to write (at least 1)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="data set seed; record i depends only on (seed, i) (default 0)",
    )
    source_fs_hz = float(load_dataset("synthetic").facts["source_fs_hz"])
    parser.add_argument(
        "--fs-hz",
        type=_sampling_rate,
        default=source_fs_hz,
        help=f"sampling rate in Hz, at least {MIN_FS_HZ:g} (default {source_fs_hz:g}, the "
             "source rate of the synthetic data set's records)",
    )
    parser.add_argument(
        "--balanced",
        action="store_true",
        help=f"draw the four classes equally often instead of CinC-like ({cinc_like})",
    )
    return parser


def _sampling_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= MIN_FS_HZ:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be at least {MIN_FS_HZ:g} Hz, got {text}")
    return value


def _output_problem(out: Path) -> str | None:
    """Why ``out`` cannot take the data set, or None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        return (
            f"--out {out} is a non-empty directory without {MANIFEST_FILE}, so it is not an "
            "earlier synthetic output; choose a new or empty directory"
        )
    return None


def _remove_stale_records(out: Path, *, keep: set[str]) -> None:
    for path in out.iterdir():
        if _OWN_RECORD_FILE.fullmatch(path.name) and path.stem not in keep:
            path.unlink()


def _write_manifest(out: Path, manifest: dict[str, object]) -> None:
    write_text_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
