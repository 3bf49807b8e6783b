"""A local multi-node Ray cluster with token authentication, for benchmarks and tests.

Ray 2.60 turns token authentication on by default: the cluster, this process's Ray client and
any driver started from here need the same ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN``, or
they fail after ~20 s with ``InvalidAuthToken`` (STACK-NOTES). The nodes are raylets on this
machine (`ray.cluster_utils.Cluster`) and share its cores.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from ray.cluster_utils import Cluster

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "OMP_NUM_THREADS")
"""Environment variables `token_auth` sets and restores."""


def _refresh_ray_auth_config() -> None:
    """Make this process's Ray client re-read ``RAY_AUTH_*`` (it caches them at import)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def token_auth() -> Iterator[None]:
    """A fresh Ray token for the clusters started inside; the environment restored after."""
    saved = {key: os.environ.get(key) for key in AUTH_ENV}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                       "OMP_NUM_THREADS": "1"})
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    _refresh_ray_auth_config()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_ray_auth_config()


@contextmanager
def local_cluster(n_nodes: int) -> Iterator[Cluster]:
    """A head and ``n_nodes - 1`` worker raylets of 1 CPU each on this machine."""
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1},
                          shutdown_at_exit=True)
        for _ in range(n_nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
