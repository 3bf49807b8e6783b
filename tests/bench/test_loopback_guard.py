"""The loopback guard that every test runs under refuses to reach another machine, in this
process and in the subprocesses tests start, and logs what it refused.

The deliberate attempts below can never send anything: the guard's real socket calls are
swapped for a recorder first, so even a broken guard would only be recorded."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from bench import loopback_guard

OFF_MACHINE = ("guard-test.invalid", 9)
"""Another machine, by a name that is never looked up: the guard refuses it in-process (and
the recorder below stands in for the real calls, see the module docstring)."""


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


def test_a_connect_to_another_machine_is_refused_and_logged(recorder, deliberate):
    with socket.socket() as sock:
        with pytest.raises(loopback_guard.OffMachineError, match=r"guard-test\.invalid"):
            sock.connect(OFF_MACHINE)
        with pytest.raises(loopback_guard.OffMachineError):
            sock.connect_ex(OFF_MACHINE)
    assert recorder == [], "the guard let the call through to the socket"
    logged = deliberate()
    assert len(logged) == 2 and all("guard-test.invalid" in line for line in logged)


def test_a_swallowed_refusal_is_still_logged_for_the_per_test_check(recorder, deliberate):
    """Libraries catch OSError; the per-test check in conftest reads the log instead."""
    with contextlib.suppress(OSError):
        socket.create_connection(OFF_MACHINE, timeout=0.1)
    assert recorder == []
    assert len(deliberate()) == 1


def test_looking_up_a_name_is_refused_before_any_query(recorder, deliberate):
    with pytest.raises(loopback_guard.OffMachineError, match=r"ray-head\.lab"):
        socket.getaddrinfo("ray-head.lab", 6379)
    with pytest.raises(loopback_guard.OffMachineError):
        socket.gethostbyname("ray-head.lab")
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
        try:
            socket.socket().connect(("guard-test.invalid", 9))
        except PermissionError as exc:
            print("refused:", exc)
    """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert ran.returncode == 0, ran.stderr
    assert "refused: loopback guard: a connection to ('guard-test.invalid', 9)" in ran.stdout
    logged = deliberate()
    assert len(logged) == 1 and logged[0].startswith("pid ")


def test_cloud_metadata_probes_are_refused_but_kept_apart(recorder, deliberate, loopback_log):
    """Ray's dashboard probes the cloud metadata services on every start: refused like any
    other host, logged as probes, which do not fail a test."""
    with pytest.raises(loopback_guard.OffMachineError):
        socket.getaddrinfo("metadata.google.internal", 80)
    assert recorder == []
    assert deliberate() == []
    assert any("metadata.google.internal" in line
               for line in loopback_guard.probes(loopback_log))
