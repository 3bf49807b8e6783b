"""The segmenter family: end-to-end gradient, attention range, U-Net on any length."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import build_model
from models.segmenter import UNet1d

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}

BASE = {
    **SHAPE,
    "name": "segmenter",
    "unet_depth": 3,
    "unet_width": 4,
    "unet_kernel_size": 5,
    "pool_kernel": 16,
    "classifier_channels": [4, 4, 8, 8],
    "hidden_units": 8,
}


@pytest.mark.parametrize("variant", ["joint", "cascaded"])
@pytest.mark.parametrize("window_pooling", ["l2", "relu_max"])
def test_class_loss_gradient_reaches_the_unet_first_conv(variant, window_pooling, make_batch):
    model = build_model({**BASE, "variant": variant, "window_pooling": window_pooling})
    x, lengths = make_batch([900, 1201])
    F.cross_entropy(model(x, lengths), torch.tensor([1, 2])).backward()
    first_conv = model.unet.encoders[0].first.conv.weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_classifier_only_has_no_segmenter(make_batch):
    model = build_model({**BASE, "variant": "classifier_only"})
    assert model.unet is None
    x, lengths = make_batch([300, 401])
    explanation = model.explain(x, lengths)
    assert (explanation["attention"][1] == 1).all()
    torch.testing.assert_close(explanation["attended_signal"], x)


def test_the_published_attention_is_the_pooled_map_itself(make_batch):
    # the paper (and its code, ECGUNet.forward): x * l2_pooling(unet(x)), no rescaling
    model = build_model({**BASE, "variant": "joint"}).eval()
    x, lengths = make_batch([1001, 1500])
    with torch.no_grad():
        explanation = model.explain(x, lengths)
        segment_map = model.unet(x, lengths)
    attention = explanation["attention"]
    padded = F.pad(segment_map.square(), (7, 8))  # window 16: 7 samples left, 8 right
    l2 = torch.sqrt(F.avg_pool1d(padded, 16, stride=1) * 16 + 1e-6)
    torch.testing.assert_close(attention[1], l2[1])
    assert (attention >= 0).all() and not torch.allclose(attention.amax(-1), torch.ones(2, 1))
    torch.testing.assert_close(explanation["attended_signal"], attention * x)


def test_record_max_scaling_is_a_named_switch(make_batch):
    model = build_model({**BASE, "variant": "joint", "attention_scale": "record_max"}).eval()
    x, lengths = make_batch([1001, 1500])
    with torch.no_grad():
        attention = model.explain(x, lengths)["attention"]
    assert ((attention >= 0) & (attention <= 1)).all()
    torch.testing.assert_close(attention.amax(-1), torch.ones(2, 1), atol=1e-4, rtol=0)


def test_published_perceptron_is_128_wide_without_dropout():
    model = build_model({**SHAPE, "name": "segmenter"})
    hidden, dropout = model.perceptron[0], model.perceptron[2]
    assert hidden.out_features == 128 and dropout.p == 0.0


@pytest.mark.parametrize("size", [1, 7, 33, 250, 2701])
def test_unet_handles_any_length(size):
    # eval: a 1-sample record has a single value per channel at every level, which training
    # mode BatchNorm refuses.
    unet = UNet1d(2, width=2, depth=3, kernel_size=3).eval()
    with torch.no_grad():
        out = unet(torch.randn(2, 2, size), torch.tensor([size, max(size // 2, 1)]))
    assert out.shape == (2, 1, size)
    assert (out[1, :, max(size // 2, 1) :] == 0).all()


def test_unknown_variant_lists_the_options():
    with pytest.raises(ValueError, match="cascaded"):
        build_model({**BASE, "variant": "joint_cascade"})
