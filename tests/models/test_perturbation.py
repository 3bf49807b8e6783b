"""Model-agnostic explanations: shift perturbation, occlusion, integrated gradients.

A tiny CNN trained in the module fixture separates sines (class 0) from sines with a fast
burst in a known window (class 1), so a correct explanation has to point at that window.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models import build_model
from models.perturbation import (
    OCCLUSION_BASELINES,
    PERTURBATION_METHODS,
    explain_by_perturbation,
    integrated_gradients,
    occlusion,
    shift_perturbation,
)

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}

SIZE = 256
BURST = (150, 182)  # samples [start, stop) where class 1 carries its burst
TINY = {**SHAPE, "name": "cnn", "channels": [4, 8], "kernel_size": 5, "pooling": "gmp"}

# Cheap options per method for the shape / padding / state tests.
FAST_OPTIONS: dict[str, dict] = {
    "shift_perturbation": {
        "target_class": 0,
        "grid_factor": 50,
        "l1_weight": 0.1,
        "tv_weight": 0.1,
        "steps": 15,
        "lr": 0.2,
    },
    "occlusion": {"window_samples": 64, "stride_samples": 32},
    "integrated_gradients": {"steps": 8},
}
MAP_KEYS = {
    "shift_perturbation": "mask",
    "occlusion": "occlusion",
    "integrated_gradients": "integrated_gradients",
}


def _sines_with_bursts(n_records: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy sines of random frequency and phase; odd records get a burst in ``BURST``."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(SIZE, dtype=torch.float32)
    start, stop = BURST
    records, labels = [], []
    for i in range(n_records):
        frequency = 2 + 3 * torch.rand(1, generator=generator)
        phase = 2 * math.pi * torch.rand(1, generator=generator)
        record = torch.sin(2 * math.pi * frequency * t / SIZE + phase)
        record = record + 0.05 * torch.randn(SIZE, generator=generator)
        if i % 2:
            record[start:stop] += 1.5 * torch.sin(2 * math.pi * t[start:stop] / 4)
        records.append(record)
        labels.append(i % 2)
    return torch.stack(records)[:, None, :], torch.tensor(labels)  # (N, 1, T), (N,)


@pytest.fixture(scope="module")
def trained_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(
        {**TINY, "channels": [8, 8], "kernel_size": 7, "dropout_min": 0.0, "dropout_max": 0.0}
        | {"n_classes": 2}
    )
    x, y = _sines_with_bursts(32, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def burst_records(trained_model) -> torch.Tensor:
    """Held-out class-1 records, checked to be classified as class 1."""
    x, y = _sines_with_bursts(8, seed=1)
    x = x[y == 1]
    with torch.no_grad():
        assert (trained_model(x).argmax(-1) == 1).all(), "the fixture model failed to train"
    return x


@pytest.fixture(scope="module")
def shifts(trained_model, burst_records) -> dict[float, dict[str, torch.Tensor]]:
    """Shift perturbations of the burst records towards class 0, by L1 weight."""
    return {
        l1_weight: shift_perturbation(
            trained_model,
            burst_records,
            target_class=0,
            grid_factor=8,
            l1_weight=l1_weight,
            tv_weight=0.1,
            steps=300,
        )
        for l1_weight in (0.1, 1.0)
    }


# ---------------------------------------------------------------------------------------------
# the explanations find the burst


def test_occlusion_peaks_inside_the_discriminative_window(trained_model, burst_records):
    maps = occlusion(trained_model, burst_records, window_samples=16, stride_samples=4)
    peaks = maps["occlusion"][:, 0].argmax(-1)
    start, stop = BURST
    assert ((peaks >= start) & (peaks < stop)).all(), peaks.tolist()


def test_shift_perturbation_moves_the_prediction_to_the_target(shifts):
    result = shifts[1.0]
    before, after = result["target_probability_before"], result["target_probability_after"]
    assert (before < 0.2).all()
    assert (after > before + 0.4).all(), (before.tolist(), after.tolist())


def test_shift_mask_is_sparse_and_concentrated_on_the_burst(shifts):
    mask = shifts[1.0]["mask"][:, 0]  # (B, T)
    total = mask.sum(-1)
    top_fifth = mask.sort(-1, descending=True).values[:, : SIZE // 5].sum(-1)
    assert (top_fifth > 0.6 * total).all()
    # The burst window, widened by one grid spacing, covers 19% of the samples; it must
    # hold at least twice that share of the deformation.
    start, stop = BURST
    near_burst = mask[:, start - 8 : stop + 8].sum(-1)
    assert (near_burst > 2 * (stop - start + 16) / SIZE * total).all()


def test_a_larger_l1_weight_gives_a_smaller_deformation(shifts):
    weak, strong = shifts[0.1]["mask"], shifts[1.0]["mask"]
    assert (strong.mean(dim=(1, 2)) < 0.7 * weak.mean(dim=(1, 2))).all()


def test_shifted_signal_is_the_input_read_at_the_deformed_times(shifts, burst_records):
    result = shifts[0.1]
    d = result["deformation"][:, 0]
    positions = (torch.arange(SIZE) + d).clamp(0, SIZE - 1)  # (B, T)
    left = positions.floor().long()
    right = (left + 1).clamp(max=SIZE - 1)
    x = burst_records[:, 0]
    expected = torch.lerp(x.gather(1, left), x.gather(1, right), positions - left)
    torch.testing.assert_close(result["shifted_signal"][:, 0], expected)
    assert torch.equal(result["mask"], d.abs()[:, None])


# ---------------------------------------------------------------------------------------------
# shift perturbation details


def test_zero_steps_leave_the_signal_unchanged(make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([301, 250])
    options = {**FAST_OPTIONS["shift_perturbation"], "steps": 0}
    result = shift_perturbation(model, x, lengths=lengths, **options)
    assert torch.equal(result["shifted_signal"], x)
    assert not result["mask"].any()
    torch.testing.assert_close(
        result["target_probability_after"], result["target_probability_before"]
    )


def test_max_shift_bounds_the_deformation(make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([400])
    options = {**FAST_OPTIONS["shift_perturbation"], "l1_weight": 0.0, "tv_weight": 0.0}
    free = shift_perturbation(model, x, lengths=lengths, **options | {"lr": 1.0})
    bounded = shift_perturbation(
        model, x, lengths=lengths, **options | {"lr": 1.0, "max_shift_samples": 3.0}
    )
    assert free["mask"].max() > 3.0  # the bound is active
    assert bounded["mask"].max() <= 3.0


# ---------------------------------------------------------------------------------------------
# every method: shapes, padding, model state, determinism


@pytest.mark.parametrize("method", sorted(PERTURBATION_METHODS))
def test_maps_match_the_input_shape_and_are_zero_past_lengths(method, make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([1001, 700, 333])
    x[1, :, 700:] = 5.0  # garbage in the padding must not leak into any map
    maps = explain_by_perturbation(method, model, x, lengths=lengths, **FAST_OPTIONS[method])
    assert maps[MAP_KEYS[method]].shape == (3, 1, 1001)
    for name, value in maps.items():
        if value.dim() == 3:
            assert value.shape == (3, 1, 1001), name
            assert not value[1, :, 700:].any() and not value[2, :, 333:].any(), name
        else:
            assert value.shape == (3,), name
    assert maps[MAP_KEYS[method]][0].abs().sum() > 0  # the maps are not trivially zero


@pytest.mark.parametrize("method", sorted(PERTURBATION_METHODS))
def test_padded_batch_explains_each_record_as_if_alone(method, make_model, make_batch):
    # float64: in float32 the padded and the lone forward differ by rounding, which the shift
    # optimisation can amplify (Adam takes full steps on knots with near-zero gradients, and
    # a GMP argmax may flip), so only float64 makes "as if alone" an exact statement.
    model = make_model(TINY).double()
    x, lengths = make_batch([1001, 333])
    x = x.double()
    batched = explain_by_perturbation(method, model, x, lengths=lengths, **FAST_OPTIONS[method])
    alone = explain_by_perturbation(method, model, x[1:, :, :333], **FAST_OPTIONS[method])
    for name, value in alone.items():
        expected = batched[name][1:, ..., :333] if value.dim() == 3 else batched[name][1:]
        torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-9, msg=name)


@pytest.mark.parametrize("method", sorted(PERTURBATION_METHODS))
def test_model_state_is_untouched_and_eval_mode_is_used(method, make_model, make_batch):
    model = make_model({**TINY, "dropout_min": 0.5, "dropout_max": 0.5})
    x, lengths = make_batch([500, 420])
    reference = explain_by_perturbation(
        method, model.eval(), x, lengths=lengths, **FAST_OPTIONS[method]
    )
    model.train()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    maps = explain_by_perturbation(method, model, x, lengths=lengths, **FAST_OPTIONS[method])

    # Same maps as in eval mode: dropout was off (and nothing random happened).
    for name, value in reference.items():
        assert torch.equal(maps[name], value), name
    assert model.training and all(m.training for m in model.modules())
    assert not frozen.requires_grad
    assert all(p.requires_grad for p in list(model.parameters())[1:])
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


@pytest.mark.parametrize("method", sorted(PERTURBATION_METHODS))
def test_explanations_are_deterministic(method, make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([600, 451])
    first = explain_by_perturbation(method, model, x, lengths=lengths, **FAST_OPTIONS[method])
    torch.manual_seed(123)  # a different global RNG state must not matter
    second = explain_by_perturbation(method, model, x, lengths=lengths, **FAST_OPTIONS[method])
    for name, value in first.items():
        assert torch.equal(second[name], value), name


def test_unknown_method_names_raise_and_list_the_known_ones(make_model, make_batch):
    x, _ = make_batch([100])
    with pytest.raises(ValueError, match=r"integrated_gradients.*occlusion.*shift_perturbation"):
        explain_by_perturbation("lime", make_model(TINY), x)


# ---------------------------------------------------------------------------------------------
# occlusion and integrated gradients details


def test_occlusion_explains_the_predicted_class_by_default(make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([300, 280, 260])
    options = FAST_OPTIONS["occlusion"]
    with torch.no_grad():
        predicted = model.eval()(x, lengths).argmax(-1)
    default = occlusion(model, x, lengths=lengths, **options)
    explicit = occlusion(model, x, lengths=lengths, target_class=predicted, **options)
    assert torch.equal(default["occlusion"], explicit["occlusion"])
    other = occlusion(model, x, lengths=lengths, target_class=(predicted + 1) % 4, **options)
    assert not torch.equal(default["occlusion"], other["occlusion"])


def test_occlusion_baselines(make_model, make_batch):
    model = make_model(TINY)
    x, lengths = make_batch([300, 211])
    x = x + 2.0  # a non-zero mean makes "mean" differ from "zero"
    maps = {
        baseline: occlusion(
            model, x, lengths=lengths, baseline=baseline, **FAST_OPTIONS["occlusion"]
        )
        for baseline in OCCLUSION_BASELINES
    }
    assert not torch.equal(maps["zero"]["occlusion"], maps["mean"]["occlusion"])
    with pytest.raises(ValueError, match=r"mean.*zero"):
        occlusion(model, x, baseline="noise", **FAST_OPTIONS["occlusion"])


def test_occlusion_windows_cover_every_sample_and_average_their_drops():
    # A "model" whose class-0 logit is the signal's sum: a zero window over k ones drops the
    # probability by a known amount, and sample t's value is the mean over covering windows.
    class SumModel(torch.nn.Module):
        def forward(self, x, lengths=None):
            total = x.sum(dim=(1, 2))
            return torch.stack([total, torch.zeros_like(total)], dim=-1)

    x = torch.full((1, 1, 11), 0.1, dtype=torch.float64)
    maps = occlusion(SumModel(), x, target_class=0, window_samples=4, stride_samples=3)["occlusion"]
    # Windows start at 0, 3, 6 (4 samples each) and 9 (cut short to 2): samples 0..8 see
    # only full-window drops, sample 9 the mean of a full and a short one, sample 10 the
    # short one alone.
    def drop(k: int) -> torch.Tensor:
        full = torch.tensor(1.1, dtype=torch.float64)
        return torch.sigmoid(full) - torch.sigmoid(full - 0.1 * k)

    torch.testing.assert_close(maps[0, 0, :9], drop(4).expand(9))
    torch.testing.assert_close(maps[0, 0, 9], (drop(4) + drop(2)) / 2)
    torch.testing.assert_close(maps[0, 0, 10], drop(2))
    # A window longer than the record blanks all of it.
    whole = occlusion(SumModel(), x, target_class=0, window_samples=50, stride_samples=3)
    torch.testing.assert_close(whole["occlusion"][0, 0], drop(11).expand(11))
    # On the logit, a window of k ones drops it by 0.1 k, however saturated the probability.
    logits = occlusion(SumModel(), x, target_class=0, window_samples=4, stride_samples=3,
                       output="logit")["occlusion"]
    torch.testing.assert_close(logits[0, 0, :9], torch.full((9,), 0.4, dtype=torch.float64))


@pytest.mark.parametrize("pooling", ["gap", "gmp"])
def test_integrated_gradients_are_complete(pooling, make_model, make_batch):
    model = make_model({**TINY, "pooling": pooling}).double().eval()
    x, lengths = make_batch([400, 257])
    x = x.double()
    targets = torch.tensor([1, 3])
    maps = integrated_gradients(model, x, lengths=lengths, target_class=targets, steps=64)
    with torch.no_grad():
        gap = model(x, lengths) - model(torch.zeros_like(x), lengths)  # (B, K)
    expected = gap.gather(1, targets[:, None]).squeeze(1)
    total = maps["integrated_gradients"].sum(dim=(1, 2))
    torch.testing.assert_close(total, expected, rtol=0.02, atol=1e-3 * expected.abs().max())


def test_integrated_gradients_of_a_linear_model_are_weight_times_input():
    # Constant gradient: the quadrature is exact for any number of steps, so a wrong
    # quadrature weight (e.g. Captum's trapezoid rule, whose weights sum to (n - 1) / n)
    # shows up at once.
    class LinearModel(torch.nn.Module):
        def __init__(self, weights):
            super().__init__()
            self.weights = torch.nn.Parameter(weights)  # (K, C, T)

        def forward(self, x, lengths=None):
            # Records are explained cropped to their length: the first T weights apply.
            return torch.einsum("bct,kct->bk", x, self.weights[..., : x.shape[-1]]) + 1.0

    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(3, 2, 50, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 2, 50, generator=generator, dtype=torch.float64)
    maps = integrated_gradients(
        LinearModel(weights), x, lengths=torch.tensor([50, 31]), target_class=2, steps=3
    )
    expected = (weights[2] * x).sum(1, keepdim=True)  # (B, 1, T), leads summed
    expected[1, :, 31:] = 0.0
    torch.testing.assert_close(maps["integrated_gradients"], expected)
