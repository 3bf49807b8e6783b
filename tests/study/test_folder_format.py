"""The study folder's format: a real study written by `study` is found and read by `reports`
through `study.folder_format` alone, and no other module retypes its names."""

from __future__ import annotations

import ast
import io
import json
import tokenize
from pathlib import Path

import pandas as pd

from reports.study_data import load_study
from study import folder_format as fmt

ROOT = Path(__file__).resolve().parents[2]

# Names whose strings mean one thing only (stop reasons such as "completed" are also the
# trainer's and Tune's status words, so they are not scanned for).
UNAMBIGUOUS = ("STUDY_RECORD", "TRIALS_TABLE", "CV_TABLE", "FINAL_TEST", "STAGE_TIMES",
               "BEST_CONFIG", "BEST_TRIAL", "PREDICTIONS", "EXPLANATIONS",
               "SCORED_EXPLANATIONS", "MITDB_EXPLANATIONS", "EXPLANATION_SANITY", "TRIAL_ID",
               "TRIAL_NUMBER", "STOP_REASON", "TRIAL_STATUS", "CONFUSION_JSON", "EARLY_STOPPED")


def test_a_written_study_is_read_through_the_format_module(finished_study):
    study_dir, _ = finished_study
    for name in (fmt.STUDY_RECORD, fmt.TRIALS_TABLE, fmt.CV_TABLE, fmt.BEST_CONFIG,
                 fmt.BEST_TRIAL, fmt.STAGE_TIMES):
        assert (study_dir / name).is_file(), name
    trials = pd.read_parquet(study_dir / fmt.TRIALS_TABLE)
    for column in (fmt.TRIAL_ID, fmt.TRIAL_NUMBER, fmt.EPOCH, fmt.STOP_REASON, fmt.RUNG,
                   fmt.ERROR):
        assert column in trials, column
    assert any(c.startswith(fmt.CONFIG_PREFIX) for c in trials)
    assert set(trials[fmt.STOP_REASON]) <= set(fmt.STOP_REASONS)
    cv = pd.read_parquet(study_dir / fmt.CV_TABLE)
    assert {fmt.TRIAL_ID, fmt.CANDIDATE, fmt.CONFUSION_JSON} <= set(cv)

    best = json.loads((study_dir / fmt.BEST_TRIAL).read_text())[fmt.TRIAL_ID]
    best_dir = fmt.trial_dir(study_dir, best)
    assert (best_dir / fmt.PREDICTIONS).is_file()
    assert (best_dir / fmt.EXPLANATIONS).is_file()

    study = load_study(study_dir)
    assert study.trials[fmt.TRIAL_ID].nunique() == trials[fmt.TRIAL_ID].nunique()
    assert len(study.cv) == len(cv)
    assert study.artifacts[best].predictions == best_dir / fmt.PREDICTIONS
    assert study.artifacts[best].explanations == best_dir / fmt.EXPLANATIONS
    recorded = json.loads((study_dir / fmt.STAGE_TIMES).read_text())
    assert set(study.stage_times) == set(recorded)


def test_the_format_module_imports_only_the_standard_library():
    import sys

    tree = ast.parse((ROOT / "study" / "folder_format.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_no_other_module_retypes_the_format_strings():
    names = {getattr(fmt, name): name for name in UNAMBIGUOUS}
    found = [f"{path.relative_to(ROOT)}:{line}: {value!r} (use folder_format.{names[value]})"
             for package in ("study", "reports")
             for path in sorted((ROOT / package).rglob("*.py"))
             if path.name != "folder_format.py"
             for line, value in _string_literals(path) if value in names]
    assert not found, "\n".join(found)


def _string_literals(path: Path):
    """(line, value) of each plain string literal in ``path``'s code (f-strings left out)."""
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING:
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str):
                yield token.start[0], value
