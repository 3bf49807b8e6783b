"""The answers to --list-spaces, --show-space, --list-datasets and --show-dataset.

Imports only the space and data-set registries, so the listings answer in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys

from data_io.datasets import dataset_names, load_dataset
from search_spaces import describe_space, space_names
from study.tune.space_text import render_space, space_line

DEFAULT_SHAPE_DATASET = "cinc2017"
"""Whose class and lead counts ``--show-space`` sizes a family's presets for."""


def answer_listing(args: argparse.Namespace) -> int | None:
    """Answer --list-spaces, --show-space, --list-datasets and --show-dataset (None: none
    was asked)."""
    listings = (
        (args.list_spaces, lambda: "\n".join(space_line(name) for name in space_names())),
        (args.list_datasets, lambda: _list(dataset_names(), lambda n: load_dataset(n).description)),
        (args.show_space, lambda: _show_space(args.show_space, as_json=args.json)),
        (args.show_dataset, lambda: load_dataset(args.show_dataset).describe()),
    )
    for asked, answer in listings:
        if not asked:
            continue
        try:
            shown = answer()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(shown if isinstance(shown, str) else json.dumps(shown, indent=2, default=str))
        return 0
    return None


def _show_space(name: str, *, as_json: bool) -> str:
    """The space's description, and the presets of its model family with their parameters
    (per part where the family defines parts) for the default data set's shape."""
    from models.listing import preset_table, render_table

    description = describe_space(name)
    dataset = load_dataset(DEFAULT_SHAPE_DATASET)
    family = description["fixed"].get("model/name")
    rows = (
        preset_table(n_classes=dataset.n_classes, n_leads=dataset.n_leads or 1, family=family)
        if family
        else []
    )
    if as_json:
        return json.dumps({**description, "presets": rows}, indent=2, default=str)
    text = render_space(description)
    if rows:
        text += (
            f"\n\npresets of the {family} family, parameters for {dataset.name} "
            f"({dataset.n_classes} classes, {dataset.n_leads or 1} lead):\n  "
            + "\n  ".join(render_table(rows, parts=True))
        )
    return text


def _list(names: list[str], describe) -> str:
    lines = []
    for name in names:
        doc = (describe(name) or "").strip().splitlines()
        lines.append(f"{name:24} {doc[0] if doc else ''}")
    return "\n".join(lines)
