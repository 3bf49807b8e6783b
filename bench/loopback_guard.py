"""A guard that keeps tests, drills and benchmarks on this machine.

Wraps the socket calls that reach out (``connect``, ``connect_ex``, ``sendto`` and the name
lookups) so that any address other than loopback or this machine's own interfaces, and any
host name other than ``localhost`` or a name in ``/etc/hosts``, raises `OffMachineError` before
a packet or a DNS query is sent. With ``ECG_LOOPBACK_LOG`` set, every refusal is also appended
to that file, so a refusal swallowed by a library in a subprocess (a CLI, a Ray worker) is
still seen. Subprocesses get the guard through `guarded_env`, which puts ``loopback_site/``
(a ``sitecustomize``) on their ``PYTHONPATH``.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV_LOG = "ECG_LOOPBACK_LOG"
SITE_DIR = Path(__file__).resolve().parent / "loopback_site"
PROBES_FILE = Path(__file__).resolve().parent / "cloud_probes.json"
_SIOCGIFADDR = 0x8915
_LOCAL_NAMES = {"localhost", "localhost.", "localhost.localdomain"}
_PROBE_PREFIX = "probe "

TREATED_AS_REMOTE: set[str] = set()
"""Loopback addresses and local names that the guard refuses as if they belonged to another
machine. The guard's own tests provoke refusals with these, so that no test needs the name or
address of a real remote host; anything the guard lets through still stays on this machine."""

REAL: dict[str, Callable[..., Any]] = {}
"""The unguarded socket calls while the guard is installed (tests swap in a recorder here so
that a broken guard still cannot send anything)."""


class OffMachineError(PermissionError):
    """A test, drill or benchmark tried to reach another machine."""


def _own_addresses() -> set[str]:
    """IPv4 and IPv6 addresses of this machine's interfaces (traffic to them stays here)."""
    found = {"0.0.0.0", "::"}
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # for ioctl only, never connected
    try:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:  # an interface without an IPv4 address
                continue
            found.add(socket.inet_ntoa(reply[20:24]))
    finally:
        probe.close()
    inet6 = Path("/proc/net/if_inet6")
    if inet6.is_file():
        for line in inet6.read_text().splitlines():
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    return found


def local_names() -> set[str]:
    """Host names resolved without asking another machine: ``localhost`` and the names
    ``/etc/hosts`` lists."""
    path = Path("/etc/hosts")
    listed = path.read_text().splitlines() if path.is_file() else []
    return _LOCAL_NAMES | {name.lower() for line in listed
                           for name in line.split("#", 1)[0].split()[1:]}


def _is_local_ip(host: str, own: set[str]) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or str(ip) in own or (mapped is not None and
                                                (mapped.is_loopback or str(mapped) in own))


class _Policy:
    """What may be reached: computed once when the guard is installed."""

    def __init__(self, log_path: str | None) -> None:
        self.own = _own_addresses()
        self.names = local_names()
        self.probes = set(json.loads(PROBES_FILE.read_text())["hosts"])
        self.log_path = log_path

    def refuse(self, what: str, *, host: str) -> None:
        message = f"loopback guard: {what} would leave this machine"
        if self.log_path:
            kind = _PROBE_PREFIX if self.is_probe(host) else ""
            with open(self.log_path, "a") as log:
                log.write(f"{kind}pid {os.getpid()}: {message}\n")
        raise OffMachineError(message)

    def is_probe(self, host: str) -> bool:
        """A host libraries contact on their own: a listed name, or a link-local address
        (where clouds serve instance metadata)."""
        try:
            link_local = ipaddress.ip_address(host.split("%", 1)[0]).is_link_local
        except ValueError:
            link_local = False
        return link_local or host.lower() in self.probes

    def check_address(self, family: int, address: Any) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets, netlink: never leave the machine
        host = address[0] if isinstance(address, tuple) else str(address)
        if str(host) in TREATED_AS_REMOTE or not _is_local_ip(str(host), self.own):
            self.refuse(f"a connection to {address!r}", host=str(host))

    def check_name(self, host: Any) -> None:
        if host is None or host == "":
            return  # a passive (bind) lookup
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower() in TREATED_AS_REMOTE:
            self.refuse(f"looking up the host name {name!r}", host=name)
        if name.lower() in self.names:
            return
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            self.refuse(f"looking up the host name {name!r}", host=name)
        # a numeric address needs no lookup; connect() decides whether it is local


def install(*, log_path: str | os.PathLike | None = None) -> None:
    """Guard this process's sockets (idempotent)."""
    if REAL:
        return
    policy = _Policy(str(log_path) if log_path else None)
    REAL.update(connect=socket.socket.connect, connect_ex=socket.socket.connect_ex,
                sendto=socket.socket.sendto, getaddrinfo=socket.getaddrinfo,
                gethostbyname=socket.gethostbyname, gethostbyname_ex=socket.gethostbyname_ex)

    def connect(self, address):
        policy.check_address(self.family, address)
        return REAL["connect"](self, address)

    def connect_ex(self, address):
        policy.check_address(self.family, address)
        return REAL["connect_ex"](self, address)

    def sendto(self, data, *args):
        policy.check_address(self.family, args[-1])
        return REAL["sendto"](self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        policy.check_name(host)
        return REAL["getaddrinfo"](host, *args, **kwargs)

    def gethostbyname(host):
        policy.check_name(host)
        return REAL["gethostbyname"](host)

    def gethostbyname_ex(host):
        policy.check_name(host)
        return REAL["gethostbyname_ex"](host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex


def uninstall() -> None:
    """Put the unguarded calls back."""
    if not REAL:
        return
    for name in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, name, REAL[name])
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, REAL[name])
    REAL.clear()


def guarded_env(env: dict[str, str], *, log_path: str | os.PathLike) -> dict[str, str]:
    """``env`` for a subprocess that installs the guard at start-up and logs refusals."""
    paths = [str(SITE_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
            ENV_LOG: str(log_path)}


def _logged(log_path: str | os.PathLike) -> list[str]:
    path = Path(log_path)
    return path.read_text().splitlines() if path.is_file() else []


def refusals(log_path: str | os.PathLike) -> list[str]:
    """The refusals logged so far by this process and its guarded subprocesses, cloud probes
    left out."""
    return [line for line in _logged(log_path) if not line.startswith(_PROBE_PREFIX)]


def probes(log_path: str | os.PathLike) -> list[str]:
    """The cloud-metadata probes refused so far (made by libraries on their own)."""
    return [line for line in _logged(log_path) if line.startswith(_PROBE_PREFIX)]
