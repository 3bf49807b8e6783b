"""docs/fidelity.md against the code: the published values it lists are the presets', the
training protocols' and the augmentation pipelines' values, and its parameter tables are the
counts of the models built from the presets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data_io.augment import resolve_pipeline
from models import load_preset, preset_names
from models.listing import preset_table
from study.engine.protocols import load_protocol

FIDELITY = Path(__file__).resolve().parents[1] / "docs" / "fidelity.md"
CHECKED = re.compile(r"`((?:model|loss|optim|data|augment)\.[\w.]+|epochs): (.+?)`")
CODE = re.compile(r"`([^`]+)`")
SECTIONS = {"ECG-DualNet": {"family": "dualnet", "protocol": "dualnet_published",
                            "pipeline": "ecg_dualnet"}}


def section(title: str) -> str:
    """The text of ``## title`` up to the next level-2 heading."""
    text = FIDELITY.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def table_rows(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header and body cells of the first table whose header row starts with
    ``header_start`` (cells stripped; ``\\|`` inside a cell is not a separator)."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    def cells(line: str) -> list[str]:
        return [c.strip().replace("\\|", "|")
                for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
    header, body = cells(lines[index]), []
    for line in lines[index + 2:]:
        if not line.startswith("|"):
            break
        body.append(cells(line))
    return header, body


def _step_options(pipeline: str) -> dict[str, dict]:
    steps = resolve_pipeline({"pipeline": pipeline})
    return {step["name"]: step for step in steps}


def _ours(key: str, *, context: dict) -> list:
    """Every value the code holds for a checked key (one per preset that sets it, or one)."""
    head, _, rest = key.partition(".")
    if head == "model":
        presets = [load_preset(n) for n in preset_names()
                   if load_preset(n)["name"] == context["family"]]
        values = [p[rest] for p in presets if rest in p]
        assert values, f"no {context['family']} preset sets {rest!r}"
        return values
    if head == "augment":
        step, _, option = rest.partition(".")
        return [_step_options(context["pipeline"])[step][option]]
    protocol = load_protocol(context["protocol"])
    if head == "epochs":
        return [protocol["epochs"]]
    return [protocol[head][rest]]


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_every_checked_value_is_the_codes(title):
    context = SECTIONS[title]
    text = section(title)
    checked = 0
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        for key, value in (m.groups() for m in CHECKED.finditer(line)):
            expected = json.loads(value)
            for ours in _ours(key, context=context):
                assert ours == pytest.approx(expected) if isinstance(expected, float) else (
                    ours == expected), f"{key}: docs say {value}, the code holds {ours!r}"
            checked += 1
            # No departure: the published value (its first code value) is ours too.
            if len(cells) >= 5 and cells[-1].startswith("—"):
                published = _first_json(cells[1])
                if published is not None:
                    assert published == expected, f"{key}: published {published}, ours {value}"
    assert checked >= 30


def _first_json(cell: str):
    for text in CODE.findall(cell):
        try:
            return json.loads(text)
        except ValueError:
            continue
    return None


def test_the_size_table_is_the_presets():
    header, rows = table_rows(section("ECG-DualNet"), "| preset | published config |")
    keys = {i: name.strip("`") for i, name in enumerate(header) if name.startswith("`")}
    assert len(rows) == 8
    for row in rows:
        preset = load_preset(row[0].strip("`"))
        for i, key in keys.items():
            if row[i] == "–":
                assert key not in preset, f"{row[0]} sets {key}"
            else:
                assert preset[key] == json.loads(row[i]), f"{row[0]} {key}"


def test_the_parameter_table_is_the_built_models_within_one_percent():
    _, rows = table_rows(section("ECG-DualNet"), "| preset | signal encoder |")
    built = {row["preset"]: row for row in preset_table(n_classes=4, n_leads=1,
                                                        family="dualnet")}
    assert sorted(r[0].strip("`") for r in rows) == sorted(built)
    for row in rows:
        name = row[0].strip("`")
        published = [int(cell.replace(",", "")) for cell in row[1:5]]
        parts = built[name]["parts"]
        ours = [parts["signal_encoder"], parts["spectrogram_encoder"], parts["head"],
                built[name]["parameters"]]
        for mine, theirs in zip(ours, published, strict=True):
            assert mine == pytest.approx(theirs, rel=0.01), name
        assert sum(ours[:3]) == ours[3]
        slides = float(row[5].removesuffix(" M"))
        assert round(published[3] / 1e6, 1) == slides, f"{name}: the slides round the code"
