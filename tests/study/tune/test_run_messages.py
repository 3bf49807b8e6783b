"""What `python -m study.run` tells the user: an `--address` where no Ray cluster answers is
one clear error in seconds, before `ray.init` (which retries such an address for many
minutes); a study whose trials diverged says where, and that there is no best trial."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest
import ray

from bench.dead_ends import closed_port, never_accepting
from study.run import main
from study.tune.driver import summary
from study.tune.results import trials_frame


@pytest.fixture(params=["refused", "ray-client-refused", "never-accepts", "unknown-name"])
def dead_address(request, monkeypatch):
    """(address, reason) for an --address where no Ray cluster answers, all on this machine:
    an unknown host name is "localhost" with every lookup failing in-process, as the resolver
    would fail for a name it does not know, so no resolver is asked and no other host named."""
    if request.param == "unknown-name":
        def unknown(host, *args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        monkeypatch.setattr(socket, "getaddrinfo", unknown)
        yield "localhost:6379", "host name localhost not found"
    elif request.param == "never-accepts":
        with never_accepting() as address:
            yield address, "no answer within 5 s"
    else:
        prefix = "ray://" if request.param == "ray-client-refused" else ""
        yield prefix + closed_port(), "Connection refused"


def test_an_unreachable_address_fails_fast(dead_address, tmp_path, capsys, monkeypatch):
    address, reason = dead_address
    monkeypatch.chdir(tmp_path)

    def must_not_start(*args, **kwargs):
        raise AssertionError("ray.init called for an address nobody answers at")

    monkeypatch.setattr(ray, "init", must_not_start)
    start = time.monotonic()
    code = main(["--space", "cnn", "--dataset", "synthetic", "--synthetic-records", "16",
                 "--name", "a", "--address", address])
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: cannot join the Ray cluster at {address}: {reason}.")
    assert err.count("\n") == 1
    assert not (tmp_path / "runs" / "a").exists()  # nothing written: a retry needs no --resume


def _diverged(trial_id: str, epoch: int) -> dict:
    message = f"training diverged at epoch {epoch}: loss is nan at batch 2"
    history = [{"epoch": e, "val/f1_cinc": 0.5, "trial_status": "running"}
               for e in range(1, epoch)]
    history.append({"epoch": epoch, "val/f1_cinc": 0.0, "trial_status": "diverged",
                     "message": message})
    return {"trial_id": trial_id, "config": {"optim": {"lr": 1e9}}, "history": history,
            "error": None}


def test_summary_when_every_trial_diverged_says_where_and_that_there_is_no_best():
    frame = trials_frame([_diverged("a1", 1), _diverged("b2", 2)], milestones=[1, 3])
    plan = SimpleNamespace(name="s", max_epochs=3, metric="val/f1_cinc", study_dir="runs/s")
    lines = summary(plan, frame, best=None).splitlines()
    assert lines[0] == "study s: 2 trials (diverged 2)"
    assert lines[1] == "  diverged: trial a1: training diverged at epoch 1: loss is nan at batch 2"
    assert lines[2] == "  diverged: trial b2: training diverged at epoch 2: loss is nan at batch 2"
    assert lines[3].startswith("no best trial: no trial completed the full budget of 3 epochs")
