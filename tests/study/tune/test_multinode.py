"""`python -m study.run --address` on a real two-node Ray cluster on this machine.

A head and a worker node (`ray.cluster_utils.Cluster`, 1 CPU each) run as separate raylets;
the study joins them from a subprocess, exactly as a user joins a cluster. With two trials
of 1 CPU at once, Ray has to use both nodes. The second test removes the worker node while a
trial runs on it: Tune's FailureConfig must retry that trial on the head from its last
checkpoint, and the study must still end with every trial complete and no epoch lost or
repeated.

Token authentication (on by default in Ray 2.60) is set up explicitly: the cluster, this
process's Ray client and the driver subprocess all get the same ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN``. A driver without them fails after ~20 s with ``InvalidAuthToken``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench.ray_cluster import local_cluster, token_auth

# About 2.5 min for the module; .ci/run runs it in its recovery step.
pytestmark = pytest.mark.slow

NAME = "mn"
@pytest.fixture
def cluster() -> Iterator[tuple[object, object, object]]:
    """(cluster, head node, worker node): two raylets of 1 CPU each, token auth on."""
    with token_auth(), local_cluster(2) as ray_cluster:
        (worker,) = ray_cluster.worker_nodes
        yield ray_cluster, ray_cluster.head_node, worker


def _node_label(node) -> str:
    """The ``node`` metric `study.tune.trainable` reports for trials on ``node``."""
    return f"{socket.gethostname()}/{node.node_id[:12]}"


def _start_study(address: str, cwd: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """The study driver as a subprocess in its own process group; output goes to a file (a
    pipe nobody reads while the test polls would fill up and block the driver)."""
    # --no-test, --explain-top 0: these studies check where trials run, not the final training
    # on a test set or the explanations of the best trial
    args = ["--space", "cnn", "--dataset", "synthetic", "--smoke", "--concurrency", "2",
            "--cpus-per-trial", "1", "--wandb-mode", "disabled", "--address", address,
            "--no-test", "--explain-top", "0",
            "--name", NAME, "--cache-dir", str(cwd / "cache"), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = cwd / "driver.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "study.run", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _wait(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"study still running after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture
def driver_cleanup() -> Iterator[list[subprocess.Popen]]:
    """Kill the process group of every driver left running (a failed assertion, a timeout)."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _trial_results(tune_dir: Path) -> dict[str, list[dict]]:
    """Reported rows per trial directory, read from Tune's `result.json` files."""
    trials = {}
    for path in tune_dir.glob("run_trial_*/result.json"):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written right now
        trials[path.parent.name] = rows
    return trials


def test_study_uses_both_nodes(cluster, tmp_path, driver_cleanup):
    ray_cluster, head, worker = cluster
    proc, log = _start_study(ray_cluster.address, tmp_path, "--synthetic-records", "48",
                             "--num-samples", "4", "--max-epochs", "2", "--grace-period", "2")
    driver_cleanup.append(proc)
    out = _wait(proc, log, timeout=420)  # about 1.5 min alone; a shared machine can triple it

    frame = pd.read_parquet(tmp_path / "runs" / NAME / "trials.parquet")
    assert frame["trial_id"].nunique() == 4, out[-4000:]
    assert set(frame["node"]) == {_node_label(head), _node_label(worker)}
    per_trial = frame.drop_duplicates("trial_id")
    assert (per_trial["stop_reason"] == "completed").all(), per_trial["stop_reason"].tolist()
    for _, rows in frame.groupby("trial_id"):
        assert rows["epoch"].tolist() == [1, 2]
        assert rows["node"].nunique() == 1  # nothing failed, so no trial moved


def test_study_survives_losing_the_worker_node(cluster, tmp_path, driver_cleanup):
    ray_cluster, head, worker = cluster
    max_epochs, num_samples = 4, 6
    # grace period = budget: ASHA stops nothing, so every trial must end "completed".
    proc, log = _start_study(ray_cluster.address, tmp_path, "--synthetic-records", "96",
                             "--num-samples", str(num_samples), "--max-epochs", str(max_epochs),
                             "--grace-period", str(max_epochs), "--max-failures", "2")
    driver_cleanup.append(proc)
    tune_dir = tmp_path / "runs" / NAME / f"{NAME}-tune"
    on_worker = _node_label(worker)

    # Remove the worker once a trial has completed and another one is running on the worker
    # with at least two epochs to go (so it cannot finish before the node is gone).
    victim = None
    deadline = time.monotonic() + 180
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        trials = _trial_results(tune_dir)
        done = [t for t, rows in trials.items() if rows and rows[-1]["epoch"] >= max_epochs]
        running = [t for t, rows in trials.items()
                   if rows and rows[-1]["node"] == on_worker
                   and rows[-1]["epoch"] <= max_epochs - 2]
        if done and running:
            victim = running[0]
            ray_cluster.remove_node(worker)
        else:
            time.sleep(0.1)
    assert victim is not None, f"no trial to interrupt on the worker:\n{log.read_text()[-4000:]}"
    victim_id = victim.split("_")[2]

    out = _wait(proc, log, timeout=240)
    frame = pd.read_parquet(tmp_path / "runs" / NAME / "trials.parquet")
    per_trial = frame.drop_duplicates("trial_id").set_index("trial_id")
    assert len(per_trial) == num_samples, out[-4000:]
    assert (per_trial["stop_reason"] == "completed").all(), per_trial["error"].tolist()
    for trial_id, rows in frame.groupby("trial_id"):
        assert rows["epoch"].tolist() == list(range(1, max_epochs + 1)), trial_id
    # The interrupted trial resumed on the head from its checkpoint: its first epochs ran on
    # the worker, the rest on the head, no epoch repeated.
    moved = frame[frame["trial_id"] == victim_id]
    assert moved["node"].iloc[0] == on_worker
    assert moved["node"].iloc[-1] == _node_label(head)
    assert set(frame["node"]) == {_node_label(head), on_worker}
