"""`reports.showcase`: a study's headline tables as Markdown, and docs/showcase.md quoting the
committed showcase studies exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.showcase import main, showcase_markdown

ROOT = Path(__file__).resolve().parents[2]
SHOWCASE = ROOT / "bench" / "results" / "showcase"
COMMITTED = sorted(p for p in SHOWCASE.glob("*") if (p / "study.json").is_file())


def test_the_tables_of_a_real_study_with_a_baseline(finished_study, capsys):
    study_dir, _ = finished_study
    assert main(["--study", str(study_dir)]) == 0
    text = capsys.readouterr().out
    assert text.strip() == showcase_markdown(study_dir).strip()
    summary, board, paired = text.split("\n\n**")
    assert "| Trials " in summary and "Wall time" not in summary
    board_rows = [line for line in board.splitlines() if line.startswith("|")]
    assert "| Rank " in board_rows[0] and "CinC F1 test" in board_rows[0]
    assert board_rows[-1].split("|")[1].strip() == "baseline"
    assert "cnn4_gap" in board_rows[-1]
    paired_rows = [line for line in paired.splitlines() if line.startswith("|")][2:]
    # two candidates (the best search configuration and the baseline): one paired row,
    # whichever of the two the cross-validation ranked first
    assert len(paired_rows) == 1 and "cnn4_gap" in paired_rows[0]


def test_a_missing_study_is_one_error_line(tmp_path, capsys):
    assert main(["--study", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_showcase_studies_are_committed():
    assert COMMITTED, f"no committed showcase study under {SHOWCASE}"


@pytest.mark.parametrize("study_dir", COMMITTED, ids=[p.name for p in COMMITTED])
def test_the_showcase_page_quotes_the_committed_files(study_dir):
    page = (ROOT / "docs" / "showcase.md").read_text()
    assert showcase_markdown(study_dir) in page, (
        f"docs/showcase.md does not quote {study_dir.relative_to(ROOT)} as it is now: paste "
        f"the output of `python -m reports.showcase --study {study_dir.relative_to(ROOT)}`")
