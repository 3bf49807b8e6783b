"""`python -m study.check_cluster`: a valid file passes; each kind of broken file gets one line
naming the file and the problem, and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.check_cluster import main

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def _broken_copy(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """A copy of the repository's cluster.yaml with ``old`` replaced; returns it and the line
    number (1-based) of the change."""
    text = CLUSTER_YAML.read_text()
    assert text.count(old) == 1
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace(old, new))
    return path, text[: text.index(old)].count("\n") + 1


def _run(path: Path, capsys) -> tuple[int, str, str]:
    code = main([str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_repository_file_is_valid(capsys):
    code, out, err = _run(CLUSTER_YAML, capsys)
    assert code == 0, err
    assert out.startswith(f"{CLUSTER_YAML}: valid (2 node types, max_workers 8")
    assert err == ""


def test_a_yaml_syntax_error_names_line_and_column(tmp_path, capsys):
    path, line = _broken_copy(tmp_path, "    min_workers: 0\n", "    min_workers: 0\n  bad: [\n")
    code, out, err = _run(path, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path} line ")
    assert "YAML syntax error" in err
    assert f"started at line {line + 1} column" in err  # where the unclosed bracket is
    assert err.count("\n") == 1


def test_an_unknown_key_is_named(tmp_path, capsys):
    path, _ = _broken_copy(tmp_path, "idle_timeout_minutes: 10", "idle_timeout_minute: 10")
    code, _, err = _run(path, capsys)
    assert code == 2
    assert err == (f"error: {path}: top level: Additional properties are not allowed "
                   "('idle_timeout_minute' was unexpected)\n")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    resources: {CPU: 4, GPU: 1}\n", "",
     "available_node_types[ray.worker.gpu]: 'resources' is a required property"),
    ("  type: aws\n", "", "provider: 'type' is a required property"),
    ("    resources: {CPU: 4, GPU: 1}", "    resources: {CPU: 4, GPU: 0.5}",
     "available_node_types[ray.worker.gpu].resources.GPU: 0.5 is not of type 'integer'"),
    ("head_node_type: ray.head.cpu", "head_node_type: ray.head.gpu",
     "`head_node_type` must be one of `available_node_types`"),
])
def test_a_missing_or_wrong_field_is_named(tmp_path, capsys, old, new, message):
    path, _ = _broken_copy(tmp_path, old, new)
    code, _, err = _run(path, capsys)
    assert code == 2
    assert err.startswith(f"error: {path}: ")
    assert message in err and err.count("\n") == 1


def test_a_provider_typo_is_a_warning(tmp_path, capsys):
    path, _ = _broken_copy(tmp_path, "  availability_zone:", "  availabilty_zone:")
    code, out, err = _run(path, capsys)
    assert code == 0 and ": valid (" in out
    assert "provider.availabilty_zone" in err


def test_a_missing_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "nowhere.yaml"
    code, _, err = _run(path, capsys)
    assert code == 2
    assert err == f"error: {path}: cannot read it (No such file or directory)\n"
