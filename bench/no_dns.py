"""Run a module with every host-name lookup failing in-process, as an unknown name does.

    python -m bench.no_dns [--unknown NAME] study.run --address localhost:6379 ...

Lets a drill show what the user sees for a host name that does not resolve without asking a
resolver (another machine): ``socket.getaddrinfo`` and ``gethostbyname`` raise the resolver's
own ``socket.gaierror`` (EAI_NONAME) for every name outside ``localhost`` and ``/etc/hosts``;
numeric addresses pass through unchanged. ``--unknown NAME`` makes a local name fail too, so a
drill can show an unknown name while only ever naming this machine.
"""

from __future__ import annotations

import ipaddress
import runpy
import socket
import sys
from collections.abc import Callable
from typing import Any

from bench.loopback_guard import local_names


def _numeric(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def failing_lookup(real: Callable[..., Any], *, known: set[str]) -> Callable[..., Any]:
    """``real`` (a lookup function) for known names and numbers; EAI_NONAME for the rest."""

    def lookup(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in (None, "") or _numeric(name) or str(name).lower() in known:
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return lookup


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if args else 2
    known = local_names()
    while args[:1] == ["--unknown"] and len(args) > 2:
        known.discard(args[1].lower())
        args = args[2:]
    socket.getaddrinfo = failing_lookup(socket.getaddrinfo, known=known)
    socket.gethostbyname = failing_lookup(socket.gethostbyname, known=known)
    sys.argv = list(args)
    runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
