"""Every explanation map with a time axis peaks on the one beat a hand-set trunk responds to.

The trunk (`WideBeatDetector` in tests/conftest.py) responds to a wide beat and to nothing
else, symmetrically, so a map read off any of its layers must peak within half a step of
that layer (``stride / 2`` input samples) of the beat, whatever the record's length, its
padding in the batch and the beat's position. The records are chosen so that stretching a
layer's steps over the padded batch (the former ``F.interpolate(size=T)``) misses by more
than that: their lengths leave up to 63 samples that no step of a 64-sample stride covers.
"""

from __future__ import annotations

import pytest
import torch

from models import build_model
from models.layers import upsample_time
from models.perturbation import shift_perturbation

# (n_samples, wide beat's centre), padded into one batch; lengths far from multiples of 64
RECORDS = [(4543, 4400), (3063, 2950), (1087, 600), (2111, 130), (4500, 2222)]
TRUNK = {"n_leads": 1, "kernel_size": 21, "pool_every": 1, "dropout_min": 0.0,
         "dropout_max": 0.0}


def _misses(maps: torch.Tensor, *, tolerance: float) -> list[tuple[int, int]]:
    """(peak, beat) of every record whose map (B, T) peaks farther than ``tolerance``."""
    peaks = [int(maps[row, :n].argmax()) for row, (n, _) in enumerate(RECORDS)]
    return [(peak, at) for peak, (_, at) in zip(peaks, RECORDS, strict=True)
            if abs(peak - at) > tolerance]


def _one_class_head(head: torch.nn.Linear) -> None:
    # class 1 reads the trunk's only channel, class 0 nothing
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[1, 0] = 1.0


@pytest.mark.parametrize("depth", [3, 5, 7])
def test_cam_peaks_on_the_beat(wide_beat, depth):
    model = build_model({**TRUNK, "name": "cnn", "n_classes": 2, "channels": [1] * depth,
                         "pooling": "gmp"}).eval()
    wide_beat.set_trunk(model.trunk)
    _one_class_head(model.head)
    x, lengths = wide_beat.batch(RECORDS)
    with torch.no_grad():
        cam = model.explain(x, lengths)["cam"][:, 1]
    stride = model.trunk.strides[-1]
    assert stride == 2 ** (depth - 1)
    assert _misses(cam, tolerance=stride / 2 + 1) == []


@pytest.mark.parametrize("registered", [False, True])
def test_cam_of_a_centred_trunk_needs_no_registration(wide_beat, registered):
    model = build_model({**TRUNK, "name": "cnn", "n_classes": 2, "channels": [1] * 5,
                         "pooling": "gmp"}).eval()
    wide_beat.set_trunk(model.trunk)
    _one_class_head(model.head)
    x, lengths = wide_beat.batch(RECORDS)
    with torch.no_grad():
        cam = model.explain(x, lengths)["cam_registered" if registered else "cam"][:, 1]
    assert _misses(cam, tolerance=16 / 2 + 1) == []


def test_registered_cam_finds_the_beat_a_displaced_trunk_responds_to(wide_beat):
    # The last layer reads its input two steps later (tap +2): its step j responds to the
    # beat at step j + 2, so the plain CAM peaks 2 x 16 samples before the beat; registered,
    # each map's peak step goes where its gradient x input is largest, on the beat.
    model = build_model({**TRUNK, "name": "cnn", "n_classes": 2, "channels": [1] * 5,
                         "pooling": "gmp"}).eval()
    wide_beat.set_trunk(model.trunk)
    _one_class_head(model.head)
    last = model.trunk.blocks[-1].conv.weight  # (1, 1, 21)
    with torch.no_grad():
        last.zero_()
        last[0, 0, 21 // 2 + 2] = 1.0
    x, lengths = wide_beat.batch(RECORDS)
    with torch.no_grad():
        maps = model.explain(x, lengths)
    plain, registered = maps["cam"][:, 1], maps["cam_registered"][:, 1]
    misses = _misses(plain, tolerance=16 / 2 + 1)
    assert [peak - at for peak, at in misses] == pytest.approx([-32] * len(RECORDS), abs=9)
    assert _misses(registered, tolerance=16 / 2 + 1) == []


def test_intermediate_cam_peaks_on_the_beat(wide_beat):
    model = build_model({**TRUNK, "name": "cnn", "n_classes": 2, "channels": [1] * 7,
                         "pooling": "gmp", "mean_vote_layer": 3}).eval()
    wide_beat.set_trunk(model.trunk)
    _one_class_head(model.head)
    _one_class_head(model.vote_head)
    x, lengths = wide_beat.batch(RECORDS)
    with torch.no_grad():
        maps = model.explain(x, lengths)
    assert _misses(maps["cam_intermediate"][:, 1], tolerance=8 / 2 + 1) == []  # stride 8
    assert _misses(maps["cam"][:, 1], tolerance=64 / 2 + 1) == []
    assert _misses(maps["cam_intermediate_registered"][:, 1], tolerance=8 / 2 + 1) == []


def test_gate_maps_peak_on_the_beat(wide_beat):
    model = build_model({**TRUNK, "name": "attention_gate", "n_classes": 2,
                         "channels": [1] * 7, "gate_layers": [2, 6], "attention_size": 1,
                         "gate_normalization": "softmax"}).eval()
    wide_beat.set_trunk(model.trunk)
    with torch.no_grad():
        for gate in model.gates:  # score = 20 x the local feature; the context is ignored
            gate.local.weight.fill_(1.0)
            gate.local.bias.zero_()
            gate.context.weight.zero_()
            gate.score.weight.fill_(20.0)
            gate.score.bias.zero_()
        x, lengths = wide_beat.batch(RECORDS)
        maps = model.explain(x, lengths)["gate_maps"]  # (B, 2, T)
    assert _misses(maps[:, 0], tolerance=4 / 2 + 1) == []  # layer 2: stride 4
    assert _misses(maps[:, 1], tolerance=64 / 2 + 1) == []  # layer 6: stride 64


def test_decision_over_time_peaks_on_the_beat(wide_beat):
    model = build_model({**TRUNK, "name": "convlstm", "n_classes": 2, "channels": [1] * 5,
                         "cell": "lstm", "hidden_units": 1, "readout": "last"}).eval()
    wide_beat.set_trunk(model.trunk)
    lstm = model.rnn.rnn
    with torch.no_grad():
        # gates (input, forget, cell, output): input and output open, forget shut, so
        # h_t = tanh(tanh(10 f_t)) follows the trunk's feature f_t step by step
        lstm.weight_hh_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.weight_ih_l0.copy_(torch.tensor([[0.0], [0.0], [10.0], [0.0]]))
        lstm.bias_ih_l0.copy_(torch.tensor([20.0, -20.0, 0.0, 20.0]))
        _one_class_head(model.classifier)
        x, lengths = wide_beat.batch(RECORDS)
        decision = model.explain(x, lengths)["decision_over_time"][:, 1]
    assert _misses(decision, tolerance=16 / 2 + 1) == []


def test_shift_mask_peaks_on_the_beat(wide_beat):
    # The record is called abnormal (class 1) by the wide beat alone: the smallest shift that
    # makes it normal moves that beat, so the mask peaks there, within a knot spacing.
    model = build_model({**TRUNK, "name": "cnn", "n_classes": 2, "channels": [1] * 5,
                         "pooling": "gmp"}).eval()
    wide_beat.set_trunk(model.trunk)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1, 0] = 20.0
        model.head.bias[1] = -2.0
    x, lengths = wide_beat.batch(RECORDS)
    knot_spacing = 15
    shift = shift_perturbation(model, x, lengths=lengths, target_class=0,
                               grid_factor=knot_spacing, l1_weight=0.1, tv_weight=0.1,
                               steps=60, lr=0.05)
    assert shift["target_reached"].all()
    assert _misses(shift["mask"][:, 0], tolerance=knot_spacing) == []


@pytest.mark.parametrize(("stride", "offset"), [(4, None), (16, None), (16, 31.5)])
def test_upsampled_step_lands_on_its_centre_whatever_the_padding(stride, offset):
    # One step of a record set to 1: on the input axis it peaks at offset + stride * step
    # (default offset (stride - 1) / 2, the centre of the samples an average pooling took),
    # and the record's map is the same alone or padded in a longer batch.
    frames, step = 40, 27
    centre = (stride - 1) / 2 if offset is None else offset
    lengths = torch.tensor([frames * stride + stride - 1])
    alone = torch.zeros(1, 1, frames)
    alone[0, 0, step] = 1.0
    padded = torch.cat([alone, torch.zeros(1, 1, 25)], dim=-1)
    maps = [upsample_time(m, size=size, lengths=lengths, frame_lengths=torch.tensor([frames]),
                          stride=stride, offset=offset)
            for m, size in ((alone, int(lengths)), (padded, int(lengths) + 25 * stride))]
    peak = centre + stride * step
    assert int(maps[0][0, 0].argmax()) == int(peak)  # floor of a half-sample centre
    assert maps[0][0, 0, int(peak)] >= 1 - 1 / stride
    torch.testing.assert_close(maps[1][..., : int(lengths)], maps[0])
    assert maps[1][..., int(lengths):].abs().sum() == 0
