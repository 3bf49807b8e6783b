"""Fixtures shared by every test package: where the optional real data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_cinc_dir() -> Path:
    """The 3,000 real CinC 2017 records beside the clone (skips when absent)."""
    path = SHARED_DATA / "cinc2017"
    if not (path / "REFERENCE.csv").is_file():
        pytest.skip(f"real CinC 2017 data not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_mitdb_dir() -> Path:
    """MIT-BIH record 100 beside the clone (skips when absent)."""
    path = SHARED_DATA / "mitdb"
    if not (path / "100.hea").is_file():
        pytest.skip(f"MIT-BIH data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own data cache, never the user's."""
    monkeypatch.setenv("ECG_STUDY_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
