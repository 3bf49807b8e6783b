"""Addresses on 127.0.0.1 where nothing answers, for the checks of an unreachable --address.

Each stands in, on this machine, for a kind of remote failure: a closed port (connection
refused), a port whose accept queue is full (a host that never answers: the kernel drops the
SYN, as a firewall does), and a port that accepts and then stays silent (a service that is not
Ray, or a hung one).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def closed_port() -> str:
    """``127.0.0.1:PORT`` for a port that was free a moment ago and is closed now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@contextmanager
def never_accepting() -> Iterator[str]:
    """``127.0.0.1:PORT`` whose accept queue is full, so a new connect times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    held: list[socket.socket] = []
    try:
        while True:  # fill the queue: one pending connection with listen(0) on Linux
            client = socket.socket()
            client.settimeout(0.5)
            try:
                client.connect(server.getsockname())
            except TimeoutError:
                client.close()
                break
            held.append(client)
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        for client in held:
            client.close()
        server.close()


@contextmanager
def silent_after_accept() -> Iterator[str]:
    """``127.0.0.1:PORT`` that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        server.close()
