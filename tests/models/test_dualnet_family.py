"""ECG-DualNet(++): the encoder ablation, the signal windows, the STFT, the conditional batch
norm, the axial attention as published, the published padding switch and the presets."""

from __future__ import annotations

import pytest
import torch

from models import build_model, explain_by_perturbation, load_preset
from models.dualnet import (
    AxialAttention,
    ConditionalBatchNorm2d,
    Spectrogram,
    signal_windows,
    window_counts,
)
from models.listing import preset_table

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}


@pytest.fixture
def small(small_configs) -> dict:
    """A small LSTM dualnet with both encoders (tests/models/conftest.py)."""
    return small_configs["dualnet_lstm"]


def test_ablation_builds_only_the_chosen_encoders(small):
    both = build_model(small)
    signal = build_model({**small, "encoders": "signal"})
    spectrogram = build_model({**small, "encoders": "spectrogram"})
    assert both.signal_encoder is not None and both.spectrogram_encoder is not None
    assert signal.spectrogram_encoder is None and signal.project is None
    assert spectrogram.signal_encoder is None
    # Without a signal vector the batch norms are plain (no conditioning weights).
    norms = [m for m in spectrogram.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert norms and all(m.project is None for m in norms)
    assert all(m.project is not None for m in both.modules()
               if isinstance(m, ConditionalBatchNorm2d))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoders": "audio"}, "unknown encoders 'audio'"),
        ({"signal_encoder": "gru"}, "unknown signal_encoder 'gru'"),
        ({"window_step": 300}, "window_step <= window_samples"),
        ({"axial_stages": [3]}, "axial_stages \\[3\\] are not stages"),
        ({"axial_stages": [1], "axial_groups": 8}, "divisible by 2 x axial_groups"),
        ({"stft_window": 8, "stft_hop": 4, "spectrogram_channels": [4, 4, 4, 4, 4]},
         "below one"),
        ({"stft_hop": 64}, "stft_hop"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_options_raise(small, change, message):
    with pytest.raises(ValueError, match=message):
        build_model({**small, **change})


def test_windows_cover_each_record_as_the_published_unfold_does():
    # 256-sample windows every 224: a record of 18,000 samples gives the published 80; a
    # shorter one as many as cover it, the last zero-padded past its end.
    lengths = torch.tensor([18000, 1000, 256, 100])
    counts = window_counts(lengths, window=256, step=224, max_windows=80)
    assert counts.tolist() == [80, 5, 1, 1]
    x = torch.zeros(4, 1, 18000)
    for b, length in enumerate(lengths.tolist()):
        x[b, 0, :length] = torch.arange(1, length + 1)
    windows = signal_windows(x, counts, window=256, step=224)
    assert windows.shape == (4, 80, 256)
    torch.testing.assert_close(windows[0], x[0, 0, :17952].unfold(0, 256, 224))
    assert windows[1, 4, 0] == 897 and windows[1, 4, 103] == 1000 and windows[1, 4, 104] == 0


def test_the_lstm_vector_is_its_output_after_the_records_last_window(small):
    model = build_model({**small, "encoders": "signal"}).eval()
    encoder = model.signal_encoder
    x = torch.randn(2, 1, 1200)
    lengths = torch.tensor([1200, 700])
    x[1, :, 700:] = 0
    with torch.no_grad():
        vector, steps, counts = encoder(x, lengths)
        alone, _ = encoder.lstm(signal_windows(x[1:, :, :700], counts[1:], window=64, step=56))
    assert counts.tolist() == [22, 13]  # ceil((L - 64) / 56) + 1
    torch.testing.assert_close(vector[1], alone[0, -1])
    torch.testing.assert_close(steps[1, :, 12], alone[0, -1])


def test_the_stft_is_the_published_torchaudio_spectrogram():
    # torchaudio.transforms.Spectrogram(n_fft=64, win_length=64, hop_length=32, power=1,
    # normalized=True): centred with reflection, |STFT| / sqrt(sum(window^2)); then the
    # published log(clamp(1e-8)).
    stft = Spectrogram(n_fft=64, hop=32)
    record = torch.randn(3001)
    window = torch.hann_window(64)
    reference = torch.stft(record, n_fft=64, hop_length=32, window=window, center=True,
                           pad_mode="reflect", return_complex=True).abs()
    reference = torch.log((reference / window.pow(2).sum().sqrt()).clamp(min=1e-8))
    batch = torch.full((2, 1, 4000), 7.0)  # garbage past the first record
    batch[0, 0, :3001] = record
    batch[1, 0] = torch.randn(4000)
    spectrum, frames = stft(batch, torch.tensor([3001, 4000]))
    assert frames.tolist() == [1 + 3001 // 32, 1 + 4000 // 32] == [94, 126]
    torch.testing.assert_close(spectrum[0, 0, :, :94], reference, rtol=1e-4, atol=1e-4)
    assert (spectrum[0, :, :, 94:] == 0).all()


def test_conditional_batch_norm_scales_and_shifts_by_the_vector():
    norm = ConditionalBatchNorm2d(3, latent=5).eval()
    x, z = torch.randn(2, 3, 4, 6), torch.randn(2, 5)
    scale, shift = (z @ norm.project.weight.T).chunk(2, dim=-1)
    expected = scale[..., None, None] * norm.norm(x) + shift[..., None, None]
    torch.testing.assert_close(norm(x, z), expected)
    torch.testing.assert_close(norm(x, None), norm.norm(x))


def published_axial_attention(module: AxialAttention, seq: torch.Tensor) -> torch.Tensor:
    """The published AxialAttention2d computation (model.py:433-465) on (N, C, L), L = span,
    with its einsum strings, its cat along positions and its view."""
    n, c, length = seq.shape
    g, gc = module.groups, module.group_channels
    qkv = module.qkv(seq).reshape(n, g, 2 * gc, length)
    query, key, value = qkv.split([gc // 2, gc // 2, gc], dim=2)
    index = (torch.arange(length)[:, None] - torch.arange(length)[None, :] + length - 1)
    embeddings = module.relative.index_select(1, index.view(-1)).view(2 * gc, length, length)
    q_emb, k_emb, v_emb = embeddings.split([gc // 2, gc // 2, gc], dim=0)
    query_embedded = torch.einsum("bgci, cij -> bgij", query, q_emb)
    key_embedded = torch.einsum("bgci, cij -> bgij", key, k_emb)
    query_key = torch.einsum("bgci, bgcj -> bgij", query_embedded, key_embedded)
    similarity = torch.cat([query_key, query_embedded, key_embedded], dim=1)
    similarity = module.similarity_norm(similarity).view(n, 3, g, length, length).sum(dim=1)
    similarity = torch.softmax(similarity, dim=3)
    attention_map = torch.einsum("bgij, bgcj->bgci", similarity, value)
    attention_map_embedded = torch.einsum("bgij, cij->bgci", similarity, v_emb)
    output = torch.cat([attention_map, attention_map_embedded], dim=-1).view(n, 2 * c, length)
    return module.output_norm(output).view(n, c, 2, length).sum(dim=-2)


@pytest.mark.parametrize("training", [False, True])
def test_axial_attention_computes_the_published_formula(make_model, training):
    torch.manual_seed(0)
    module = AxialAttention(8, span=6, groups=2, along_time=True)
    module.train(training)
    seq = torch.randn(5, 8, 6)
    with torch.no_grad():
        got = module._attend(seq, torch.ones(5, 6, dtype=torch.bool))
        expected = published_axial_attention(module, seq)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_axial_attention_over_fewer_positions_uses_the_same_relative_offsets():
    # A sequence shorter than the span reads the embeddings of its offsets -(L-1)..L-1,
    # i.e. a module of span L holding that slice of the table.
    torch.manual_seed(0)
    wide = AxialAttention(8, span=10, groups=2, along_time=True).eval()
    narrow = AxialAttention(8, span=4, groups=2, along_time=True).eval()
    narrow.load_state_dict({**wide.state_dict(), "relative": wide.relative[:, 6:13]})
    seq = torch.randn(3, 8, 4)
    valid = torch.ones(3, 4, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(wide._attend(seq, valid), narrow._attend(seq, valid))


def test_axial_attention_ignores_positions_past_a_records_frames():
    torch.manual_seed(0)
    module = AxialAttention(8, span=10, groups=2, along_time=True).eval()
    x = torch.randn(2, 8, 3, 10)
    frames = torch.tensor([10, 6])
    noisy = x.clone()
    noisy[1, :, :, 6:] = 9.0
    with torch.no_grad():
        out, again = module(x, frames), module(noisy, frames)
        alone = module(x[1:, :, :, :6], frames[1:])
    torch.testing.assert_close(out[1, :, :, :6], again[1, :, :, :6])
    torch.testing.assert_close(out[1, :, :, :6], alone[0], rtol=1e-5, atol=1e-5)


def test_pad_to_max_reads_the_published_padding(small, make_batch):
    padded = build_model({**small, "pad_to_max": True}).eval()
    own = build_model({**small, "pad_to_max": False}).eval()
    own.load_state_dict(padded.state_dict())
    x, lengths = make_batch([3000, 1200])  # 3000 = max_samples of the small config
    with torch.no_grad():
        parts = padded._encode(x, lengths)
        a, b = padded(x, lengths), own(x, lengths)
    assert parts["signal_counts"].tolist() == [53, 53]  # every record padded to 3000 samples
    assert parts["frames"].tolist() == [1 + 3000 // 16 >> 3] * 2
    torch.testing.assert_close(a[0], b[0])  # a record of max_samples is read alike
    assert not torch.allclose(a[1], b[1])  # a shorter one is not


def test_records_longer_than_max_samples_are_cut(small, make_batch):
    model = build_model(small).eval()
    x, _ = make_batch([3500])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x[..., :3000]))


def test_transformer_variant_sums_its_parts(small_configs):
    config = small_configs["dualnet_transformer_axial"]
    model = build_model(config)
    assert model.signal_encoder.positional_embedding.shape == (
        (3000 - 32) // 28 + 1, 32)
    kinds = [type(block).__name__ for block in model.spectrogram_encoder.blocks]
    assert kinds == ["ResidualBlock2d", "AxialBlock2d", "AxialBlock2d"]


def test_explanations_of_each_encoder(make_batch, small_configs):
    x, lengths = make_batch([1501, 2701])
    expected = {"dualnet_lstm": {"logits", "cam", "signal_steps"},
                "dualnet_cnn_signal_only": {"logits", "signal_steps"},
                "dualnet_spectrogram_only_axial": {"logits", "cam"}}
    for name, keys in expected.items():
        model = build_model(small_configs[name]).eval()
        with torch.no_grad():
            maps = model.explain(x, lengths)
        assert set(maps) == keys, name
        for key in keys - {"logits"}:
            assert maps[key].shape == (2, 4, 2701)


def test_signal_steps_of_a_transformer_average_to_the_signal_logits(make_batch,
                                                                     small_configs):
    # Signal only: logits = W mean_k h_k + b, so the per-window map W h_k averages to
    # logits - b over the windows (before it is stretched onto the input).
    config = {**small_configs["dualnet_transformer_axial"], "encoders": "signal"}
    model = build_model(config).eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        parts = model._encode(x, lengths)
        logits = model(x, lengths)
    steps = torch.einsum("kd,bdn->bkn", model.head.weight, parts["signal_steps"])
    for b, count in enumerate(parts["signal_counts"].tolist()):
        torch.testing.assert_close(steps[b, :, :count].mean(-1) + model.head.bias, logits[b],
                                   rtol=1e-5, atol=1e-5)


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
