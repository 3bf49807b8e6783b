"""`python -m study.train` end to end on a small synthetic CinC-format directory."""

from __future__ import annotations

import json

import pytest

from data_io.synthesize import main as synthesize
from study.train import main


@pytest.fixture(scope="module")
def synthetic_dirs(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("syn_train")
    eval_dir = tmp_path_factory.mktemp("syn_eval")
    assert synthesize(["--out", str(train_dir), "--records", "24", "--seed", "1"]) == 0
    assert synthesize(["--out", str(eval_dir), "--records", "8", "--seed", "2"]) == 0
    # The two sets use the same ids (S00001...); rename the evaluation ones to stay unseen.
    for path in sorted(eval_dir.iterdir()):
        if path.suffix in (".hea", ".mat"):
            path.write_bytes(path.read_bytes().replace(b"S000", b"E000"))
            path.rename(path.with_name(path.name.replace("S000", "E000")))
    reference = eval_dir / "REFERENCE.csv"
    reference.write_text(reference.read_text().replace("S000", "E000"))
    (eval_dir / "RECORDS").unlink()
    return train_dir, eval_dir


TINY = {"name": "cnn", "channels": [4, 8], "kernel_size": 5, "pooling": "gap"}


def test_fold_run_prints_json_and_writes_outputs(synthetic_dirs, tmp_path, capsys):
    train_dir, _ = synthetic_dirs
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    code = main(["--config", str(config), "--data-dir", str(train_dir), "--epochs", "1",
                 "--n-folds", "4", "--fold", "1", "--fs-hz", "100", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["status"] == "completed" and result["epochs_completed"] == 1
    assert 0.0 <= result["val/f1_cinc"] <= 1.0
    assert {"val/f1_normal", "val/f1_af", "val/f1_other", "val/f1_noisy"} <= set(result)
    assert len(result["val/confusion"]) == 4
    assert sum(map(sum, result["val/confusion"])) == 6  # fold 1 of 4 over 24 records
    assert "epoch 1/1" in captured.err
    for name in ("config.json", "folds.csv", "checkpoint.pt", "metrics.json", "predictions.csv"):
        assert (out / name).is_file(), name
    assert len((out / "predictions.csv").read_text().splitlines()) == 1 + 6


def test_eval_dir_trains_on_everything_and_scores_the_other_set(synthetic_dirs, capsys):
    train_dir, eval_dir = synthetic_dirs
    code = main(["--preset", "cnn4_gap", "--data-dir", str(train_dir), "--eval-dir",
                 str(eval_dir), "--epochs", "1", "--fs-hz", "100", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert sum(map(sum, result["val/confusion"])) == 8


def test_overlapping_eval_dir_is_refused(synthetic_dirs, capsys):
    train_dir, _ = synthetic_dirs
    code = main(["--preset", "cnn4_gap", "--data-dir", str(train_dir), "--eval-dir",
                 str(train_dir), "--epochs", "1", "--json"])
    assert code == 2
    assert "both the training and the evaluation" in capsys.readouterr().err


def test_missing_data_dir_is_a_one_line_error(tmp_path, capsys):
    code = main(["--preset", "cnn7_gmp", "--data-dir", str(tmp_path / "none"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: data directory") and "Traceback" not in err


def test_unknown_preset_lists_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "cnn8_gmp", "--data-dir", "x", "--epochs", "1"])
    assert "cnn7_gmp" in capsys.readouterr().err


def test_the_dualnet_split_validates_on_its_share_and_the_preset_trains_as_published(
        synthetic_dirs, tmp_path, capsys):
    # dualnet_s by name: its protocol (batch 24, RAdam, ...) over --epochs; 4 of the 24
    # records (1,528 / 8,528 of each class, rounded) in fold 0.
    train_dir, _ = synthetic_dirs
    out = tmp_path / "out"
    code = main(["--preset", "dualnet_s", "--data-dir", str(train_dir), "--epochs", "1",
                 "--fs-hz", "100", "--data-option", "split=dualnet", "--out", str(out),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    folds = [line.split(",")[1] for line in (out / "folds.csv").read_text().splitlines()[1:]]
    assert sum(map(sum, result["val/confusion"])) == folds.count("0") == 4
    assert 0.0 <= result["val/f1_macro4"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["optim"]["optimizer"] == "radam" and config["optim"]["batch_size"] == 24
    assert main(["--preset", "dualnet_s", "--data-dir", str(train_dir), "--epochs", "1",
                 "--data-option", "split=random"]) == 2
    assert "split='random' is not one of folds, dualnet" in capsys.readouterr().err


def test_json_output_is_strict_and_names_the_undefined_scores():
    from study.train import UNDEFINED_REASON, strict_json

    payload = {"val/f1_cinc": 0.5, "val/auroc_A": float("nan"),
               "history": [{"val/loss": float("inf"), "epoch": 1}]}
    cleaned = strict_json(payload)
    assert json.loads(json.dumps(cleaned, allow_nan=False)) == cleaned
    assert cleaned["val/auroc_A"] is None and cleaned["history"][0]["val/loss"] is None
    assert cleaned["undefined"] == {"keys": ["val/auroc_A", "history[0].val/loss"],
                                    "reason": UNDEFINED_REASON}
    assert "undefined" not in strict_json({"val/f1_cinc": 0.5})
