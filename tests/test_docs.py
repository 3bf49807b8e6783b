"""The docs/ pages: their commands are valid for the CLIs they name, their code runs, and the
cluster files parse and name the right command (what can be checked without a cluster)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from data_io.datasets import load_dataset
from data_io.inspect import main as inspect_main
from models import build_model
from search_spaces import training_config, unflatten
from study.engine.config import resolve_config
from study.run import build_parser as study_run_parser
from study.train import build_parser as study_train_parser
from study.train import main as study_train_main

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"
PAGES = ("own-data.md", "new-search-space.md", "cluster.md", "best-trial-to-test-score.md",
         "estimating-cost.md", "architecture.md")
PARSERS = {"study.run": study_run_parser, "study.train": study_train_parser}
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def fenced(page: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall((DOCS / page).read_text()) if lang == language]


def commands(text: str) -> list[list[str]]:
    """``python -m MODULE ARGS`` commands in shell text (comments and continuations handled)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("python -m "):
            found.append(shlex.split(line.replace('"$', "$").replace('"', "")))
    return found


def test_every_page_is_linked_from_the_readme():
    readme = README.read_text()
    for page in PAGES:
        assert f"docs/{page}" in readme, page


@pytest.mark.parametrize("page", PAGES)
def test_study_commands_in_the_docs_parse(page):
    checked = 0
    for block in fenced(page, "bash"):
        for argv in commands(block):
            module = argv[2]
            if module in PARSERS:
                PARSERS[module]().parse_args(argv[3:])  # SystemExit(2) on a bad flag
                checked += 1
    if page != "estimating-cost.md":
        assert checked, f"no study command found in {page}"


def test_own_data_page_writes_numpy_folders_that_load_and_train_two_leads(
        tmp_path, monkeypatch, capsys):
    """The page's script writes 1- and 2-lead NumPy folders; its inspect and study.train
    commands run as written (one epoch of a 2-lead model)."""
    monkeypatch.chdir(tmp_path)
    (code,) = fenced("own-data.md", "python")
    exec(compile(code, "docs/own-data.md", "exec"), {})
    dataset = load_dataset("numpy-records")
    for folder, n_leads in (("my_records", 1), ("my_records_2lead", 2)):
        arrays = dataset.load(tmp_path / folder, options={}, progress=False)
        assert len(arrays) == 12 and not arrays.quarantined, folder
        assert arrays.n_leads == n_leads and arrays.fs_hz == 250.0
    run = [argv for block in fenced("own-data.md", "bash") for argv in commands(block)
           if argv[2] in ("data_io.inspect", "study.train") and "DIR" not in argv]
    assert [argv[2] for argv in run] == ["data_io.inspect", "data_io.inspect", "study.train"]
    assert inspect_main(run[0][3:]) == 0
    capsys.readouterr()
    assert inspect_main(run[1][3:]) == 0
    assert json.loads(capsys.readouterr().out)["leads"] == 2
    assert study_train_main([*run[2][3:], "--out", "trained", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert len(metrics["history"]) == 1 and 0.0 <= metrics["val/f1_cinc"] <= 1.0
    state = torch.load(tmp_path / "trained" / "checkpoint.pt", weights_only=True)
    assert state["model_config"]["n_leads"] == 2 and state["model_config"]["n_classes"] == 4


def test_the_example_search_space_samples_builds_and_trains(tmp_path):
    (code,) = fenced("new-search-space.md", "python")
    path = tmp_path / "small_cnn.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("small_cnn", path)
    space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(space)
    assert not hasattr(space, "METRIC"), "the metric belongs to the data set, not the space"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_pooling = set()
    for _ in range(12):
        trial = study.ask()
        fixed = space.define(trial)
        study.tell(trial, 0.0)
        cfg = resolve_config(training_config(unflatten({**trial.params, **fixed})))
        seen_pooling.add("pooling" in cfg.model)
        model = build_model({"n_classes": 4, "n_leads": 1, **cfg.model})
        logits = model(torch.randn(2, 1, 600), lengths=torch.tensor([600, 400]))
        logits.sum().backward()
        assert logits.shape == (2, 4)
    assert seen_pooling == {True, False}  # the conditional branch is taken and skipped


def test_kuberay_job_parses_and_runs_a_study_that_fits_its_workers():
    job = yaml.safe_load((DOCS / "cluster" / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob"
    (argv,) = commands(job["spec"]["entrypoint"])
    args = study_run_parser().parse_args(argv[3:])
    assert args.address == "auto"
    (workers,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert float(limits["cpu"]) >= args.cpus_per_trial
    assert float(limits["nvidia.com/gpu"]) >= args.gpus_per_trial
    assert args.concurrency <= workers["maxReplicas"] * float(limits["nvidia.com/gpu"])


def test_slurm_script_is_valid_bash_that_starts_ray_and_the_study():
    script = DOCS / "cluster" / "slurm-study.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "ray start --head" in text and "ray start --address" in text
    (argv,) = commands(text)
    args = study_run_parser().parse_args(argv[3:])
    assert args.address and args.storage_path and args.gpus_per_trial == 1


def test_estimate_page_describes_the_constants_the_code_uses():
    from study.tune import estimate

    text = (DOCS / "estimating-cost.md").read_text()
    assert f"{estimate.ASYNC_ASHA_FACTOR:g} E" in text
    assert f"{estimate.PROBE_BUDGET_S:g} s" in text
    assert f"{estimate.STUDY_START_S:g} s to start Ray" in text
    assert f"{estimate.TRIAL_START_S:g} s to start a" in text
    assert np.isclose(estimate.ASYNC_ASHA_FACTOR, 1.8)
