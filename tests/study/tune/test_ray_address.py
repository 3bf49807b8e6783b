"""`check_reachable` tells every kind of dead --address apart in seconds, on this machine only:
refused, never accepting, silent after accepting, not gRPC, unknown name; a real Ray GCS
passes."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.dead_ends import closed_port, never_accepting, silent_after_accept
from study.tune.plan import StudyError
from study.tune.ray_address import check_reachable


def test_a_closed_port_is_refused():
    address = closed_port()
    with pytest.raises(StudyError, match=rf"at {address}: Connection refused\. "):
        check_reachable(address, timeout_s=1)


@pytest.mark.parametrize("listener", [never_accepting, silent_after_accept])
def test_a_port_that_never_answers_times_out(listener):
    with listener() as address, pytest.raises(StudyError, match=r"no answer within 0\.5 s"):
        check_reachable(address, timeout_s=0.5)


@pytest.fixture
def http_server():
    """A port held by something that is not Ray: answers HTTP/1.1 to anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:  # closed at teardown by a test that never connected
            return
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_port_held_by_another_service_is_named(http_server):
    with pytest.raises(StudyError, match="is open, but the server there does not speak gRPC"):
        check_reachable(http_server, timeout_s=2)


def test_an_unknown_host_name_is_reported_without_a_lookup(monkeypatch):
    asked = []

    def unknown(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(StudyError, match=r"host name localhost not found"):
        check_reachable("localhost:6379", timeout_s=1)
    assert asked == ["localhost"]


@pytest.fixture
def gcs_address():
    """The GCS address of a real local Ray (what ``--address`` names on a cluster)."""
    import ray

    ray.init(address="local", include_dashboard=False, num_cpus=1, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_a_real_ray_gcs_passes(gcs_address):
    check_reachable(gcs_address, timeout_s=5)


def test_with_tls_only_the_connect_is_checked(http_server, monkeypatch):
    monkeypatch.setenv("RAY_USE_TLS", "1")
    check_reachable(http_server, timeout_s=2)


def test_auto_and_addresses_without_a_port_are_left_to_ray():
    check_reachable("auto")
    check_reachable("ray://head")
