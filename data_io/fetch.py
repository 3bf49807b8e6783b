"""`python -m data_io.fetch {cinc2017,mitdb} --dest DIR`: download a PhysioNet data set with wfdb.

The record list comes from the database's RECORDS file and the files are fetched with
`wfdb.dl_files` (files already present with the right size are skipped, so an interrupted
download can be re-run). Without a network the command fails within seconds and says how to
place the files by hand. `--mirror` points wfdb at another PhysioNet-shaped server (a local
mirror, or the tests' offline server).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from importlib import resources
from pathlib import Path

import requests
import wfdb
from wfdb.io import download

PHYSIONET_URL = "https://physionet.org"
PROBE_TIMEOUT_S = 10.0


class FetchError(RuntimeError):
    """The download could not start or finish; the message says what to do instead."""


def sources() -> dict:
    """Where each supported data set lives on PhysioNet (data_io/physionet_sources.json)."""
    text = resources.files("data_io").joinpath("physionet_sources.json").read_text()
    return json.loads(text)


def fetch(*, dataset: str, dest: Path, mirror: str = PHYSIONET_URL) -> list[str]:
    """Download ``dataset`` into ``dest`` (flat: every record's files side by side).

    Returns:
        The record names downloaded.

    Raises:
        FetchError: the server cannot be reached or a download fails.
    """
    source = sources()[dataset]
    _use_mirror(mirror)
    _probe(mirror, manual=source["manual"].replace("DEST", str(dest)))
    try:
        version = download.get_version(source["database"])
        records_dir = posixpath.join(source["database"], version, source["records_dir"]).rstrip("/")
        records = download.get_record_list(records_dir)
        prefix = source["records_dir"]
        files = [
            posixpath.join(prefix, record + ext) if prefix else record + ext
            for record in records
            for ext in source["signal_extensions"]
        ]
        if source["label_file"]:
            files.append(source["label_file"])
        dest.mkdir(parents=True, exist_ok=True)
        wfdb.dl_files(source["database"], str(dest), files, keep_subdirs=False)
    except Exception as exc:  # wfdb surfaces HTTP and parsing failures as many types
        raise FetchError(f"downloading {dataset} from {mirror} failed: {exc}") from exc
    if source["label_file_as"]:
        (dest / source["label_file"]).replace(dest / source["label_file_as"])
    return [posixpath.basename(r) for r in records]


def _use_mirror(mirror: str) -> None:
    # wfdb keeps its server in module attributes; point both at the chosen server.
    base = mirror.rstrip("/")
    wfdb.set_db_index_url(f"{base}/files/")
    download.PN_CONTENT_URL = f"{base}/content/"


def _probe(mirror: str, *, manual: str) -> None:
    try:
        requests.head(mirror, timeout=PROBE_TIMEOUT_S, allow_redirects=True)
    except requests.RequestException as exc:
        raise FetchError(
            f"cannot reach {mirror} ({type(exc).__name__}); no download was started. "
            f"Without network access, {manual}"
        ) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_io.fetch",
        description="Download a PhysioNet data set (CinC 2017 training set or MIT-BIH) with wfdb.",
    )
    parser.add_argument("dataset", choices=sorted(sources()), help="data set to download")
    parser.add_argument("--dest", required=True, type=Path, help="directory to download into")
    parser.add_argument(
        "--mirror", default=PHYSIONET_URL,
        help=f"PhysioNet server or mirror with /content and /files trees (default {PHYSIONET_URL})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records = fetch(dataset=args.dataset, dest=args.dest, mirror=args.mirror)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"downloaded {len(records)} {args.dataset} records into {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
