"""`python -m models.listing`: every named preset with its model family and parameter count
(``--parts``: per part, for families that define ``parameter_parts``, e.g. ECG-DualNet's
signal encoder, spectrogram encoder and head).

Counts are taken from models built on the CPU with the global random state restored afterwards
(every preset, the 20 M-parameter ones included, in about a second). PyTorch's ``meta`` device
would skip the memory but costs more here: its first elementwise op (the STFT window, chrono
biases) imports ``torch._dynamo``, about 1.5 s. A
model's size depends on its data set's class and lead counts, which the caller gives (models
know no data set): ``python -m study.train --help`` lists the counts for its default data set.
"""

from __future__ import annotations

import argparse
import json

import torch

from models.presets import load_preset, preset_names
from models.registry import build_model


def _counted_model(config: dict, *, n_classes: int, n_leads: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # initialisation draws no one's seed
        return build_model({**config, "n_classes": n_classes, "n_leads": n_leads})


def parameter_count(config: dict, *, n_classes: int, n_leads: int) -> int:
    """Trainable parameters of the model ``config`` builds for ``n_classes`` and ``n_leads``."""
    model = _counted_model(config, n_classes=n_classes, n_leads=n_leads)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def preset_table(*, n_classes: int, n_leads: int, family: str | None = None) -> list[dict]:
    """One row per preset (of ``family``, or all): ``preset``, ``family``, ``parameters`` and,
    where the model defines ``parameter_parts``, ``parts`` (part -> parameters), in name
    order."""
    rows = []
    for name in preset_names():
        config = load_preset(name)
        if family is not None and config["name"] != family:
            continue
        model = _counted_model(config, n_classes=n_classes, n_leads=n_leads)
        row = {"preset": name, "family": config["name"],
               "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        if hasattr(model, "parameter_parts"):
            row["parts"] = model.parameter_parts()
        rows.append(row)
    return rows


def render_table(rows: list[dict], *, parts: bool) -> list[str]:
    """The rows as aligned text lines (with ``parts``: each part's count after the total)."""
    width = max((len(row["preset"]) for row in rows), default=6)
    lines = [f"{'preset':<{width}}  {'family':<14}  parameters"]
    for row in rows:
        line = f"{row['preset']:<{width}}  {row['family']:<14}  {row['parameters'] / 1e6:8.2f} M"
        if parts and "parts" in row:
            line += "  (" + ", ".join(f"{part} {count:,}"
                                      for part, count in row["parts"].items()) + ")"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.listing",
        description="List the named model presets (models/presets.json) with their family "
                    "and number of trainable parameters for a data set's number of classes "
                    "and leads (CinC 2017: --n-classes 4 --n-leads 1; see "
                    "`python -m study.run --show-dataset NAME`).",
    )
    parser.add_argument("--n-classes", type=int, required=True,
                        help="output classes of the data set")
    parser.add_argument("--n-leads", type=int, required=True, help="input leads of the data set")
    parser.add_argument("--parts", action="store_true",
                        help="also each part's count, for families that define parts")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)
    if args.n_classes < 2 or args.n_leads < 1:
        parser.error(f"need --n-classes >= 2 and --n-leads >= 1, got {args.n_classes} and "
                     f"{args.n_leads}")
    rows = preset_table(n_classes=args.n_classes, n_leads=args.n_leads)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"parameters for {args.n_classes} classes and {args.n_leads} lead(s)")
    print("\n".join(render_table(rows, parts=args.parts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
