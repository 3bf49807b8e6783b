"""`stage_times.json`: each stage's wall seconds, added up over a study's runs."""

from __future__ import annotations

import pytest

from study.tune.stage_times import add_stage_time, read_stage_times, timed_stage


def test_a_resumed_stage_adds_its_seconds(tmp_path):
    assert read_stage_times(tmp_path) == {}
    add_stage_time(tmp_path, stage="search", seconds=100.0)
    add_stage_time(tmp_path, stage="search", seconds=20.5)  # the run after --resume
    add_stage_time(tmp_path, stage="final", seconds=7.0)
    assert read_stage_times(tmp_path) == {"search": 120.5, "final": 7.0}


def test_a_stage_cut_short_by_an_error_still_counts(tmp_path):
    with pytest.raises(OSError), timed_stage(tmp_path, "cv"):
        raise OSError("disk full")
    assert set(read_stage_times(tmp_path)) == {"cv"}


def test_unknown_stages_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'gallery'"):
        add_stage_time(tmp_path, stage="gallery", seconds=1.0)
