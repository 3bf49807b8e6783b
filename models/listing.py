"""`python -m models.listing`: every named preset with its model family and parameter count.

Counts are taken from models built on PyTorch's ``meta`` device (shapes only, no memory, no
initialization), so listing every preset, the 20 M-parameter ones included, is instant.
"""

from __future__ import annotations

import argparse
import json

import torch

from models.presets import load_preset, preset_names
from models.registry import build_model


def parameter_count(config: dict) -> int:
    """Trainable parameters of the model ``config`` builds (with its default n_classes)."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def preset_table() -> list[dict]:
    """One row per preset: ``preset``, ``family`` and ``parameters``, in name order."""
    rows = []
    for name in preset_names():
        config = load_preset(name)
        rows.append({"preset": name, "family": config["name"],
                     "parameters": parameter_count(config)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.listing",
        description="List the named model presets (models/presets.json) with their family "
                    "and number of trainable parameters (4 classes, 1 lead).",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)
    rows = preset_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["preset"]) for row in rows)
    print(f"{'preset':<{width}}  {'family':<14}  parameters")
    for row in rows:
        print(f"{row['preset']:<{width}}  {row['family']:<14}  {row['parameters'] / 1e6:8.2f} M")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
