"""Every registered model and every preset: forward/backward on ragged and odd lengths, padding
invariance, explanation shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import build_model

LENGTHS = [2701, 1999, 1201]  # odd, even, and a short one padded by ~1500 samples


def test_forward_backward_on_variable_lengths(any_config, make_batch):
    model = build_model(any_config).train()
    x, lengths = make_batch(LENGTHS)
    logits = model(x, lengths)
    assert logits.shape == (len(LENGTHS), 4)
    F.cross_entropy(logits, torch.tensor([0, 1, 3])).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


def test_forward_without_lengths_on_an_odd_length(any_config, make_batch, make_model):
    model = make_model(any_config).eval()
    x, _ = make_batch([2701, 2701])
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        assert torch.allclose(model(x), model(x, torch.tensor([2701, 2701])))


def test_padding_does_not_change_logits(any_config, make_batch, make_model):
    # Eval mode: a record's logits alone must equal its logits when padded next to a longer
    # one, which only holds if every convolution, pooling and RNN respects `lengths`.
    model = make_model(any_config).eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        batched = model(x, lengths)
        alone = model(x[:1, :, :1501])
        longest = model(x[1:])
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched[1], longest[0], rtol=1e-5, atol=1e-6)


def test_padding_content_is_ignored(any_config, make_batch, make_model):
    # Garbage in the padded tail must not leak in either.
    model = make_model(any_config).eval()
    x, lengths = make_batch([1501, 2701])
    noisy = x.clone()
    noisy[0, :, 1501:] = 5.0
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, lengths), model(x, lengths), rtol=1e-5, atol=1e-6)


def test_explanations_live_on_the_input_time_axis(any_config, make_batch, make_model):
    model = make_model(any_config).eval()
    x, lengths = make_batch([1501, 2701])
    with torch.no_grad():
        explanation = model.explain(x, lengths)
        logits = model(x, lengths)
    torch.testing.assert_close(explanation.pop("logits"), logits)
    assert explanation, "explain returned no maps"
    for name, value in explanation.items():
        assert value.dim() == 3 and value.shape[0] == 2, name
        assert value.shape[-1] == x.shape[-1], f"{name} has time length {value.shape[-1]}"
        assert torch.isfinite(value).all(), name
        assert (value[0, :, 1501:] == 0).all(), f"{name} is not zero in the padded tail"


def test_checkpoint_with_its_config_rebuilds_the_model(
    small_config, make_batch, make_model, tmp_path
):
    model = make_model(small_config).eval()
    path = tmp_path / "model.pt"
    torch.save({"config": model.config, "state_dict": model.state_dict()}, path)
    checkpoint = torch.load(path, weights_only=True)
    rebuilt = build_model(checkpoint["config"]).eval()
    rebuilt.load_state_dict(checkpoint["state_dict"])
    x, lengths = make_batch([700, 1001])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, lengths), model(x, lengths))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(small_config, make_batch):
    model = build_model(small_config).cuda()
    x, lengths = make_batch(LENGTHS)
    x = x.cuda()
    model(x, lengths.cuda()).sum().backward()
    model.eval()
    with torch.no_grad():
        explanation = model.explain(x, lengths)  # CPU lengths are moved to the input's device
    assert all(value.is_cuda for value in explanation.values())
