"""The convlstm family: per-step decisions, pretrained trunks, frozen trunks, parameter groups."""

from __future__ import annotations

import pytest
import torch

from models import build_model

# Models take the data set's shape explicitly; these tests use a CinC-like one.
SHAPE = {"n_classes": 4, "n_leads": 1}

TRUNK = {"channels": [8, 16], "kernel_size": 9, "pool_every": 1}


def test_decision_over_time_at_the_last_step_equals_the_logits(make_batch, make_model):
    # One conv layer and no pooling: the RNN runs at the input resolution, so no upsampling.
    model = make_model(
        {
            **SHAPE,
            "name": "convlstm",
            "channels": [8],
            "kernel_size": 5,
            "cell": "lstm",
            "hidden_units": 6,
            "readout": "last",
        }
    ).eval()
    x, lengths = make_batch([300, 451])
    with torch.no_grad():
        explanation = model.explain(x, lengths)
    decisions = explanation["decision_over_time"]  # (B, K, T)
    at_last = decisions[torch.arange(2), :, lengths - 1]
    torch.testing.assert_close(at_last, explanation["logits"])


@pytest.mark.parametrize(
    ("cell", "keys"),
    [
        (
            "lstm",
            {
                "lstm_hidden",
                "lstm_cell",
                "lstm_input_gate",
                "lstm_forget_gate",
                "lstm_output_gate",
                "lstm_candidate",
            },
        ),
        ("gru", {"gru_hidden", "gru_reset_gate", "gru_update_gate", "gru_candidate"}),
    ],
)
def test_explain_returns_first_layer_gates(cell, keys, make_batch):
    model = build_model(
        {**SHAPE, "name": "convlstm", **TRUNK, "cell": cell, "hidden_units": 3,
         "bidirectional": True}
    ).eval()
    x, lengths = make_batch([700, 901])
    with torch.no_grad():
        explanation = model.explain(x, lengths)
    assert set(explanation) == {"logits", "decision_over_time"} | keys
    assert explanation[f"{cell}_hidden"].shape == (2, 6, 901)


def test_pretrained_cnn_trunk_loads_and_can_be_frozen():
    cnn = build_model({**SHAPE, "name": "cnn", **TRUNK, "pooling": "gmp"})
    model = build_model({**SHAPE, "name": "convlstm", **TRUNK, "freeze_cnn": True})
    model.load_cnn_trunk(cnn.state_dict())
    for key, value in cnn.trunk.state_dict().items():
        torch.testing.assert_close(model.trunk.state_dict()[key], value)
    assert not any(p.requires_grad for p in model.trunk.parameters())
    model.train()
    assert not model.trunk.training and model.rnn.training  # frozen BN statistics
    groups = model.parameter_groups(0.1, base_lr=1e-3)
    assert [g["name"] for g in groups] == ["head"]


def test_loading_a_mismatched_trunk_fails():
    cnn = build_model({**SHAPE, "name": "cnn", "channels": [8, 32], "kernel_size": 9})
    model = build_model({**SHAPE, "name": "convlstm", **TRUNK})
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_cnn_trunk(cnn.state_dict())
    with pytest.raises(ValueError, match="trunk"):
        model.load_cnn_trunk({"head.weight": torch.zeros(1)})


def test_parameter_groups_scale_the_cnn_learning_rate():
    model = build_model({**SHAPE, "name": "convlstm", **TRUNK})
    groups = model.parameter_groups(0.1, base_lr=1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("cnn", pytest.approx(1e-4)), ("head", 1e-3)]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    optimizer = torch.optim.Adam(groups)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(1e-4), 1e-3]
    assert "lr" not in model.parameter_groups(0.5)[0]


def test_a_forget_bias_in_the_config_reaches_the_lstm_and_is_refused_for_a_gru():
    model = build_model({**SHAPE, "name": "convlstm", **TRUNK, "hidden_units": 5,
                         "forget_bias": 2.0})
    lstm = model.rnn.rnn
    torch.testing.assert_close(lstm.bias_ih_l0[5:10] + lstm.bias_hh_l0[5:10], torch.full((5,), 2.0))
    assert model.config["forget_bias"] == 2.0  # recorded with the model, so checkpoints say so
    with pytest.raises(ValueError, match="forget_bias applies to an LSTM only"):
        build_model({**SHAPE, "name": "convlstm", **TRUNK, "cell": "gru", "forget_bias": 1.0})


def test_chrono_steps_in_the_config_reach_the_lstm_and_the_recorded_config():
    model = build_model({**SHAPE, "name": "convlstm", **TRUNK, "hidden_units": 50,
                         "chrono_steps": 20.0})
    lstm = model.rnn.rnn
    u = (lstm.bias_ih_l0[50:100] + lstm.bias_hh_l0[50:100]).detach().exp()
    assert float(u.min()) >= 1.0 and float(u.max()) <= 19.0 and float(u.std()) > 2.0
    assert model.config["chrono_steps"] == 20.0
