"""ECG-DualNet: the encoder ablation, the STFT frames and their padding rule, the attention
between the encoders, the "++" variant, the presets' sizes and the preset-based configs."""

from __future__ import annotations

import pytest
import torch

from models import build_model, explain_by_perturbation, load_preset
from models.dualnet import SpectrogramEncoder
from models.listing import parameter_count, preset_table

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}


@pytest.fixture
def small(small_configs) -> dict:
    """A small dualnet with both encoders (tests/models/conftest.py)."""
    return small_configs["dualnet_both"]

# The work's parameter counts in millions (reference-results/ecg_dualnet_cinc2017.csv).
WORK_PARAMETERS_M = {
    "dualnet_s": 1.8, "dualnet_m": 4.3, "dualnet_l": 6.2, "dualnet_xl": 20.7,
    "dualnetpp_s": 1.8, "dualnetpp_m": 2.6, "dualnetpp_l": 3.7, "dualnetpp_xl": 8.2,
}


def test_ablation_builds_only_the_chosen_encoders(small):
    both = build_model(small)
    signal = build_model({**small, "encoders": "signal"})
    spectrogram = build_model({**small, "encoders": "spectrogram"})
    assert both.signal_encoder is not None and both.spectrogram_encoder is not None
    assert both.fusion is not None
    assert signal.spectrogram_encoder is None and signal.fusion is None
    assert spectrogram.signal_encoder is None and spectrogram.fusion is None
    n = {name: sum(p.numel() for p in m.parameters())
         for name, m in (("both", both), ("signal", signal), ("spectrogram", spectrogram))}
    assert n["both"] > n["signal"] and n["both"] > n["spectrogram"]


def test_unknown_encoders_and_bad_sizes_raise(small):
    with pytest.raises(ValueError, match="unknown encoders 'audio'"):
        build_model({**small, "encoders": "audio"})
    with pytest.raises(ValueError, match="divisible by fusion_heads"):
        build_model({**small, "latent_channels": 10, "fusion_heads": 4})
    with pytest.raises(ValueError, match="below one bin"):
        build_model({**small, "stft_window": 8, "spectrogram_channels": [4, 4, 4, 4, 4]})
    with pytest.raises(ValueError, match="stft_hop"):
        build_model({**small, "stft_hop": 64})


def test_spectrogram_frames_are_the_windows_inside_the_record():
    encoder = SpectrogramEncoder(n_leads=1, channels=[4], window=32, hop=8, latent_channels=4,
                                 axial_attention=False, attention_heads=1, dropout=0.0).eval()
    lengths = torch.tensor([100, 32, 10])
    # (L - window) // hop + 1 windows fit; a record shorter than a window keeps one frame.
    assert encoder.frame_lengths(lengths).tolist() == [9, 1, 1]
    x = torch.zeros(3, 1, 100)
    x[:, :, :10] = 1.0
    spec, _ = encoder.spectrogram(x, lengths)
    assert spec.shape == (3, 1, 17, 9)  # 32 // 2 + 1 bins, (100 - 32) // 8 + 1 frames
    assert (spec[1, :, :, 1:] == 0).all() and (spec[2, :, :, 1:] == 0).all()


def test_spectrogram_sees_the_frequency_of_a_sine():
    encoder = SpectrogramEncoder(n_leads=1, channels=[4], window=64, hop=16, latent_channels=4,
                                 axial_attention=False, attention_heads=1, dropout=0.0).eval()
    t = torch.arange(1500) / 150.0
    for hz, expected_bin in ((10.0, round(10.0 * 64 / 150)), (30.0, round(30.0 * 64 / 150))):
        x = torch.sin(2 * torch.pi * hz * t)[None, None]
        spec, _ = encoder.spectrogram(x, torch.tensor([1500]))
        # input_norm is the identity at initialization, so this is the log magnitude.
        assert int(spec[0, 0].mean(-1).argmax()) == expected_bin


def test_encoder_attention_is_a_distribution_over_frames_on_the_time_axis(make_batch, small):
    model = build_model(small).eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        _, steps, weights = model._encode(x, lengths)
        explanation = model.explain(x, lengths)
    frames = model.spectrogram_encoder.frame_lengths(lengths)
    for b in range(2):
        # Every valid signal step's weights sum to one over the valid frames only.
        valid = weights[b, : steps[b]]
        torch.testing.assert_close(valid.sum(-1), torch.ones(int(steps[b])))
        assert (weights[b, :, (frames[b] // 4).clamp(min=1):] == 0).all()
        assert (weights[b, steps[b]:] == 0).all()
    attention = explanation["encoder_attention"]
    assert attention.shape == (2, 1, x.shape[-1])
    assert (attention >= 0).all() and (attention[0, :, 1501:] == 0).all()


def test_single_encoder_models_explain_without_an_encoder_map(make_batch, small):
    x, lengths = make_batch([901, 1200])
    for encoders in ("signal", "spectrogram"):
        model = build_model({**small, "encoders": encoders}).eval()
        with torch.no_grad():
            explanation = model.explain(x, lengths)
        assert set(explanation) == {"logits", "cam"}


def test_gap_cam_averages_to_the_logits(make_batch, small):
    # With average pooling the CAM's mean over the valid steps plus the bias is the logit.
    model = build_model(small).eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        features, steps, _ = model._encode(x, lengths)
        logits = model(x, lengths)
    cam = torch.einsum("kc,bct->bkt", model.head.weight, features)
    for b in range(2):
        mean = cam[b, :, : steps[b]].mean(-1) + model.head.bias
        torch.testing.assert_close(mean, logits[b], rtol=1e-5, atol=1e-5)


def test_plus_variant_adds_axial_attention_per_stage(small):
    plain = build_model(small)
    plus = build_model({**small, "axial_attention": True})
    assert len(plain.spectrogram_encoder.attentions) == 0
    assert len(plus.spectrogram_encoder.attentions) == len(small["spectrogram_channels"])


@pytest.mark.parametrize("preset", sorted(WORK_PARAMETERS_M))
def test_preset_sizes_are_close_to_the_work(preset):
    count = parameter_count(load_preset(preset), **SHAPE) / 1e6
    assert count == pytest.approx(WORK_PARAMETERS_M[preset], rel=0.1), f"{preset}: {count:.2f} M"


def test_listing_counts_match_built_models():
    rows = {row["preset"]: row for row in preset_table(**SHAPE)}
    model = build_model({**SHAPE, **load_preset("dualnet_s")})
    assert rows["dualnet_s"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert rows["dualnet_s"]["family"] == "dualnet"


def test_a_preset_key_starts_from_the_preset_and_overrides_it():
    model = build_model({**SHAPE, "name": "dualnet", "preset": "dualnet_s", "encoders": "signal",
                         "dropout": 0.3})
    expected = {**load_preset("dualnet_s"), "encoders": "signal", "dropout": 0.3}
    assert {k: model.config[k] for k in expected} == expected
    assert "preset" not in model.config  # the checkpoint's config is self-contained
    with pytest.raises(ValueError, match="is a 'dualnet' model"):
        build_model({**SHAPE, "name": "cnn", "preset": "dualnet_s"})
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model({**SHAPE, "name": "dualnet", "preset": "dualnet_q"})


@pytest.mark.parametrize(
    ("method", "options", "key"),
    [
        ("occlusion", {"window_samples": 100, "stride_samples": 50}, "occlusion"),
        ("integrated_gradients", {"steps": 4}, "integrated_gradients"),
        ("shift_perturbation", {"target_class": 0, "grid_factor": 50, "l1_weight": 0.1,
                                "tv_weight": 0.1, "steps": 3}, "mask"),
    ],
)
def test_model_agnostic_explanations_work_on_dualnet(method, options, key, make_batch,
                                                     make_model, small):
    model = make_model(small)
    x, lengths = make_batch([1001, 700])
    maps = explain_by_perturbation(method, model, x, lengths=lengths, **options)
    assert maps[key].shape == (2, 1, 1001)
    assert torch.isfinite(maps[key]).all()
    assert not maps[key][1, :, 700:].any()
    assert maps[key][0].abs().sum() > 0
