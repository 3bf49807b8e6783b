"""bench.preset_training: the grid, the configs it trains, and the table it prints."""

from __future__ import annotations

import json

import pytest

from bench import preset_training
from bench.preset_training import Run, logged_history, planned_runs, run_config, same_as, table
from data_io.synthesize import main as synthesize
from study.engine.config import default_config

DEFAULT_LR = default_config()["optim"]["lr"]

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


def test_a_variant_that_spells_out_a_default_repeats_the_default_run_of_its_seed():
    plan = {**PLAN, "variants": {**PLAN["variants"], "as_default": {"optim": {"lr": DEFAULT_LR}}}}
    plan["runs"] = [
        {"presets": "all", "variants": ["default", "as_default", "slow"], "seeds": [0]},
        {"presets": ["cnn7_gmp"], "variants": ["as_default"], "seeds": [1]},
    ]
    repeats = {run.name: of.name for run, of in same_as(plan, planned_runs(plan)).items()}
    # seed 1 has no default run to repeat, and "slow" really differs
    assert repeats == {
        "cnn7_gmp.as_default.s0": "cnn7_gmp.default.s0",
        "cnn15_gmp.as_default.s0": "cnn15_gmp.default.s0",
    }


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
    with results.open("a") as fh:
        fh.write(json.dumps({"run": "cnn15_gmp.again.s0", "preset": "cnn15_gmp",
                             "variant": "again", "seed": 0, "f1_final": 0.70,
                             "status": "completed", "same_as": "cnn15_gmp.default.s0"}) + "\n")
        fh.write(json.dumps({"run": "cnn15_gmp.default.s0", "preset": "cnn15_gmp",
                             "variant": "default", "seed": 0, "f1_final": 0.70,
                             "status": "completed"}) + "\n")
    lines = table(results).splitlines()
    assert lines[0] == "| preset | default | slow | plain | again |"
    assert lines[2] == "| cnn7_gmp | 0.810 (n=2) |  |  |  |"
    # no cnn7_gmp under "slow": no difference to show; a killed run leaves its cell empty;
    # a cell that only repeats another variant's run names it
    assert lines[3] == ("| cnn15_gmp | 0.700 (-0.110) (n=2) | 0.750 |  | "
                        "0.700 (= default) |")


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
        "presets": ["cnn7_gmp"],
        "variants": {"default": {}, "slow": {"optim": {"lr": 3e-4}},
                     "as_default": {"optim": {"lr": DEFAULT_LR}}},
        "runs": [{"presets": "all", "variants": ["default", "slow", "as_default"], "seeds": [0]}],
    }))
    out = tmp_path / "out"
    argv = ["--plan", str(plan), "--data-dir", str(data), "--train-records", "20",
            "--fs-hz", "50", "--epochs", "1", "--parallel", "2", "--out", str(out)]
    assert preset_training.main(argv) == 0
    rows = {row["run"]: row for row in map(json.loads, (out / "results.jsonl").open())}
    assert sorted(rows) == ["cnn7_gmp.as_default.s0", "cnn7_gmp.default.s0", "cnn7_gmp.slow.s0"]
    assert all(row["status"] == "completed" and len(row["f1_curve"]) == 1 for row in rows.values())
    # the repeat was not trained: no log of its own, the default run's result under its name
    assert sorted(log.name for log in (out / "logs").iterdir()) == [
        "cnn7_gmp.default.s0.log", "cnn7_gmp.slow.s0.log"]
    repeat = rows["cnn7_gmp.as_default.s0"]
    assert repeat["same_as"] == "cnn7_gmp.default.s0"
    assert repeat["f1_curve"] == rows["cnn7_gmp.default.s0"]["f1_curve"]
    printed = capsys.readouterr().out
    assert "2 runs to do (0 already in" in printed and "1 the same configuration" in printed
    assert "(= default) |" in printed
    assert preset_training.main(argv) == 0  # everything already measured: nothing reruns
    assert "0 runs to do (3 already in" in capsys.readouterr().out
    assert len((out / "results.jsonl").read_text().splitlines()) == 3


def test_a_repeat_added_to_the_plan_later_takes_the_measured_run(tmp_path):
    data = tmp_path / "records"
    assert synthesize(["--out", str(data), "--records", "12", "--seed", "0"]) == 0
    out = tmp_path / "out"
    out.mkdir()
    measured = {"run": "cnn7_gmp.default.s0", "preset": "cnn7_gmp", "variant": "default",
                "seed": 0, "status": "completed", "f1_final": 0.8, "f1_curve": [0.8]}
    (out / "results.jsonl").write_text(json.dumps(measured) + "\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "presets": ["cnn7_gmp"],
        "variants": {"default": {}, "as_default": {"optim": {"lr": DEFAULT_LR}}},
        "runs": [{"presets": "all", "variants": ["default", "as_default"], "seeds": [0]}],
    }))
    args = preset_training.build_parser().parse_args(
        ["--plan", str(plan), "--data-dir", str(data), "--train-records", "8", "--fs-hz", "50",
         "--out", str(out)])
    preset_training.run_grid(args)
    rows = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert [row["run"] for row in rows] == ["cnn7_gmp.default.s0", "cnn7_gmp.as_default.s0"]
    assert rows[1]["same_as"] == "cnn7_gmp.default.s0" and rows[1]["f1_final"] == 0.8
