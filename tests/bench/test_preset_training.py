"""bench.preset_training: the grid, the configs it trains, and the table it prints."""

from __future__ import annotations

import json

import pytest

from bench import preset_training
from bench.preset_training import Run, logged_history, planned_runs, run_config, table
from data_io.synthesize import main as synthesize

PLAN = {
    "presets": ["cnn7_gmp", "cnn15_gmp"],
    "variants": {
        "default": {},
        "slow": {"optim": {"lr": 0.0003}},
        "plain": {"model": {"dropout_min": 0.0, "dropout_max": 0.0}},
    },
    "runs": [
        {"presets": "all", "variants": ["default"], "seeds": [0]},
        {"presets": ["cnn15_gmp"], "variants": ["slow", "default"], "seeds": [0, 1]},
    ],
}


def test_the_grid_keeps_priority_order_and_runs_each_cell_once():
    names = [run.name for run in planned_runs(PLAN)]
    assert names == [
        "cnn7_gmp.default.s0", "cnn15_gmp.default.s0", "cnn15_gmp.slow.s0", "cnn15_gmp.slow.s1",
        "cnn15_gmp.default.s1",
    ]


def test_a_variant_overrides_the_preset_model_and_the_training_sections():
    config = run_config(PLAN, Run("cnn15_gmp", "plain", 3), threads=2)
    assert config["model"]["depth"] == 15 and config["model"]["pooling"] == "gmp"
    assert (config["model"]["dropout_min"], config["model"]["dropout_max"]) == (0.0, 0.0)
    assert config["seed"] == 3 and config["runtime"] == {"num_threads": 2}
    assert run_config(PLAN, Run("cnn7_gmp", "slow", 0), threads=1)["optim"] == {"lr": 0.0003}
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        run_config(PLAN, Run("cnn7_gmp", "fast", 0), threads=1)


def test_the_table_gives_means_over_seeds_and_the_gap_to_cnn7_gmp(tmp_path):
    rows = [
        ("cnn7_gmp", "default", 0, 0.80, "completed"),
        ("cnn7_gmp", "default", 1, 0.82, "completed"),
        ("cnn15_gmp", "default", 0, 0.70, "completed"),
        ("cnn15_gmp", "slow", 0, 0.75, "completed"),
        ("cnn15_gmp", "plain", 0, None, "killed at deadline"),
    ]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(
        json.dumps({"preset": p, "variant": v, "seed": s, "f1_final": f, "status": st}) + "\n"
        for p, v, s, f, st in rows
    ))
    lines = table(results).splitlines()
    assert lines[0] == "| preset | default | slow | plain |"
    assert lines[2] == "| cnn7_gmp | 0.810 (n=2) |  |  |"
    # no cnn7_gmp under "slow": no difference to show; a killed run leaves its cell empty
    assert lines[3] == "| cnn15_gmp | 0.700 (-0.110) | 0.750 |  |"


def test_a_killed_run_keeps_the_epochs_its_log_shows(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "epoch 1/12 training: 100% (125/125 batch)\n"
        "epoch 1/12  train/loss 1.0500  val/loss 0.9900  val/f1_cinc 0.3900  (normal 0.8)  7 s\n"
        "epoch 2/12  train/loss 0.8000  val/loss 0.9000  val/f1_cinc 0.4900  (normal 0.8)  7 s\n"
    )
    assert logged_history(log) == [
        {"epoch": 1, "train/loss": 1.05, "val/f1_cinc": 0.39},
        {"epoch": 2, "train/loss": 0.8, "val/f1_cinc": 0.49},
    ]


def test_a_small_grid_trains_resumes_and_prints_its_table(tmp_path, capsys):
    data = tmp_path / "records"
    assert synthesize(["--out", str(data), "--records", "30", "--seed", "0"]) == 0
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "presets": ["cnn7_gmp"], "variants": {"default": {}, "slow": {"optim": {"lr": 3e-4}}},
        "runs": [{"presets": "all", "variants": ["default", "slow"], "seeds": [0]}],
    }))
    argv = ["--plan", str(plan), "--data-dir", str(data), "--train-records", "20",
            "--fs-hz", "50", "--epochs", "1", "--parallel", "2", "--out", str(tmp_path / "out")]
    assert preset_training.main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").open()]
    assert sorted(row["run"] for row in rows) == ["cnn7_gmp.default.s0", "cnn7_gmp.slow.s0"]
    assert all(row["status"] == "completed" and len(row["f1_curve"]) == 1 for row in rows)
    assert "| cnn7_gmp |" in capsys.readouterr().out
    assert preset_training.main(argv) == 0  # everything already measured: nothing reruns
    assert "0 runs to do (2 already in" in capsys.readouterr().out
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2
