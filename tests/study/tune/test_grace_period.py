"""ASHA's default grace period: one epoch past the trials' learning-rate warm-up (no Ray)."""

from __future__ import annotations

import pytest

from study import run
from study.tune import plan as plan_module


def _plan(tmp_path, *extra):
    args = run.build_parser().parse_args(
        ["--space", "cnn", "--dataset", "synthetic", "--name", "g", "--study-dir",
         str(tmp_path / "study"), "--wandb-mode", "disabled", "--max-epochs", "12", *extra])
    return plan_module.make_plan(args, wandb_mode="disabled")


@pytest.mark.parametrize(("extra", "grace", "milestones"), [
    ((), 2, [2, 6, 12]),  # the default one-epoch warm-up ends before the first rung
    (("--set", "optim/warmup_epochs=0"), 1, [1, 3, 9, 12]),
    (("--set", "optim/warmup_epochs=0.5"), 1, [1, 3, 9, 12]),
    (("--set", "optim/warmup_epochs=2.5"), 3, [3, 9, 12]),
    (("--grace-period", "1"), 1, [1, 3, 9, 12]),  # given: taken as it is
    (("--set", "optim/warmup_epochs=20"), 12, [12]),  # never past the budget
])
def test_the_first_rung_follows_the_warm_up(tmp_path, extra, grace, milestones):
    plan = _plan(tmp_path, *extra)
    assert plan.grace_period == grace
    assert plan.milestones == milestones
