"""The loopback guard that every test runs under refuses to reach another machine, in this
process and in the subprocesses tests start, and logs what it refused.

The deliberate attempts below can never send anything: they aim at a loopback address and a
local name that the guard is told to treat as another machine's (`TREATED_AS_REMOTE`), and the
guard's real socket calls are swapped for a recorder first, so even a broken guard would only
be recorded, and would still not leave this machine."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from bench import loopback_guard

OFF_MACHINE = ("127.0.0.9", 9)
"""Stands for another machine's address (see `remote`)."""

REMOTE_NAME = "localhost.localdomain"
"""Stands for another machine's host name (see `remote`)."""


@pytest.fixture
def remote(monkeypatch):
    """Make the guard treat `OFF_MACHINE` and `REMOTE_NAME` as another machine's."""
    monkeypatch.setattr(loopback_guard, "TREATED_AS_REMOTE", {OFF_MACHINE[0], REMOTE_NAME})


@pytest.fixture
def recorder(monkeypatch):
    """Replace the real socket calls under the guard by a recorder that never sends."""
    reached: list[str] = []

    def record(name):
        def call(*args, **kwargs):
            reached.append(name)
            raise ConnectionRefusedError(111, "recorder: not sent")
        return call

    def lookup(host, *args, **kwargs):
        return record("getaddrinfo")(host, *args, **kwargs)

    for name in ("connect", "connect_ex"):
        monkeypatch.setitem(loopback_guard.REAL, name, record(name))
    monkeypatch.setitem(loopback_guard.REAL, "getaddrinfo", lookup)
    return reached


@pytest.fixture
def deliberate(loopback_log):
    """The refusals this test provokes on purpose: returned as they are logged, then removed
    so that the session's per-test check does not fail the test for them."""
    kept = loopback_guard.refusals(loopback_log)

    def new() -> list[str]:
        return loopback_guard.refusals(loopback_log)[len(kept):]

    yield new
    loopback_log.write_text("".join(f"{line}\n" for line in kept))


def test_the_guard_is_installed_for_the_whole_session():
    assert loopback_guard.REAL, "conftest's session fixture did not install the guard"
    assert loopback_guard.ENV_LOG in os.environ
    assert str(loopback_guard.SITE_DIR) in os.environ["PYTHONPATH"].split(os.pathsep)


def test_a_connect_to_another_machine_is_refused_and_logged(remote, recorder, deliberate):
    with socket.socket() as sock:
        with pytest.raises(loopback_guard.OffMachineError, match=r"127\.0\.0\.9"):
            sock.connect(OFF_MACHINE)
        with pytest.raises(loopback_guard.OffMachineError):
            sock.connect_ex(OFF_MACHINE)
    assert recorder == [], "the guard let the call through to the socket"
    logged = deliberate()
    assert len(logged) == 2 and all("127.0.0.9" in line for line in logged)


def test_a_swallowed_refusal_is_still_logged_for_the_per_test_check(remote, recorder, deliberate):
    """Libraries catch OSError; the per-test check in conftest reads the log instead."""
    with contextlib.suppress(OSError):
        socket.create_connection(OFF_MACHINE, timeout=0.1)
    assert recorder == []
    assert len(deliberate()) == 1


def test_looking_up_a_name_is_refused_before_any_query(remote, recorder, deliberate):
    with pytest.raises(loopback_guard.OffMachineError, match=r"localhost\.localdomain"):
        socket.getaddrinfo(REMOTE_NAME, 6379)
    with pytest.raises(loopback_guard.OffMachineError):
        socket.gethostbyname(REMOTE_NAME)
    assert recorder == []
    assert len(deliberate()) == 2


def test_loopback_and_local_names_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(2)
        port = server.getsockname()[1]
        socket.create_connection(("localhost", port), timeout=2).close()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert socket.getaddrinfo(None, 0, flags=socket.AI_PASSIVE)


def test_subprocesses_run_under_the_guard(deliberate):
    code = textwrap.dedent("""
        import socket, sys
        guard = sys.modules["ecg_loopback_guard"]
        guard.REAL["connect"] = lambda *a: sys.exit("the guard let a connect through")
        guard.TREATED_AS_REMOTE.add("127.0.0.9")
        try:
            socket.socket().connect(("127.0.0.9", 9))
        except PermissionError as exc:
            print("refused:", exc)
    """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert ran.returncode == 0, ran.stderr
    assert "refused: loopback guard: a connection to ('127.0.0.9', 9)" in ran.stdout
    logged = deliberate()
    assert len(logged) == 1 and logged[0].startswith("pid ")


def test_cloud_metadata_probes_are_refused_but_kept_apart(
    monkeypatch, recorder, deliberate, loopback_log
):
    """Ray's dashboard probes the cloud metadata services on every start: refused like any
    other host, logged as probes, which do not fail a test. The probe here is a listed name
    the guard is told to treat as remote (a local one), so nothing could reach a cloud."""
    listed = json.loads(loopback_guard.PROBES_FILE.read_text())["hosts"]
    assert listed, "no cloud probe names listed"
    assert all(loopback_guard._Policy(None).is_probe(host) for host in listed)
    monkeypatch.setattr(loopback_guard, "TREATED_AS_REMOTE", {REMOTE_NAME})
    policy_probes = {*listed, REMOTE_NAME}
    monkeypatch.setattr(loopback_guard._Policy, "is_probe",
                        lambda self, host: host.lower() in policy_probes)
    with pytest.raises(loopback_guard.OffMachineError):
        socket.getaddrinfo(REMOTE_NAME, 80)
    assert recorder == []
    assert deliberate() == []
    assert any(REMOTE_NAME in line for line in loopback_guard.probes(loopback_log))
