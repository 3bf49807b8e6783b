"""How far back does an untrained LSTM head's last state look?
(docs/lab-notes/presets-under-the-default-protocol.md)

For each LSTM preset's head and each initialisation of its gate biases (torch's, a forget-gate
bias of 1, chrono over the crop's steps) this prints the share of the gradient of the last
state, ||d h_T / d x_t|| summed over steps, that comes from beyond the ``--recent`` steps
nearest it (a backward direction's final state is at step 0):
how much of a 30-s crop the `last` readout can learn from at the start. The inputs stand in
for the trunk's features after BatchNorm and ReLU (ReLU of unit Gaussians), so the figure
describes the initialisation, not a trained trunk.

    python -m bench.lstm_memory --seeds 5
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from models import build_model, load_preset, preset_names

INITS: dict[str, dict[str, Any]] = {
    "torch": {"chrono_steps": None, "forget_bias": None},
    "forget bias 1": {"chrono_steps": None, "forget_bias": 1.0},
    "chrono (preset)": {},
}
"""Model overrides per initialisation; the LSTM presets carry their chrono steps."""


def lstm_presets() -> dict[str, dict[str, Any]]:
    """The presets with an LSTM head, by name (each carries the chrono steps of a training
    crop)."""
    presets = {name: load_preset(name) for name in preset_names()}
    return {name: preset for name, preset in presets.items() if preset.get("cell") == "lstm"}


def memory_share(model: torch.nn.Module, *, steps: int, recent: int, batch: int) -> float:
    """Share of ||d h / d x_t|| (summed over t) from beyond the ``recent`` steps a final state
    read last: before the last ones for the forward direction, after the first ones for the
    backward direction (whose final state is at step 0); the mean over directions."""
    head = model.rnn
    x = torch.relu(torch.randn(batch, steps, head.rnn.input_size)).requires_grad_(True)
    _, final = head(x, torch.full((batch,), steps))  # final (B, H * D)
    shares = []
    for direction, state in enumerate(final.chunk(head.n_directions, dim=-1)):
        (grad,) = torch.autograd.grad(state.pow(2).sum(), x, retain_graph=True)  # (B, T, C)
        per_step = grad.norm(dim=-1).mean(dim=0)  # (T,)
        far = per_step[: steps - recent] if direction == 0 else per_step[recent:]
        shares.append(float(far.sum() / per_step.sum()))
    return sum(shares) / len(shares)


def preset_row(preset: dict[str, Any], *, seeds: int, recent: int,
               batch: int) -> dict[str, float]:
    """Mean share per initialisation over ``seeds`` heads of an LSTM preset's model config."""
    steps = int(preset["chrono_steps"])
    row = {}
    for label, override in INITS.items():
        shares = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            # Untrained heads: the class count only sizes the classifier, which is not read.
            model = build_model({**preset, **override, "n_classes": 4, "n_leads": 1})
            shares.append(memory_share(model, steps=steps, recent=recent, batch=batch))
        row[label] = sum(shares) / len(shares)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lstm_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="heads per cell (default 5)")
    parser.add_argument("--recent", type=int, default=10,
                        help="the last steps whose share is left out (default 10)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per head (default 8)")
    args = parser.parse_args(argv)
    labels = list(INITS)
    print("share of the final state's input gradient from beyond the "
          f"{args.recent} steps nearest it (equal weight on every step: 1 - {args.recent} / steps)")
    print(f"{'preset':16s} {'steps':>5s} " + " ".join(f"{label:>16s}" for label in labels))
    for name, preset in lstm_presets().items():
        row = preset_row(preset, seeds=args.seeds, recent=args.recent, batch=args.batch)
        cells = " ".join(f"{row[label]:16.3f}" for label in labels)
        print(f"{name:16s} {preset['chrono_steps']:5d} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
