from __future__ import annotations

import itertools

import pytest
import torch

from study.engine.config import Optim
from study.engine.schedules import build_schedule, load_schedule_state, step_schedule

COSINE = Optim(lr_schedule="cosine", lr=1e-3, lr_final_ratio=0.02, lr_decay=0.95)


def _rates(groups: list[float], *, epochs: int) -> list[list[float]]:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in groups]
    optimizer = torch.optim.Adam(
        [{"params": [p], "lr": lr} for p, lr in zip(params, groups, strict=True)]
    )
    scheduler = build_schedule(optimizer, optim=COSINE, epochs=epochs)
    rates = [[g["lr"] for g in optimizer.param_groups]]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        rates.append([g["lr"] for g in optimizer.param_groups])
    return rates


def test_one_rate_follows_torchs_cosine_annealing():
    param = torch.nn.Parameter(torch.zeros(1))
    reference = torch.optim.Adam([param], lr=1e-3)
    torch_cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=12, eta_min=2e-5)
    expected = [1e-3]
    for _ in range(12):
        reference.step()
        torch_cosine.step()
        expected.append(reference.param_groups[0]["lr"])
    assert [r[0] for r in _rates([1e-3], epochs=12)] == pytest.approx(expected, rel=1e-9)


def test_every_group_ends_at_the_final_ratio_of_its_own_rate_and_never_rises():
    # 1e-5 is a pre-trained trunk at cnn_lr_scale 0.01: below an absolute eta_min of 2e-5.
    starts = [1e-3, 2.5e-4, 1e-5]
    rates = _rates(starts, epochs=12)
    assert rates[-1] == pytest.approx([0.02 * lr for lr in starts], rel=1e-9)
    for group in range(len(starts)):
        series = [r[group] for r in rates]
        assert all(b < a for a, b in itertools.pairwise(series)), series


def test_a_checkpoint_of_torchs_cosine_annealing_resumes_where_it_stopped():
    # checkpoints written before cosine became a factor per group hold CosineAnnealingLR's state
    param = torch.nn.Parameter(torch.zeros(1))
    old_optimizer = torch.optim.Adam([param], lr=1e-3)
    old = torch.optim.lr_scheduler.CosineAnnealingLR(old_optimizer, T_max=12, eta_min=2e-5)
    for _ in range(5):
        old_optimizer.step()
        old.step()
    optimizer = torch.optim.Adam([param], lr=1e-3)
    optimizer.load_state_dict(old_optimizer.state_dict())
    scheduler = build_schedule(optimizer, optim=COSINE, epochs=12)
    load_schedule_state(scheduler, old.state_dict())
    resumed = []
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        old_optimizer.step()
        old.step()
        resumed.append((optimizer.param_groups[0]["lr"], old_optimizer.param_groups[0]["lr"]))
    assert [new for new, _ in resumed] == pytest.approx([o for _, o in resumed], rel=1e-6)
    assert resumed[-1][0] == pytest.approx(2e-5)


@pytest.mark.parametrize("epochs", [12, 100])
def test_multistep_is_the_published_milestones_at_quarters(epochs):
    # ECG-DualNet: MultiStepLR(milestones=[E // 4, 2E // 4, 3E // 4], gamma=0.1), stepped
    # after every epoch.
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = build_schedule(optimizer, optim=Optim(lr_schedule="multistep", lr_decay=0.1,
                                                   lr_milestones=[0.25, 0.5, 0.75]),
                               epochs=epochs)
    rates = []
    for _ in range(epochs):  # the rate each epoch trains at
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    milestones = [epochs // 4, 2 * epochs // 4, 3 * epochs // 4]
    expected = [1e-3 * 0.1 ** sum(e >= m for m in milestones) for e in range(epochs)]
    assert rates == pytest.approx(expected, rel=1e-9)
    assert rates[-1] == pytest.approx(1e-6)


def test_plateau_halves_every_rate_after_five_epochs_without_a_better_loss():
    # the HADLN reproduction: x0.5 after a 5-epoch plateau of the validation loss
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.Adam([{"params": [params[0]], "lr": 1e-3},
                                  {"params": [params[1]], "lr": 1e-4}])
    scheduler = build_schedule(
        optimizer, optim=COSINE.model_copy(update={
            "lr_schedule": "plateau", "lr_plateau_factor": 0.5, "lr_plateau_patience": 5}),
        epochs=50)
    rates = []
    for loss in [1.0, 0.9, 0.9, 0.95, 0.91, 0.92, 0.9, 0.93, 0.5]:
        step_schedule(scheduler, loss=loss)
        rates.append([g["lr"] for g in optimizer.param_groups])
    # best 0.9 at step 2; steps 3-7 do not beat it (5 epochs), step 8 is the sixth: halved
    assert [r[0] for r in rates] == pytest.approx([1e-3] * 7 + [5e-4, 5e-4])
    assert rates[-1][1] == pytest.approx(5e-5)


def test_schedules_without_a_metric_ignore_the_loss():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = build_schedule(optimizer,
                               optim=COSINE.model_copy(update={"lr_schedule": "exponential"}),
                               epochs=3)
    step_schedule(scheduler, loss=float("nan"))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.95e-3)
