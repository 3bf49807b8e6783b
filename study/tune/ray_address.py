"""Whether a Ray cluster answers at an ``--address``, told in seconds and before Ray starts."""

from __future__ import annotations

import os
import socket

from study.tune.plan import StudyError

TIMEOUT_S = 5.0
"""How long the connect, and then the wait for the server's first frame, may each take."""

_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_EMPTY_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # length 0, type SETTINGS, no flags, id 0
_SETTINGS_TYPE = 4
_FRAME_HEADER = 9


def check_reachable(address: str, *, timeout_s: float = TIMEOUT_S) -> None:
    """Fail in seconds, before anything is written, when no Ray cluster answers at ``address``.

    ray.init retries an address where nothing answers (or a name that does not resolve) for
    many minutes, printing only log lines. Both a Ray head's GCS port and a Ray Client server
    (``ray://``) speak gRPC, whose server answers an HTTP/2 client preface with a SETTINGS
    frame; so one TCP connect plus that exchange tells a refused port, an unknown host name, a
    host that never answers and a port held by something that is not Ray apart. With
    ``RAY_USE_TLS`` the server expects TLS first, so only the connect is checked; ``auto`` is
    left to Ray.

    Raises:
        StudyError: naming the address and the reason.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            if not _tls_expected():
                _expect_grpc(sock, timeout_s=timeout_s)
    except OSError as exc:
        reason = _reason(exc, host=host, port=port, timeout_s=timeout_s)
        raise StudyError(
            f"cannot join the Ray cluster at {address}: {reason}. "
            f"Check the address (the head's `ray status` shows it) and that port {port} is "
            "open to this machine") from exc


class NotGrpcError(OSError):
    """Something listens at the port, but it is not a gRPC (Ray) server."""


def _expect_grpc(sock: socket.socket, *, timeout_s: float) -> None:
    sock.settimeout(timeout_s)
    sock.sendall(_HTTP2_PREFACE + _EMPTY_SETTINGS)
    header = b""
    while len(header) < _FRAME_HEADER:
        chunk = sock.recv(_FRAME_HEADER - len(header))
        if not chunk:
            raise NotGrpcError("the connection was closed without a gRPC answer")
        header += chunk
    if header[3] != _SETTINGS_TYPE:
        raise NotGrpcError("the server there does not speak gRPC")


def _tls_expected() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").strip().lower() in {"1", "true", "yes"}


def _reason(exc: OSError, *, host: str, port: str, timeout_s: float) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host name {host} not found"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, NotGrpcError):
        return f"port {port} is open, but {exc} (is it the head's GCS port, 6379 by default?)"
    return exc.strerror or str(exc)  # e.g. "Connection refused"
