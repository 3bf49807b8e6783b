"""Synthetic MIT-BIH-format directories (`data_io.synthetic_mitdb`) for the data-set tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data_io.synthetic_mitdb import write_mitdb


@pytest.fixture(scope="session")
def mitdb_source(tmp_path_factory) -> Path:
    """Six synthetic records (DS1 names), written once per session; copy before damaging."""
    directory = tmp_path_factory.mktemp("mitdb-source")
    write_mitdb(out=directory, n_records=6, seed=3)
    return directory


@pytest.fixture
def mitdb_dir(mitdb_source, tmp_path) -> Path:
    """A private copy of `mitdb_source` that a test may damage."""
    directory = tmp_path / "mitdb"
    shutil.copytree(mitdb_source, directory)
    return directory
