"""The cnn family: CAM identities, mean vote, pooling and residual options."""

from __future__ import annotations

import pytest
import torch

from models import build_model
from models.layers import GlobalPool, time_mask

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}


def _masked_mean(maps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    # (B, K, T) -> (B, K) over each record's valid steps
    return (maps * time_mask(lengths, maps.shape[-1])).sum(-1) / lengths[:, None]


def test_gap_logits_equal_the_mean_of_the_cam_plus_bias(make_batch, make_model):
    model = make_model({**SHAPE, "name": "cnn", "channels": [8, 16, 16], "kernel_size": 9,
                        "pooling": "gap"})
    model.eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        logits = model(x, lengths)
        [(cam, cam_lengths)] = model.class_activation_maps(x, lengths)
    assert cam.shape == (2, 4, 2701 // 4)  # two poolings by 2
    assert cam_lengths.tolist() == [1501 // 4, 2701 // 4]
    torch.testing.assert_close(logits, _masked_mean(cam, cam_lengths) + model.head.bias)


def test_mean_vote_averages_the_two_heads_and_explains_both(make_batch, make_model):
    config = {
        **SHAPE,
        "name": "cnn",
        "channels": [8, 8, 16],
        "kernel_size": 7,
        "pooling": "gap",
        "mean_vote_layer": 1,
    }
    model = make_model(config).eval()
    x, lengths = make_batch([1000, 1201])
    with torch.no_grad():
        logits = model(x, lengths)
        (last, last_lengths), (middle, middle_lengths) = model.class_activation_maps(x, lengths)
        explanation = model.explain(x, lengths)
    expected = (
        _masked_mean(last, last_lengths)
        + model.head.bias
        + _masked_mean(middle, middle_lengths)
        + model.vote_head.bias
    ) / 2
    torch.testing.assert_close(logits, expected)
    assert set(explanation) == {"logits", "cam", "cam_intermediate", "cam_registered",
                                "cam_intermediate_registered"}
    assert explanation["cam_intermediate"].shape == (2, 4, 1201)


def test_upsampled_cam_tracks_the_low_resolution_cam(make_batch):
    model = build_model({**SHAPE, "name": "cnn", "channels": [8, 8], "kernel_size": 5}).eval()
    x, lengths = make_batch([800, 800])
    with torch.no_grad():
        [(cam, _)] = model.class_activation_maps(x, lengths)
        upsampled = model.explain(x, lengths, registered=False)["cam"]
    # One pooling by 2 and linear interpolation (align_corners=False): input step 2t + 1 sits a
    # quarter of the way from low-resolution step t to t + 1.
    torch.testing.assert_close(upsampled[..., 1:-1:2], 0.75 * cam[..., :-1] + 0.25 * cam[..., 1:])


def test_global_pools_respect_lengths():
    x = torch.tensor([[[1.0, 3.0, 2.0, 100.0]]])
    lengths = torch.tensor([3])
    assert GlobalPool("gap")(x, lengths).item() == 2.0
    assert GlobalPool("gmp")(x, lengths).item() == 3.0
    # LSE lies between the mean and the max, and approaches the max for a sharp temperature.
    soft = GlobalPool("lse", temperature=1.0)(x, lengths).item()
    sharp = GlobalPool("lse", temperature=100.0)(x, lengths).item()
    assert 2.0 < soft < 3.0 and abs(sharp - 3.0) < 0.02
    # All-negative features: the masked zero tail must not win the max.
    assert GlobalPool("gmp")(-x, lengths).item() == -1.0


def test_mean_share_blends_a_global_pool_toward_the_mean_of_valid_steps():
    x = torch.tensor([[[1.0, 3.0, 2.0, 100.0]]], requires_grad=True)
    lengths = torch.tensor([3])
    pool = GlobalPool("gmp")
    pool.mean_share = 0.25
    blended = pool(x, lengths)
    assert blended.item() == 0.75 * 3.0 + 0.25 * 2.0
    # The gradient reaches every valid step, not only the max; the padded tail gets none.
    blended.sum().backward()
    torch.testing.assert_close(x.grad[0, 0], torch.tensor([0.25 / 3, 0.75 + 0.25 / 3,
                                                           0.25 / 3, 0.0]))
    # An average pooling has nothing to blend, and its gradient is bit-for-bit the plain mean's
    # (a blend of the mean with itself rounds it differently at this share).
    plain = x.detach().clone().requires_grad_(True)
    GlobalPool("gap")(plain, lengths).sum().backward()
    gap = GlobalPool("gap")
    gap.mean_share = 0.1
    x.grad = None
    gap(x, lengths).sum().backward()
    assert torch.equal(x.grad, plain.grad)


def test_dropout_rises_with_depth():
    model = build_model(
        {
            **SHAPE,
            "name": "cnn",
            "channels": [4, 4, 4, 4, 4],
            "dropout_min": 0.1,
            "dropout_max": 0.5,
        }
    )
    rates = [dropout.p for dropout in model.trunk.dropouts]
    assert rates == sorted(rates)
    assert rates[0] == 0.1 and abs(rates[-1] - 0.5) < 1e-12


def test_residual_blocks_match_channels_with_a_1x1_conv():
    model = build_model({**SHAPE, "name": "cnn", "channels": [8, 8, 16], "residual": True})
    skips = [block.skip for block in model.trunk.blocks]
    assert isinstance(skips[1], torch.nn.Identity)  # 8 -> 8
    assert isinstance(skips[2], torch.nn.Conv1d) and skips[2].kernel_size == (1,)  # 8 -> 16
    plain = build_model({**SHAPE, "name": "cnn", "depth": 4})
    assert all(block.skip is None for block in plain.trunk.blocks)


def test_pooling_schedule_skips_the_last_layer():
    four = build_model({**SHAPE, "name": "cnn", "depth": 4})
    assert four.trunk.pool_after == [True, True, True, False]
    assert build_model({**SHAPE, "name": "cnn", "depth": 7, "pool_every": 2}).trunk.pool_after == [
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize("family", ["cnn", "convlstm", "attention_gate"])
def test_conv_init_kaiming_gives_every_trunk_conv_he_scale(family):
    torch.manual_seed(0)
    config = {"name": family, "n_classes": 4, "n_leads": 1, "depth": 15, "pool_every": 2}
    if family == "attention_gate":
        config["gate_layers"] = [12, 13]
    default = build_model(config)
    kaiming = build_model({**config, "conv_init": "kaiming"})
    for plain, he in zip(default.trunk.blocks, kaiming.trunk.blocks, strict=True):
        fan_in = he.conv.weight[0].numel()
        he_std = float(he.conv.weight.detach().std())
        plain_std = float(plain.conv.weight.detach().std())
        assert he_std == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert plain_std == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.1)


def test_delta_orthogonal_init_puts_an_orthogonal_matrix_at_the_centre_tap():
    torch.manual_seed(0)
    model = build_model({"name": "cnn", "n_classes": 4, "n_leads": 1, "depth": 15,
                         "pool_every": 2, "residual": True, "conv_init": "delta_orthogonal"})
    convs = [m for m in model.trunk.blocks.modules() if isinstance(m, torch.nn.Conv1d)]
    assert any(c.kernel_size == (1,) for c in convs)  # the 1x1 skips are initialised too
    for conv in convs:
        weight = conv.weight.detach()  # (C_out, C_in, k)
        centre = weight.shape[-1] // 2
        off_centre = torch.cat([weight[..., :centre], weight[..., centre + 1:]], dim=-1)
        assert torch.count_nonzero(off_centre) == 0
        matrix = weight[..., centre]
        small, large = sorted(matrix.shape)
        # semi-orthogonal with ReLU gain: M M^T (or M^T M) = 2 I on the smaller side
        gram = matrix @ matrix.T if matrix.shape[0] == small else matrix.T @ matrix
        assert torch.allclose(gram, 2.0 * torch.eye(small), atol=1e-4), (conv, large)


def test_an_unknown_conv_init_names_the_choices():
    with pytest.raises(ValueError,
                       match=r"conv_init 'xavier'; choose one of \['delta_orthogonal', 'kaiming', "
                             r"'pytorch'\]"):
        build_model({"name": "cnn", "n_classes": 4, "n_leads": 1, "conv_init": "xavier"})
