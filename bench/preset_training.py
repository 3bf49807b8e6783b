"""Does every preset train under the default protocol? Train presets x training variants.

Each run is `python -m study.train` on a fixed hold-out split (the first ``--train-records``
records of ``--data-dir`` train, the rest evaluate), several at once (``--parallel``), in the
priority order of ``bench/preset_training.json``, until ``--deadline`` seconds have passed.
Results are appended to ``OUT/results.jsonl`` as runs finish, so a killed benchmark keeps
what it measured; a second call with the same ``--out`` skips the runs already there.
A run whose full configuration (defaults, preset and variant resolved) equals an earlier run's
of the same seed is not trained again: it gets that run's result, marked ``same_as``. Variants
named against the defaults of their day (``warmup`` once the warm-up is the default) cost
nothing then. ``--table`` prints the final scores as a markdown table, each preset beside
``cnn7_gmp`` under the same variant.

    python -m bench.preset_training --data-dir ../shared/data/cinc2017 --train-records 2000 \\
        --fs-hz 150 --epochs 12 --parallel 8 --out /tmp/presets
    python -m bench.preset_training --table /tmp/presets/results.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import link_records
from data_io.cache import load_cached
from data_io.datasets import load_dataset
from data_io.reference import find_reference, read_reference
from models import load_preset
from study.engine.config import resolve_config

PLAN = Path(__file__).with_suffix(".json")
REFERENCE_PRESET = "cnn7_gmp"


@dataclass(frozen=True)
class Run:
    """One training run of the grid."""

    preset: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.preset}.{self.variant}.s{self.seed}"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s sections merged in (one level deep, as configs nest)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def planned_runs(plan: dict[str, Any]) -> list[Run]:
    """The grid in priority order, each (preset, variant, seed) once."""
    runs: list[Run] = []
    for block in plan["runs"]:
        presets = plan["presets"] if block["presets"] == "all" else block["presets"]
        for variant in block["variants"]:
            for preset in presets:
                for seed in block["seeds"]:
                    run = Run(preset=preset, variant=variant, seed=seed)
                    if run not in runs:
                        runs.append(run)
    return runs


def run_config(plan: dict[str, Any], run: Run, *, threads: int) -> dict[str, Any]:
    """The training config of one run: the preset's model under the variant's overrides."""
    variants = {**plan["variants"], **plan.get("extra_variants", {})}
    if run.variant not in variants:
        raise ValueError(f"unknown variant {run.variant!r}; known: {sorted(variants)}")
    config = merged({"model": load_preset(run.preset)}, variants[run.variant])
    config["seed"] = run.seed
    config["runtime"] = {**config.get("runtime", {}), "num_threads": threads}
    return config


def _resolved_key(plan: dict[str, Any], run: Run) -> str:
    config = resolve_config(run_config(plan, run, threads=1))
    return json.dumps(config.as_dict(), sort_keys=True)


def same_as(plan: dict[str, Any], runs: list[Run]) -> dict[Run, Run]:
    """Each run whose resolved configuration (seed included) an earlier run of ``runs`` has,
    mapped to that earlier run: training it again would repeat the same measurement."""
    first: dict[str, Run] = {}
    repeats: dict[Run, Run] = {}
    for run in runs:
        key = _resolved_key(plan, run)
        if key in first:
            repeats[run] = first[key]
        else:
            first[key] = run
    return repeats


def split_directories(*, data_dir: Path, train_records: int, out: Path) -> tuple[Path, Path]:
    """``out/train`` (the first ``train_records`` records by name) and ``out/eval`` (the rest)."""
    reference = find_reference(data_dir)
    if reference is None:
        raise SystemExit(f"error: {data_dir} has no REFERENCE.csv")
    classes = load_dataset("cinc2017").labels
    labels = read_reference(reference, classes=classes).labels
    ids = sorted(labels)
    if not 0 < train_records < len(ids):
        raise SystemExit(f"error: --train-records must be in 1..{len(ids) - 1}, "
                         f"got {train_records}")
    parts = {"train": ids[:train_records], "eval": ids[train_records:]}
    for name, chosen in parts.items():
        if not (out / name).exists():
            link_records(source=data_dir, dest=out / name, labels={r: labels[r] for r in chosen})
    return out / "train", out / "eval"


def _rows(results: Path) -> dict[str, dict[str, Any]]:
    if not results.exists():
        return {}
    rows = (json.loads(line) for line in results.read_text().splitlines() if line.strip())
    return {row["run"]: row for row in rows}


def _command(args: argparse.Namespace, config_path: Path, train: Path, evaluate: Path) -> list[str]:
    return [
        sys.executable, "-m", "study.train", "--config", str(config_path),
        "--data-dir", str(train), "--eval-dir", str(evaluate), "--fs-hz", str(args.fs_hz),
        "--epochs", str(args.epochs), "--device", args.device, "--cache-dir",
        str(args.out / "cache"), "--json",
    ]


EPOCH_LINE = re.compile(
    r"^epoch (\d+)/\d+\s+train/loss (\S+)\s+val/loss \S+\s+val/f1_cinc (\S+)", re.M
)


def logged_history(log: Path) -> list[dict[str, float]]:
    """The finished epochs of a run that was killed, from its progress lines on stderr."""
    return [
        {"epoch": int(epoch), "train/loss": float(loss), "val/f1_cinc": float(f1)}
        for epoch, loss, f1 in EPOCH_LINE.findall(log.read_text(errors="replace"))
    ]


def _record(run: Run, *, status: str, seconds: float, payload: dict[str, Any]) -> dict[str, Any]:
    history = payload.get("history", [])
    return {
        "run": run.name, "preset": run.preset, "variant": run.variant, "seed": run.seed,
        "status": status, "seconds": round(seconds, 1),
        "f1_final": payload.get("val/f1_cinc"),
        "f1_curve": [row.get("val/f1_cinc") for row in history],
        "loss_curve": [row.get("train/loss") for row in history],
        "epoch_seconds": [row.get("seconds") for row in history],
        "per_class_f1": {k: payload.get(k) for k in payload if k.startswith("val/f1_")},
    }


def run_grid(args: argparse.Namespace) -> None:
    """Run the plan's grid with ``--parallel`` workers until ``--deadline``."""
    plan = json.loads(args.plan.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    train, evaluate = split_directories(
        data_dir=args.data_dir, train_records=args.train_records, out=args.out
    )
    for directory in (train, evaluate):  # built once here, so the workers only read
        load_cached("cinc2017", directory, fs_hz=args.fs_hz, cache_dir=args.out / "cache")
    results = args.out / "results.jsonl"
    done = _rows(results)
    runs = planned_runs(plan)
    repeats = same_as(plan, runs)
    with results.open("a") as fh:  # repeats of runs measured before they joined the plan
        fh.writelines(json.dumps(_copy_of(done[of.name], repeat)) + "\n"
                      for repeat, of in repeats.items()
                      if repeat.name not in done and of.name in done)
    queue = [run for run in runs if run.name not in done and run not in repeats]
    (args.out / "configs").mkdir(exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    started = time.monotonic()
    running: dict[str, tuple[Run, subprocess.Popen, float]] = {}
    print(f"{len(queue)} runs to do ({len(done)} already in {results}, {len(repeats)} the same "
          f"configuration as an earlier run), {args.parallel} at once", flush=True)
    while queue or running:
        elapsed = time.monotonic() - started
        while queue and len(running) < args.parallel and elapsed < args.deadline:
            run = queue.pop(0)
            config_path = args.out / "configs" / f"{run.name}.json"
            config_path.write_text(json.dumps(run_config(plan, run, threads=args.threads)))
            log = (args.out / "logs" / f"{run.name}.log").open("w")
            process = subprocess.Popen(
                _command(args, config_path, train, evaluate), stdout=subprocess.PIPE,
                stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            running[run.name] = (run, process, time.monotonic())
        for name, (run, process, begun) in list(running.items()):
            if process.poll() is None and elapsed < args.deadline:
                continue
            if process.poll() is None:
                process.kill()
            stdout = process.communicate()[0]
            try:
                payload = json.loads(stdout) if stdout.strip() else {}
            except json.JSONDecodeError:
                payload = {}
            if not payload:
                payload = {"history": logged_history(args.out / "logs" / f"{run.name}.log")}
            status = payload.get("status") or ("killed at deadline" if process.returncode < 0
                                               else f"exit {process.returncode}")
            row = _record(run, status=status, seconds=time.monotonic() - begun, payload=payload)
            copies = [_copy_of(row, repeat) for repeat, of in repeats.items() if of == run]
            with results.open("a") as fh:
                fh.writelines(json.dumps(line) + "\n" for line in [row, *copies])
            del running[name]
            print(f"[{elapsed:6.0f} s] {name}: {status}, f1 {row['f1_final']}, "
                  f"{row['seconds']} s", flush=True)
        if elapsed >= args.deadline and queue:
            print(f"deadline reached: {len(queue)} runs not started", flush=True)
            queue.clear()
        time.sleep(1.0)


def _copy_of(row: dict[str, Any], repeat: Run) -> dict[str, Any]:
    """``row``'s result under the name of a run with the same configuration (not trained)."""
    return {**row, "run": repeat.name, "preset": repeat.preset, "variant": repeat.variant,
            "seed": repeat.seed, "same_as": row["run"]}


def table(results: Path) -> str:
    """Markdown: one row per preset, one column per variant, final val F1 (delta to cnn7_gmp).

    A cell whose runs all repeat another variant's configuration says so: "(= default)".
    """
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    scores: dict[tuple[str, str], list[float]] = {}
    copies: dict[tuple[str, str], set[str]] = {}  # cell -> variants whose runs it repeats
    variant_of = {row["run"]: row["variant"] for row in rows if "run" in row}
    for row in rows:
        if row["f1_final"] is not None and row["status"] == "completed":
            cell_key = (row["preset"], row["variant"])
            scores.setdefault(cell_key, []).append(row["f1_final"])
            copies.setdefault(cell_key, set()).add(variant_of.get(row.get("same_as"), ""))
    presets = list(dict.fromkeys(row["preset"] for row in rows))
    variants = list(dict.fromkeys(row["variant"] for row in rows))

    def cell(preset: str, variant: str) -> str:
        values = scores.get((preset, variant))
        if not values:
            return ""
        mean = sum(values) / len(values)
        reference = scores.get((REFERENCE_PRESET, variant))
        seeds = f" (n={len(values)})" if len(values) > 1 else ""
        repeated = copies[(preset, variant)]
        if "" not in repeated:  # every run of the cell is another variant's run
            seeds += "".join(f" (= {other})" for other in sorted(repeated))
        if not reference or preset == REFERENCE_PRESET:
            return f"{mean:.3f}{seeds}"
        delta = mean - sum(reference) / len(reference)
        return f"{mean:.3f} ({delta:+.3f}){seeds}"

    lines = ["| preset | " + " | ".join(variants) + " |",
             "|---|" + "---|" * len(variants)]
    lines += [f"| {p} | " + " | ".join(cell(p, v) for v in variants) + " |" for p in presets]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, metavar="RESULTS.jsonl",
                        help="print the table of a finished (or partial) run and exit")
    parser.add_argument("--plan", type=Path, default=PLAN,
                        help="presets, variants and runs in priority order (JSON)")
    parser.add_argument("--data-dir", type=Path,
                        help="CinC 2017 records (.hea/.mat, REFERENCE.csv)")
    parser.add_argument("--train-records", type=int, default=2000)
    parser.add_argument("--fs-hz", type=float, default=150.0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--parallel", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--deadline", type=float, default=float("inf"),
                        help="seconds after which no run starts and running ones are killed")
    parser.add_argument("--out", type=Path, help="results.jsonl, logs, configs and the cache")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return 0
    if args.data_dir is None or args.out is None:
        raise SystemExit("error: give --data-dir and --out (or --table RESULTS.jsonl)")
    run_grid(args)
    print(table(args.out / "results.jsonl"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
