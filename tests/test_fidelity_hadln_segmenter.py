"""docs/fidelity.md's HADLN and segmenter tables against the code: every number a row keys to
a preset, a shipped training config, a space's published training, a data set's facts or a
constructor default is the number the code has, and where a row claims no departure the
published number is ours too, so the tables and the models cannot drift apart."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from data_io.datasets import load_dataset
from models import load_preset
from models.registry import model_class
from search_spaces import load_space

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "fidelity.md"
SECTIONS = ("HADLN", "Segmenter")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
NO_DEPARTURE = "—"


def table_rows(section: str) -> list[dict[str, str]]:
    """The rows of the first table under ``## <section>`` as {column: cell}."""
    text = PAGE.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def first_numbers(cell: str) -> list[float] | None:
    """The numbers in a cell's first `backticked` span, None when it has none."""
    span = re.search(r"`([^`]*)`", cell)
    if span is None:
        return None
    numbers = [float(n) for n in NUMBER.findall(span.group(1))]
    return numbers or None


def _path(value: Any, path: str) -> Any:
    for part in path.split("/"):
        value = value[part]
    return value


def keyed_value(key: str) -> Any:
    """What a row's key names in the code."""
    kind, name, path = key.split(":")
    sources = {
        "preset": lambda: load_preset(name),
        "config": lambda: json.loads((ROOT / "study" / "configs" / name).read_text()),
        "training": lambda: {path: load_space(name).PUBLISHED_TRAINING[path]},
        "data": lambda: load_dataset(name).facts,
        "default": lambda: {
            k: p.default for k, p in inspect.signature(model_class(name)).parameters.items()},
    }
    return sources[kind]()[path] if kind == "training" else _path(sources[kind](), path)


def _as_numbers(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]


ROWS = [(section, row) for section in SECTIONS for row in table_rows(section)]


@pytest.mark.parametrize("section", SECTIONS)
def test_each_family_has_its_table_with_keyed_rows(section):
    rows = table_rows(section)
    assert {"Detail", "Published", "Source", "Ours", "Key", "Departure, why"} <= set(rows[0])
    assert sum(bool(row["Key"]) for row in rows) >= 10
    assert all(row["Source"] for row in rows), "every published detail names its source"


@pytest.mark.parametrize(("section", "row"), [r for r in ROWS if r[1]["Key"]],
                         ids=[f"{s}:{r['Detail']}" for s, r in ROWS if r["Key"]])
def test_keyed_numbers_are_the_codes(section, row):
    key = row["Key"].strip("`")
    ours = first_numbers(row["Ours"])
    assert ours is not None, f"{section} / {row['Detail']}: Ours has no backticked number"
    assert ours == pytest.approx(_as_numbers(keyed_value(key))), key
    published = first_numbers(row["Published"])
    if row["Departure, why"].startswith(NO_DEPARTURE) and published is not None:
        assert published == pytest.approx(ours), f"{row['Detail']}: published differs from ours"


def test_a_changed_preset_would_fail_the_table():
    # the check bites: the published kernel is 17, any other would not match the row
    (row,) = [r for r in table_rows("HADLN") if r["Detail"] == "Residual kernel"]
    assert first_numbers(row["Published"]) == [17.0]
    assert _as_numbers(keyed_value(row["Key"].strip("`"))) == [17.0]
