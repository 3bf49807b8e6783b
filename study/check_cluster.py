"""`python -m study.check_cluster [PATH]`: check a Ray cluster file offline before `ray up`.

    python -m study.check_cluster cluster.yaml

Parses the YAML, then runs Ray's own autoscaler check in Ray's order: `prepare_config` (fills
the provider's defaults and merges the setup commands; no cloud SDK, no network) and then
`validate_config` (Ray's JSON schema plus a few cross-field checks). Prints
"PATH: valid (...)" and exits 0, or prints one line "error: PATH: ..." naming the problem
(a YAML syntax error with its line and column, a schema error with its key path) and exits 2.
Ray's schema accepts anything inside `provider` and `node_config`, where a typo is silently
ignored (a zone never used, a disk never attached); for AWS those keys are compared with the
ones this project's file uses and any other is reported as a warning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from study.library_internals import prepare_cluster_config

DEFAULT_PATH = "cluster.yaml"
# Keys Ray's AWS provider reads; anything else in `provider` is a typo Ray would ignore.
AWS_PROVIDER_KEYS = frozenset({
    "type", "region", "availability_zone", "cache_stopped_nodes", "use_internal_ips",
    "security_group", "key_pair", "cloudwatch",
})
# EC2 RunInstances parameters (plus Ray's SubnetIds) that cluster.yaml may set in a node_config.
EC2_NODE_CONFIG_KEYS = frozenset({
    "InstanceType", "ImageId", "BlockDeviceMappings", "IamInstanceProfile", "KeyName",
    "SubnetIds", "SecurityGroupIds", "InstanceMarketOptions", "TagSpecifications", "Placement",
})
# What prepare_config itself fails on without a clear message (a missing or odd `provider`);
# ValueError is validate_config's own cross-field complaint.
_RAY_ERRORS = (KeyError, TypeError, AttributeError, NotImplementedError, ValueError)


class ClusterFileError(ValueError):
    """A cluster file that `ray up` would reject; the message is one line naming the file."""


def load_cluster_yaml(path: str | Path) -> dict[str, Any]:
    """The parsed file (a mapping), or `ClusterFileError` with the line of a syntax error."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ClusterFileError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClusterFileError(f"{path}{_yaml_position(exc)}: {_yaml_problem(exc)}") from exc
    if not isinstance(config, dict):
        raise ClusterFileError(f"{path}: expected a mapping of Ray cluster settings, "
                               f"found {type(config).__name__}")
    return config


def check_cluster(path: str | Path) -> dict[str, Any]:
    """Parse and validate ``path``; return the prepared config.

    Raises:
        ClusterFileError: one line naming the file and the problem.
    """
    config = load_cluster_yaml(path)
    _check_provider(config, path=path)
    try:
        return prepare_cluster_config(config)
    except jsonschema.ValidationError as exc:
        raise ClusterFileError(f"{path}: {_key_path(exc.absolute_path)}: {exc.message}") from exc
    except _RAY_ERRORS as exc:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterFileError(f"{path}: {problem}") from exc


def unknown_keys(config: dict[str, Any]) -> list[str]:
    """Keys of an AWS file in the parts Ray's schema accepts anything in (likely typos)."""
    if config["provider"].get("type") != "aws":
        return []
    unknown = [f"provider.{key}" for key in set(config["provider"]) - AWS_PROVIDER_KEYS]
    for name, node_type in config["available_node_types"].items():
        unknown += [f"{name}.node_config.{key}"
                    for key in set(node_type.get("node_config") or {}) - EC2_NODE_CONFIG_KEYS]
    return sorted(unknown)


def describe(config: dict[str, Any]) -> str:
    """A short summary of a prepared config: node types and worker limits."""
    workers = ", ".join(f"{name} {t.get('min_workers', 0)}-{t.get('max_workers', 0)}"
                        for name, t in config["available_node_types"].items()
                        if name != config["head_node_type"])
    return (f"{len(config['available_node_types'])} node types, max_workers "
            f"{config['max_workers']}, head {config['head_node_type']}"
            + (f", workers {workers}" if workers else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study.check_cluster",
        description="Check a Ray cluster file (as used by `ray up`) offline with Ray's own "
                    "validation: YAML syntax, Ray's schema, and likely typos in the provider "
                    "and node_config sections.",
    )
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH,
                        help=f"the cluster file (default: {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    # prepare_config logs one INFO line per node type it fills in.
    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)
    try:
        config = check_cluster(args.path)
    except ClusterFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key in unknown_keys(config):
        print(f"warning: {args.path}: {key} is not a key Ray's AWS provider or this project "
              "uses; Ray ignores unknown keys there (a typo?)", file=sys.stderr)
    print(f"{args.path}: valid ({describe(config)})")
    return 0


def _check_provider(config: dict[str, Any], *, path: str | Path) -> None:
    """What prepare_config needs before it can pick the provider's defaults."""
    provider = config.get("provider")
    if not isinstance(provider, dict):
        raise ClusterFileError(f"{path}: provider: a mapping with at least 'type' (e.g. aws) "
                               "is required")
    if "type" not in provider:
        raise ClusterFileError(f"{path}: provider: 'type' is a required property")


def _key_path(parts: Iterable[Any]) -> str:
    """``["available_node_types", "ray.worker.gpu", "resources"]`` ->
    ``available_node_types[ray.worker.gpu].resources`` (a dotted name stays one key)."""
    text = ""
    for part in parts:
        if isinstance(part, int) or "." in str(part):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "top level"


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return "" if mark is None else f" line {mark.line + 1} column {mark.column + 1}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark is not None:  # where the unclosed bracket or block began
        context += f" started at line {mark.line + 1} column {mark.column + 1}"
    parts = [context, getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(exc).splitlines()[0]
    return f"YAML syntax error: {text}"


if __name__ == "__main__":
    raise SystemExit(main())
