"""The W&B API key stays out of Ray's runtime environments, whose creation Ray's runtime-env
agent logs in plain text (`python -m bench.drill_secrets` runs the real check). Fast: Ray's
actor machinery is replaced by recorders, no Ray starts."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import ray.air.integrations.wandb as ray_wandb

from study.tune.tuning import WANDB_KEY_VARIABLE, KeySafeWandbLoggerCallback

KEY = "0123456789abcdef" * 2 + "01234567"


class _Trial:
    local_path = "/tmp/trial"


class _RecordingRemote:
    """Stands in for ``ray.remote(**options)(cls)``: records the options and the actor
    arguments."""

    def __init__(self, log: dict) -> None:
        self.log = log

    def __call__(self, **options):
        self.log["options"] = options
        return lambda cls: SimpleNamespace(remote=self._actor)

    def _actor(self, **kwargs):
        self.log["kwargs"] = kwargs
        return SimpleNamespace(run=SimpleNamespace(remote=lambda: None))


@pytest.fixture
def recorded(monkeypatch) -> dict:
    log: dict = {}
    monkeypatch.setattr(ray_wandb.ray, "remote", _RecordingRemote(log))
    monkeypatch.setattr(ray_wandb, "Queue", lambda **kwargs: object())
    monkeypatch.setattr(ray_wandb, "_force_on_current_node", lambda: {})
    monkeypatch.setenv(WANDB_KEY_VARIABLE, KEY)
    return log


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_the_key_is_not_in_the_logging_actors_runtime_env(mode, recorded):
    callback = KeySafeWandbLoggerCallback(project="p", mode=mode)
    callback._start_logging_actor(_Trial(), [], project="p", mode=mode)
    assert KEY not in repr(recorded["options"]["runtime_env"])
    assert os.environ[WANDB_KEY_VARIABLE] == KEY  # the driver keeps it
    settings = recorded["kwargs"].get("settings")
    if mode == "online":
        assert settings.api_key == KEY  # the run still authenticates
    else:
        assert settings is None  # offline runs need no key


def test_the_offline_hint_gives_the_true_reason(monkeypatch, tmp_path):
    from study.tune.wandb_mode import offline_hint

    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert "no API key found" in offline_hint("/s")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert "(as asked)" in offline_hint("/s") and "k" * 40 not in offline_hint("/s")
