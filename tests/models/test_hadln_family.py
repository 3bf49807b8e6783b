"""HADLN as published (Gritton and Thio 2021: report and hadln.ipynb): shapes of the published
layers on 187-sample beats, the step-wise concatenation of both branches, the sigmoid
self-attention and the named switches for records of other lengths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import build_model, load_preset
from models.hadln import PreActBlock, SigmoidSelfAttention, bin_average

BEATS = {"n_classes": 5, "n_leads": 1}


@pytest.fixture(scope="module")
def published() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({**load_preset("hadln_mitbih"), **BEATS}).eval()


def test_the_preset_is_the_constructor_default(published):
    # the published model is what `{"name": "hadln"}` builds: the preset adds nothing else
    assert build_model({"name": "hadln", **BEATS}).config == published.config


def test_published_layer_shapes_on_a_187_sample_beat(published):
    # hadln.ipynb: c1L/c1RP Conv1d(1, 32, 16) -> 172 steps; c2RP two more -> 142;
    # stages of 32/64/128/256 channels, strides 1/2/2/2 -> 142, 71, 36, 18 steps (256 x 18)
    assert published.lstm_stem.conv.weight.shape == (32, 1, 16)
    assert published.cnn_stem.conv.weight.shape == (32, 1, 16)
    assert published.cnn_pair.second.weight.shape == (32, 32, 16)
    assert published.lstm.rnn.hidden_size == 172 and published.lstm.n_directions == 2
    widths = [block.conv1.out_channels for block in published.blocks]
    assert widths == [32] * 4 + [64] * 4 + [128] * 4 + [256] * 4
    assert [block.stride for block in published.blocks] == [1] * 4 + [2, 1, 1, 1] * 3
    assert {block.conv1.kernel_size[0] for block in published.blocks} == {17}
    assert published._cnn_steps(187) == 18
    # concatenation of 256 CNN features and 2 x 172 BiLSTM features per step, flattened
    assert published.attention.value.in_features == 256 + 344
    assert published.classifier.in_features == (256 + 344) * 18


def test_skips_are_none_then_identity_then_strided_projections(published):
    blocks = list(published.blocks)
    assert blocks[0].shortcut is None  # rb1: outR = self.rb1(outR)
    assert all(isinstance(b.shortcut, torch.nn.Identity) for b in blocks[1:4])
    for first in (blocks[4], blocks[8], blocks[12]):  # sc1, sc2, sc3: 1x1 stride-2 conv + BN
        conv, norm = first.shortcut
        assert conv.kernel_size == (1,) and conv.stride == (2,)
        assert isinstance(norm, torch.nn.BatchNorm1d)


def test_pre_activation_order_of_a_block():
    # BasicBlock: BN -> ReLU -> conv -> BN -> ReLU -> dropout -> conv (+ skip)
    torch.manual_seed(1)
    block = PreActBlock(4, 4, 5, stride=1, dropout=0.0, skip=True).eval()
    x = torch.randn(2, 4, 30)
    lengths = torch.tensor([30, 30])
    expected = block.conv2(F.relu(block.norm2(block.conv1(F.relu(block.norm1(x)))))) + x
    torch.testing.assert_close(block(x, lengths)[0], expected)


def test_attention_weights_are_sigmoids_of_query_key_scores_over_both_branches():
    torch.manual_seed(2)
    attention = SigmoidSelfAttention(6, 3)
    x = torch.randn(2, 5, 6)
    lengths = torch.tensor([5, 3])
    attended, weights = attention(x, lengths)
    expected = torch.sigmoid(attention.query(x) @ attention.key(x).transpose(1, 2))
    torch.testing.assert_close(weights[0], expected[0])
    # gates, not a softmax: a row does not sum to one; steps past a record's end get none
    assert not torch.allclose(weights[0].sum(-1), torch.ones(5))
    assert (weights[1, 3:] == 0).all() and (weights[1, :, 3:] == 0).all()
    torch.testing.assert_close(attended[0], expected[0] @ attention.value(x[0]))


def test_both_branches_reach_the_logits_through_the_attention(published):
    x = torch.randn(2, 1, 187)
    model = build_model({**load_preset("hadln_mitbih"), **BEATS}).train()
    model(x).sum().backward()
    assert model.lstm.rnn.weight_ih_l0.grad.abs().sum() > 0
    assert model.cnn_stem.conv.weight.grad.abs().sum() > 0
    assert model.attention.query.weight.grad.abs().sum() > 0


def test_bin_average_is_adaptive_average_pooling_per_record():
    x = torch.randn(2, 172, 3)
    full = bin_average(x, lengths=torch.tensor([172, 172]), out_lengths=torch.tensor([18, 18]),
                       out_steps=18)
    pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), 18).transpose(1, 2)
    torch.testing.assert_close(full, pooled)
    # a shorter record: its own steps only, and zero bins past its output length
    part = bin_average(x, lengths=torch.tensor([100, 172]), out_lengths=torch.tensor([10, 18]),
                       out_steps=18)
    alone = F.adaptive_avg_pool1d(x[:1, :100].transpose(1, 2), 10).transpose(1, 2)
    torch.testing.assert_close(part[:1, :10], alone)
    assert (part[0, 10:] == 0).all()


def test_the_flatten_readout_reads_its_input_length_only(published):
    with pytest.raises(ValueError, match=r"187-sample inputs.*readout='mean'"):
        published(torch.randn(1, 1, 250))
    assert published.fixed_input_samples == 187


def test_the_cinc_preset_is_the_published_layers_with_two_named_switches():
    # `hadln`: the published layers for 30-s records: the mean readout over any length and a
    # 16x average-pooled recurrent input; nothing else differs from `hadln_mitbih`
    cinc, beats = load_preset("hadln"), load_preset("hadln_mitbih")
    differing = {k for k in {*cinc, *beats} if cinc.get(k) != beats.get(k)}
    assert differing == {"readout", "lstm_stride", "input_samples"}
    model = build_model({**cinc, "n_classes": 4, "n_leads": 1})
    assert model.fixed_input_samples is None
    assert model(torch.randn(2, 1, 900)).shape == (2, 4)
