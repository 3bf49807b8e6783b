"""RecurrentHead: packed sequences and the gate values recomputed from nn.LSTM/nn.GRU weights."""

from __future__ import annotations

import pytest
import torch

from models.layers import RecurrentHead, time_mask

LENGTHS = torch.tensor([17, 10, 4])


def _sequences(lengths: torch.Tensor, features: int = 5) -> torch.Tensor:
    # (B, T, C) with a non-zero tail, which packing must ignore
    return torch.randn(len(lengths), int(lengths.max()), features)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recomputed_hidden_states_match_the_torch_module(cell, bidirectional):
    head = RecurrentHead(5, cell=cell, hidden_units=6, n_layers=1, bidirectional=bidirectional)
    x = _sequences(LENGTHS)
    with torch.no_grad():
        outputs, final = head(x, LENGTHS)
        states = head.first_layer_states(x, LENGTHS)
    assert states["hidden"].shape == outputs.shape == (3, 17, 6 * (2 if bidirectional else 1))
    torch.testing.assert_close(states["hidden"], outputs, rtol=1e-5, atol=1e-6)
    # The final state: forward at the last real step (and backward at step 0).
    last = outputs[torch.arange(3), LENGTHS - 1, :6]
    torch.testing.assert_close(final[:, :6], last)
    if bidirectional:
        torch.testing.assert_close(final[:, 6:], outputs[:, 0, 6:])


def test_lstm_gates_satisfy_the_cell_equations():
    head = RecurrentHead(5, cell="lstm", hidden_units=6, n_layers=2, bidirectional=False)
    x = _sequences(LENGTHS)
    with torch.no_grad():
        s = head.first_layer_states(x, LENGTHS)
    assert set(s) == {"hidden", "cell", "input_gate", "forget_gate", "output_gate", "candidate"}
    valid = time_mask(LENGTHS, 17).transpose(1, 2).bool()  # (B, T, 1)
    for gate in ("input_gate", "forget_gate", "output_gate"):
        assert ((s[gate] > 0) & (s[gate] < 1))[valid.expand_as(s[gate])].all()
    assert (s["candidate"].abs() <= 1).all()
    previous = torch.cat([torch.zeros_like(s["cell"][:, :1]), s["cell"][:, :-1]], dim=1)
    cell = s["forget_gate"] * previous + s["input_gate"] * s["candidate"]
    torch.testing.assert_close(s["cell"], cell * valid)
    torch.testing.assert_close(s["hidden"], s["output_gate"] * torch.tanh(s["cell"]) * valid)


def test_tail_does_not_change_valid_outputs():
    head = RecurrentHead(5, cell="lstm", hidden_units=3, n_layers=2, bidirectional=True).eval()
    x = _sequences(LENGTHS)
    changed = x.clone()
    changed[1, 10:] = 9.0
    with torch.no_grad():
        a, final_a = head(x, LENGTHS)
        b, final_b = head(changed, LENGTHS)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(final_a, final_b)
    assert (a[1, 10:] == 0).all()


def test_forget_bias_sets_every_forget_gate_and_leaves_the_other_gates_alone():
    torch.manual_seed(0)
    plain = RecurrentHead(5, cell="lstm", hidden_units=6, n_layers=2, bidirectional=True)
    torch.manual_seed(0)
    biased = RecurrentHead(5, cell="lstm", hidden_units=6, n_layers=2, bidirectional=True,
                           forget_bias=1.0)
    names = [name for name, _ in biased.rnn.named_parameters() if name.startswith("bias_ih")]
    assert len(names) == 4  # two layers x two directions
    for name in names:
        total = getattr(biased.rnn, name) + getattr(biased.rnn, name.replace("_ih", "_hh"))
        torch.testing.assert_close(total[6:12], torch.ones(6))
        for gate in (slice(0, 6), slice(12, 24)):  # input, cell and output gates untouched
            torch.testing.assert_close(getattr(biased.rnn, name)[gate],
                                       getattr(plain.rnn, name)[gate])
    # With zero input the first step's forget gate is sigmoid(1), not about sigmoid(0).
    with torch.no_grad():
        gates = biased.first_layer_states(torch.zeros(1, 2, 5), torch.tensor([2]))
    torch.testing.assert_close(gates["forget_gate"][0, 0, :6],
                               torch.full((6,), float(torch.sigmoid(torch.tensor(1.0)))))


def test_forget_bias_on_a_gru_is_refused():
    with pytest.raises(ValueError, match="forget_bias applies to an LSTM only, not a 'gru'"):
        RecurrentHead(5, cell="gru", hidden_units=6, n_layers=1, bidirectional=False,
                      forget_bias=1.0)


def test_chrono_spreads_the_initial_memories_over_the_given_steps():
    torch.manual_seed(0)
    head = RecurrentHead(5, cell="lstm", hidden_units=200, n_layers=2, bidirectional=True,
                         chrono_steps=50.0)
    for name, b_ih in head.rnn.named_parameters():
        if not name.startswith("bias_ih"):
            continue
        b_hh = getattr(head.rnn, name.replace("_ih", "_hh"))
        forget = b_ih[200:400] + b_hh[200:400]
        # bias log(u), u ~ U(1, 49): memories between 1 and 49 steps, spread over the range
        u = forget.exp()
        assert u.min() >= 1.0 and u.max() <= 49.0
        assert u.min() < 5.0 and u.max() > 45.0
        torch.testing.assert_close(b_ih[:200] + b_hh[:200], -forget)  # input gate: -log(u)
    # Another seed draws other memories; the same seed the same.
    torch.manual_seed(0)
    again = RecurrentHead(5, cell="lstm", hidden_units=200, n_layers=2, bidirectional=True,
                          chrono_steps=50.0)
    torch.testing.assert_close(again.rnn.bias_ih_l1, head.rnn.bias_ih_l1)
    torch.manual_seed(1)
    other = RecurrentHead(5, cell="lstm", hidden_units=200, n_layers=2, bidirectional=True,
                          chrono_steps=50.0)
    assert not torch.equal(other.rnn.bias_ih_l0, head.rnn.bias_ih_l0)


def test_a_chrono_unit_keeps_its_cell_for_about_its_memory_steps():
    torch.manual_seed(0)
    head = RecurrentHead(1, cell="lstm", hidden_units=64, n_layers=1, bidirectional=False,
                         chrono_steps=40.0)
    with torch.no_grad():
        head.rnn.weight_hh_l0.zero_()  # isolate the biases: constant gates
        head.rnn.weight_ih_l0.zero_()
        s = head.first_layer_states(torch.zeros(1, 3, 1), torch.tensor([3]))
    u = (head.rnn.bias_ih_l0[64:128] + head.rnn.bias_hh_l0[64:128]).exp()
    # forget gate sigmoid(log u) = u / (1 + u): a cell decays by e after about u steps
    torch.testing.assert_close(s["forget_gate"][0, 0], u / (1 + u))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "gru", "chrono_steps": 30.0}, "chrono_steps applies to an LSTM only"),
        ({"cell": "lstm", "chrono_steps": 30.0, "forget_bias": 1.0}, "give it or forget_bias"),
        ({"cell": "lstm", "chrono_steps": 2.0}, "chrono_steps must be > 2"),
    ],
)
def test_chrono_is_refused_where_it_cannot_apply(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecurrentHead(5, hidden_units=6, n_layers=1, bidirectional=False, **kwargs)
