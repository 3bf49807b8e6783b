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
