"""`CheckpointKeeper`: what an ending trial keeps, so an interrupted study holds only the running
trials' checkpoints and the best finished ones'."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs

from study.tune.checkpoint_keeper import CheckpointKeeper

METRIC = "val/f1_cinc"


def _trial(tmp_path, trial_id: str, *, epoch: int, score: float | None,
           status: str = "running", checkpoints: int = 2, metric: str = METRIC
           ) -> SimpleNamespace:
    path = tmp_path / trial_id
    for i in range(checkpoints):
        (path / f"checkpoint_{i:06d}").mkdir(parents=True)
        (path / f"checkpoint_{i:06d}" / "checkpoint.pt").write_bytes(b"x" * 1000)
    (path / "result.json").parent.mkdir(parents=True, exist_ok=True)
    (path / "result.json").write_text("{}")
    result = {"epoch": epoch, "trial_status": status, **({metric: score} if score is not None
                                                          else {})}
    return SimpleNamespace(trial_id=trial_id, path=str(path), last_result=result,
                           storage=SimpleNamespace(
                               storage_filesystem=pyarrow.fs.LocalFileSystem()))


def _left(tmp_path) -> dict[str, list[str]]:
    return {d.name: sorted(c.name for c in d.glob("checkpoint_*"))
            for d in sorted(tmp_path.iterdir())}


def test_ended_trials_keep_nothing_but_the_best_finished_ones_newest(tmp_path):
    keeper = CheckpointKeeper(metric=METRIC, mode="max", max_epochs=12, keep=2)
    running = _trial(tmp_path, "running", epoch=5, score=0.6)
    for trial in (_trial(tmp_path, "stopped", epoch=2, score=0.3),
                  _trial(tmp_path, "diverged", epoch=12, score=0.0, status="diverged"),
                  _trial(tmp_path, "good", epoch=12, score=0.7),
                  _trial(tmp_path, "better", epoch=12, score=0.8)):
        keeper.on_trial_complete(0, [], trial)
    assert _left(tmp_path) == {"better": ["checkpoint_000001"], "diverged": [],
                               "good": ["checkpoint_000001"],
                               "running": ["checkpoint_000000", "checkpoint_000001"],
                               "stopped": []}
    keeper.on_trial_complete(0, [], _trial(tmp_path, "best", epoch=12, score=0.9))
    # "good" drops out of the two best: its last checkpoint goes too; the running trial's stay
    assert _left(tmp_path)["good"] == [] and _left(tmp_path)["best"] == ["checkpoint_000001"]
    assert _left(tmp_path)["running"] == ["checkpoint_000000", "checkpoint_000001"]
    assert (tmp_path / "good" / "result.json").is_file()  # only checkpoints are removed
    assert keeper.freed_bytes == 8 * 1000  # 2 + 2 + 1 + 1, then best's older and good's
    assert running.trial_id not in keeper.scores


def test_a_trial_that_ranks_below_the_kept_ones_is_pruned_at_once(tmp_path):
    keeper = CheckpointKeeper(metric="val/loss", mode="min", max_epochs=3, keep=1)
    keeper.on_trial_complete(0, [], _trial(tmp_path, "low", epoch=3, score=0.2,
                                           metric="val/loss"))
    keeper.on_trial_complete(0, [], _trial(tmp_path, "high", epoch=3, score=0.5,
                                           metric="val/loss"))
    assert _left(tmp_path) == {"high": [], "low": ["checkpoint_000001"]}


def test_keep_zero_leaves_no_finished_trial_a_checkpoint(tmp_path):
    keeper = CheckpointKeeper(metric=METRIC, mode="max", max_epochs=3, keep=0)
    keeper.on_trial_complete(0, [], _trial(tmp_path, "cv", epoch=3, score=0.5))
    assert _left(tmp_path) == {"cv": []}
