"""cluster.yaml: valid under Ray's own autoscaler schema (checked offline) and safe to publish.

Ray's check is `prepare_config` (fills the AWS defaults from Ray's defaults.yaml and merges the
setup commands; no boto3, no network) followed by `validate_config` (the JSON schema plus a
few cross-field checks). The schema does not look inside `provider` or `node_config`, so the
keys there are compared with the ones this file may use. Both checks live in
`study.check_cluster` (the user's command); this file applies them to the repository's file.
"""

from __future__ import annotations

import copy
import re
import shlex
import socket
import sys
from pathlib import Path

import jsonschema
import pytest
import ray

from study.check_cluster import load_cluster_yaml, unknown_keys
from study.library_internals import prepare_cluster_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"
PROJECT_REMOTE = "~/ecg-study"
DATA_REMOTE = "~/data/cinc2017"
TOKEN_PATH = "~/.ray/auth_token"

SECRET_PATTERNS = {
    "W&B key assigned": re.compile(r"WANDB_API_KEY\s*[=:]\s*\S"),
    "Ray token assigned": re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*\S"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS credential assigned": re.compile(
        r"(?i)aws_(?:secret_access_key|access_key_id|session_token)\s*[=:]\s*\S"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "long hex token": re.compile(r"\b[0-9a-f]{40,}\b"),  # W&B keys: 40 hex; Ray tokens: 64
}


def raw_config() -> dict:
    return load_cluster_yaml(CLUSTER_YAML)


def secrets_in(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def documented_study_args() -> list[str]:
    """The `python -m study.run ...` command of the header comment, as argv."""
    lines = [line.lstrip("#").strip() for line in CLUSTER_YAML.read_text().splitlines()]
    start = next(i for i, line in enumerate(lines) if "python -m study.run" in line)
    command = [lines[start]]
    while command[-1].endswith("\\"):
        command[-1] = command[-1][:-1]
        command.append(lines[start + len(command)])
    words = shlex.split(" ".join(command))
    return words[words.index("study.run") + 1:]


def worker_types(config: dict) -> dict[str, dict]:
    return {name: node_type for name, node_type in config["available_node_types"].items()
            if name != config["head_node_type"]}


@pytest.fixture
def offline(monkeypatch):
    """No sockets and no boto3: proves the validation needs neither."""
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for module in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, module, None)  # `import boto3` now raises


@pytest.fixture
def config(offline) -> dict:
    return prepare_cluster_config(raw_config())


def test_passes_rays_schema_offline(config):
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]


def test_head_has_no_gpu_and_workers_have_one(config):
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["max_workers"] == 0
    (worker,) = worker_types(config).values()
    assert worker["resources"]["GPU"] == 1
    assert worker["resources"]["CPU"] >= 1
    assert worker["min_workers"] == 0
    assert 1 <= worker["max_workers"] <= config["max_workers"]


def test_every_node_installs_the_project_and_the_local_ray(config):
    for key in ("head_setup_commands", "worker_setup_commands"):  # merged by prepare_config
        installs = [c for c in config[key] if "pip install" in c]
        assert any(f"-e {PROJECT_REMOTE}" in c for c in installs), key
        # The cluster must run the Ray that runs `ray up` (this environment's).
        assert any(f'"ray[default,tune]=={ray.__version__}"' in c for c in installs), key
        assert not any("torch==" in c for c in installs), "the CPU torch pin is for CPU machines"


def test_head_installs_boto3_for_the_autoscaler(config):
    # Setting head_setup_commands replaces Ray's default, which is what installed boto3.
    assert any(re.search(r"pip install .*\bboto3\b", c) for c in config["head_setup_commands"])


def test_project_source_is_mounted_without_local_environments(config):
    assert config["file_mounts"][PROJECT_REMOTE] == "."
    assert ".gitignore" in config["rsync_filter"]  # keeps .venv, data/ and runs/ at home
    assert ".venv/" in (CLUSTER_YAML.parent / ".gitignore").read_text().splitlines()


def test_token_auth_reaches_every_node(config):
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for c in config[key] if "ray start" in c]
    assert len(starts) == 2
    assert all("RAY_AUTH_MODE=token ray start" in c for c in starts)
    assert all("--autoscaling-config=~/ray_bootstrap_config.yaml" in c
               for c in config["head_start_ray_commands"] if "ray start" in c)
    assert any("export RAY_AUTH_MODE=token" in c for c in config["setup_commands"])
    assert any("ray get-auth-token --generate" in c for c in config["head_setup_commands"])
    assert TOKEN_PATH in config["cluster_synced_files"]


def test_data_lands_on_the_head_and_reaches_each_worker(config):
    fetches = [c for c in config["head_setup_commands"] if "data_io.fetch cinc2017" in c]
    assert fetches and all(f"--dest {DATA_REMOTE}" in c for c in fetches)
    assert not any("data_io.fetch" in c for c in config["initialization_commands"])
    assert DATA_REMOTE in config["cluster_synced_files"]


def test_nodes_share_one_image_and_workers_can_write_to_s3(config):
    node_configs = [t["node_config"] for t in config["available_node_types"].values()]
    images = {nc["ImageId"] for nc in node_configs}
    assert len(images) == 1 and images.pop().startswith("ami-")
    for name, worker in worker_types(config).items():
        assert "Arn" in worker["node_config"]["IamInstanceProfile"], name


def test_documented_study_command_parses_and_fits_the_workers(config):
    from study.run import build_parser

    args = build_parser().parse_args(documented_study_args())
    (worker,) = worker_types(config).values()
    assert args.address == "auto"
    assert args.storage_path.startswith("s3://")
    assert args.dataset == "cinc2017" and args.data_dir == DATA_REMOTE
    assert args.gpus_per_trial == worker["resources"]["GPU"]
    assert args.cpus_per_trial <= worker["resources"]["CPU"]
    assert args.concurrency == worker["max_workers"]


def test_keys_the_schema_ignores_are_known(config):
    assert unknown_keys(config) == []


def test_the_schema_ignores_provider_typos_so_we_check_them(offline):
    broken = raw_config()
    broken["provider"]["availabilty_zone"] = broken["provider"].pop("availability_zone")
    prepare_cluster_config(broken)  # Ray accepts it and would launch in whatever zone AWS picks
    assert unknown_keys(broken) == ["provider.availabilty_zone"]


def test_no_secrets_in_the_file():
    text = CLUSTER_YAML.read_text()
    assert secrets_in(text) == []
    assert "aws_credentials" not in raw_config()["provider"]


@pytest.mark.parametrize("planted", [
    "export WANDB_API_KEY=0123abcd",
    "RAY_AUTH_TOKEN: tok",
    "key: AKIAABCDEFGHIJKLMNOP",
    "aws_secret_access_key = abc",
    "-----BEGIN RSA PRIVATE KEY-----",
    "0123456789abcdef0123456789abcdef01234567",
])
def test_the_secret_scan_finds_planted_secrets(planted):
    assert secrets_in(CLUSTER_YAML.read_text() + f"\n# {planted}\n")


def _worker(c: dict) -> dict:
    (worker,) = worker_types(c).values()
    return worker


def _unknown_top_level_key(c):
    c["max_worker"] = 8


def _node_type_without_resources(c):
    del _worker(c)["resources"]


def _fractional_gpu(c):
    _worker(c)["resources"]["GPU"] = 0.5


def _gpu_as_string(c):
    _worker(c)["resources"]["GPU"] = "1"


def _unknown_node_type_key(c):
    _worker(c)["max_worker"] = 8


def _undefined_head_type(c):
    c["head_node_type"] = "no.such.type"


def _more_min_workers_than_max(c):
    _worker(c)["min_workers"] = c["max_workers"] + 1


@pytest.mark.parametrize(("break_it", "error", "message"), [
    (_unknown_top_level_key, jsonschema.ValidationError, "max_worker"),
    (_node_type_without_resources, jsonschema.ValidationError, "'resources' is a required"),
    (_fractional_gpu, jsonschema.ValidationError, "0.5 is not of type 'integer'"),
    (_gpu_as_string, jsonschema.ValidationError, "'1' is not of type 'integer'"),
    (_unknown_node_type_key, jsonschema.ValidationError, "max_worker"),
    (_undefined_head_type, ValueError, "must be one of `available_node_types`"),
    (_more_min_workers_than_max, ValueError, "smaller than the sum of `min_workers`"),
])
def test_broken_copies_are_rejected(offline, break_it, error, message):
    raw = raw_config()
    broken = copy.deepcopy(raw)
    break_it(broken)
    assert broken != raw
    with pytest.raises(error, match=re.escape(message)):
        prepare_cluster_config(broken)
