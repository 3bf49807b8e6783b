"""Fixtures shared by every test package: where the optional real data lives, and the
loopback guard that keeps every test (and every process it starts) on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import loopback_guard

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_cinc_dir() -> Path:
    """The 3,000 real CinC 2017 records beside the clone (skips when absent)."""
    path = SHARED_DATA / "cinc2017"
    if not (path / "REFERENCE.csv").is_file():
        pytest.skip(f"real CinC 2017 data not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_mitdb_dir() -> Path:
    """MIT-BIH record 100 beside the clone (skips when absent)."""
    path = SHARED_DATA / "mitdb"
    if not (path / "100.hea").is_file():
        pytest.skip(f"MIT-BIH data not found at {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def loopback_log(tmp_path_factory) -> Path:
    """Guard this process's sockets, and those of every Python subprocess a test starts
    (CLIs, drills, Ray workers, through ``PYTHONPATH``), for the whole session; returns the
    file where refusals are logged. W&B stays offline and Ray's usage statistics off, whatever
    the user's environment says."""
    log = tmp_path_factory.mktemp("loopback") / "refusals.log"
    saved = {key: os.environ.get(key) for key in
             ("PYTHONPATH", "WANDB_MODE", "RAY_USAGE_STATS_ENABLED",
              "RAY_USAGE_STATS_REPORT_URL", loopback_guard.ENV_LOG)}
    os.environ.update(loopback_guard.guarded_env(dict(os.environ), log_path=log))
    # Ray posts usage statistics a minute into a session unless told not to, and a cluster
    # started with `ray start` (or cluster_utils) posts "disabled" even then: to a closed
    # port on this machine here.
    os.environ.update(WANDB_MODE="offline", RAY_USAGE_STATS_ENABLED="0",
                      RAY_USAGE_STATS_REPORT_URL="http://127.0.0.1:9/")
    loopback_guard.install(log_path=log)
    yield log
    loopback_guard.uninstall()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _stays_on_this_machine(loopback_log):
    """Fail the test during which any process tried to reach another machine, even where a
    library swallowed the guard's error."""
    before = len(loopback_guard.refusals(loopback_log))
    yield
    new = loopback_guard.refusals(loopback_log)[before:]
    if new:
        pytest.fail("traffic off this machine:\n" + "\n".join(new), pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own data cache, never the user's."""
    monkeypatch.setenv("ECG_STUDY_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


SMALL_STUDY = ["--dataset", "synthetic", "--synthetic-records", "48", "--smoke", "--max-epochs",
               "3", "--grace-period", "1", "--reduction-factor", "3", "--wandb-mode", "offline"]


def run_study_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m study.run ARGS` in its own process group (so a test can SIGKILL it).

    Output goes to `cwd/driver-<pid>.log` (read it with `driver_output`): a pipe nobody reads
    while a test polls would fill up and block the driver.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(cwd / f"driver-{len(list(cwd.glob('driver-*.log')))}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "study.run", *args], cwd=cwd, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def driver_output(proc: subprocess.Popen, *, timeout: float) -> str:
    """Wait for a driver started by `run_study_cli`; return everything it printed."""
    proc.wait(timeout=timeout)
    return proc.log_path.read_text()


def kill_at_first_checkpoint(proc: subprocess.Popen, tune_dir: Path, *,
                             timeout_s: float = 300) -> None:
    """SIGKILL a driver started by `run_study_cli` (its whole process group: driver, local Ray
    and workers) once a trial of its Tune experiment ``tune_dir`` saved a first checkpoint.

    Any ``checkpoint_*`` counts (Tune numbers them from 000000):
    `study.tune.checkpoint_keeper` prunes a trial's older ones as it ends, so one name may
    exist only for seconds."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and not list(tune_dir.glob("*/checkpoint_*")):
        assert proc.poll() is None, (
            f"the driver exited ({proc.returncode}) before any checkpoint:\n"
            + proc.log_path.read_text()[-4000:])
        time.sleep(0.5)
    assert list(tune_dir.glob("*/checkpoint_*")), "no trial reached a checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(name="kill_at_first_checkpoint")
def kill_at_first_checkpoint_fixture():
    return kill_at_first_checkpoint


@pytest.fixture(name="run_study_cli", scope="session")
def run_study_cli_fixture():
    """`run_study_cli` itself, for tests that start and kill studies."""
    return run_study_cli


@pytest.fixture(name="driver_output", scope="session")
def driver_output_fixture():
    return driver_output


@pytest.fixture(name="small_study_args")
def small_study_args_fixture() -> list[str]:
    return list(SMALL_STUDY)


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory) -> tuple[Path, str]:
    """A real small study (local Ray, Optuna TPE, ASHA, W&B offline, CV of the best config
    beside the cnn4_gap baseline) on synthetic data, run once per test session: (study
    directory, its console output)."""
    cwd = tmp_path_factory.mktemp("study")
    proc = run_study_cli(["--space", "cnn", "--num-samples", "6", "--concurrency", "1",
                          "--folds", "3", "--cv-top-k", "1", "--baseline", "cnn4_gap",
                          "--name", "small", *SMALL_STUDY], cwd)
    out = driver_output(proc, timeout=540)
    assert proc.returncode == 0, out[-4000:]
    return cwd / "runs" / "small", out


class WideBeatDetector:
    """Records with narrow beats and one wide ("abnormal") beat, and hand-set weights that make
    a one-channel CNN trunk respond to the wide beat only, so any map read off the trunk must
    peak on that beat (the time-axis tests of `models` and `study`).

    The first convolution is a box filter of ``BOX`` samples: a wide beat (Gaussian, sigma
    `WIDE_SIGMA`) gives about 0.84, a narrow one (`NARROW_SIGMA`) about 0.24; its BatchNorm
    shifts by -`THRESHOLD`, so after the ReLU only the wide beat is left. Every later layer
    passes its input through its centre tap. Each step of a layer then averages the input
    samples it pools, symmetrically, and the wide beat's step is the one that holds it.
    """

    BOX = 21
    WIDE_SIGMA = 10.0
    NARROW_SIGMA = 2.0
    THRESHOLD = 0.5
    BEAT_EVERY = 120

    def record(self, n_samples: int, abnormal_at: int) -> np.ndarray:
        """(n_samples,) narrow beats every `BEAT_EVERY` samples (none within 60 of the wide
        beat) and one wide beat centred on sample ``abnormal_at``; peak height 1."""
        t = np.arange(n_samples, dtype=np.float64)
        beats = [b for b in range(30, n_samples, self.BEAT_EVERY) if abs(b - abnormal_at) > 60]
        x = sum((np.exp(-0.5 * ((t - b) / self.NARROW_SIGMA) ** 2) for b in beats),
                np.zeros(n_samples))
        return x + np.exp(-0.5 * ((t - abnormal_at) / self.WIDE_SIGMA) ** 2)

    def batch(self, records: list[tuple[int, int]]):
        """(x (B, 1, T) zero-padded to the longest, lengths (B,)) of (n_samples, abnormal_at)
        records, as torch tensors."""
        import torch  # here, so that test packages without torch do not load it

        size = max(n for n, _ in records)
        x = torch.zeros(len(records), 1, size)
        for row, (n, at) in enumerate(records):
            x[row, 0, :n] = torch.from_numpy(self.record(n, at)).float()
        return x, torch.tensor([n for n, _ in records])

    def set_trunk(self, trunk) -> None:
        """Hand-set a `models.layers.CnnTrunk` of one channel per layer (kernel >= `BOX`)."""
        trunk.requires_grad_(False)
        for layer, block in enumerate(trunk.blocks):
            kernel = block.conv.weight.shape[-1]
            block.conv.weight.zero_()
            if layer == 0:
                centre = kernel // 2
                block.conv.weight[0, 0, centre - self.BOX // 2: centre + self.BOX // 2 + 1] = (
                    1.0 / self.BOX)
            else:
                block.conv.weight[0, 0, kernel // 2] = 1.0
            norm = block.norm
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(var + eps) = x
            norm.weight.fill_(1.0)
            norm.bias.fill_(-self.THRESHOLD if layer == 0 else 0.0)


@pytest.fixture
def wide_beat() -> WideBeatDetector:
    """The wide-beat records and hand-set trunk of the time-axis tests."""
    return WideBeatDetector()
