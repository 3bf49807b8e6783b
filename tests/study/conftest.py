"""Tiny learnable data sets and model configs for fast trainer tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from data_io.datasets import load_dataset
from data_io.records import EcgArrays, pack_records

CINC_CLASSES = load_dataset("cinc2017").labels

TINY_CNN = {"name": "cnn", "channels": [4, 8, 8], "kernel_size": 5, "pooling": "gmp"}


def tiny_arrays(*, n_records: int = 48, seed: int = 0) -> EcgArrays:
    """Four easily told-apart waveforms (one per CinC class) of varying length at 50 Hz."""
    rng = np.random.default_rng(seed)
    signals, labels = [], []
    for i in range(n_records):
        label = i % 4
        n = int(rng.integers(150, 400))
        t = np.arange(n) / 50.0
        wave = (
            np.sin(2 * np.pi * 1.0 * t),
            np.sign(np.sin(2 * np.pi * 1.0 * t)),
            np.sin(2 * np.pi * 4.0 * t),
            rng.standard_normal(n),
        )[label]
        signals.append(np.round(1000 * (wave + 0.05 * rng.standard_normal(n))).astype(np.int16))
        labels.append(label)
    return pack_records(
        digital_signals=signals, record_ids=[f"T{i:04d}" for i in range(n_records)],
        labels=labels, classes=CINC_CLASSES, fs_hz=50.0, adc_gain=1000.0,
    )


@pytest.fixture(name="tiny_arrays")
def tiny_arrays_fixture():
    """`tiny_arrays` itself, so tests can ask for several sizes."""
    return tiny_arrays


@pytest.fixture
def tiny_config() -> dict:
    return {
        "model": dict(TINY_CNN),
        "optim": {"lr": 0.01, "batch_size": 8},
        "data": {"fs_hz": 50.0, "train_batching": "bucket", "eval_batching": "bucket"},
        "runtime": {"device": "cpu", "amp": False},
        "epochs": 3,
        "seed": 0,
    }


def _plan_fields(**changes) -> dict:
    """Every `study.tune.plan.Plan` field for a tiny synthetic CNN study, with ``changes``
    applied."""
    fields = dict(
        name="p", space="cnn", dataset="synthetic", data_dir="/d", study_dir="/s",
        storage_path="/s", optuna_storage="sqlite:///:memory:", optuna_study_name="p-1",
        metric="val/f1_cinc", mode="max", num_samples=2, max_epochs=9, grace_period=1,
        reduction_factor=3.0, concurrency=1, cpus_per_trial=1.0, gpus_per_trial=0.0, fold=0,
        n_folds=3, seed=0, fs_hz=100.0, address=None, wandb_mode="disabled", smoke=False,
        synthetic_records=48, cv_top_k=0, explain_top=0, max_failures=0, cache_dir=None,
        resume=False,
    )
    return {**fields, **changes}


@pytest.fixture
def plan_fields():
    """`_plan_fields`: tests build `Plan` objects with the changes they need."""
    return _plan_fields


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(name="free_port")
def free_port_fixture():
    """`free_port` itself: tests that start servers ask it for ports."""
    return free_port


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 that asks for a password (scram-sha-256)."""

    port: int
    user: str
    password: str
    database: str

    def url(self, *, password: str | None = None, database: str | None = None) -> str:
        """``postgresql://`` URL of a database (the server's own, or ``database``); the
        password in the URL only when given (tests otherwise pass it through PGPASSWORD)."""
        secret = f":{password}" if password is not None else ""
        return (f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/"
                f"{database or self.database}")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> PostgresServer:
    """A real PostgreSQL server for this test session, from the ``pgserver`` wheel's binaries
    (initialised as user ``pgserver`` when the tests run as root, which PostgreSQL refuses),
    listening on a free port of 127.0.0.1 only, password required. Skips when it cannot be
    started here."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver not installed (pip install -e "
                                                      '".[test]"): no PostgreSQL to test with')
    pytest.importorskip("psycopg", reason='psycopg not installed (pip install -e ".[postgresql]")')
    pgdata = tmp_path_factory.mktemp("postgres") / "data"
    server = PostgresServer(port=free_port(), user="postgres", password="study-secret",
                            database="optuna")
    system_user = "pgserver" if os.geteuid() == 0 else None
    try:
        # initdb, then a first start on a Unix socket only (trust) to set the password.
        setup = pgserver.get_server(pgdata, cleanup_mode="stop")
        setup.psql(f"ALTER ROLE {server.user} PASSWORD '{server.password}';")
        setup.psql(f"CREATE DATABASE {server.database};")
        setup.cleanup()
        (pgdata / "pg_hba.conf").write_text("local all all trust\n"
                                            "host all all 127.0.0.1/32 scram-sha-256\n")
        pgserver.pg_ctl(["-w", "-o", f"-h 127.0.0.1 -p {server.port} -k {pgdata}",
                         "-l", str(pgdata / "server.log"), "start"],
                        pgdata=pgdata, user=system_user, timeout=60)
    except Exception as exc:  # no usable binaries, no way to add the system user, ...
        pytest.skip(f"could not start a PostgreSQL server here: {type(exc).__name__}: {exc}")
    yield server
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=system_user, timeout=60)
