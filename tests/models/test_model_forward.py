"""Every registered model and every preset: forward/backward on ragged and odd lengths, padding
invariance, explanation shapes. A model that reads one input length only (HADLN's published
flatten readout) runs on that length, and its inputs are never padded beyond it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import build_model

LENGTHS = [2701, 1999, 1201]  # odd, even, and a short one padded by ~1500 samples


def fixed_length(config: dict) -> int | None:
    """The one input length a config's model reads (HADLN's published flatten readout over
    187-sample beats), None for a model of any length."""
    return getattr(build_model(config), "fixed_input_samples", None)


def _lengths(config: dict, lengths: list[int]) -> list[int]:
    # a fixed-length model: every record has its length (records shorter than it arrive
    # zero-padded to it, e.g. Kachuee's beat windows, and keep their own `lengths`)
    fixed = fixed_length(config)
    return lengths if fixed is None else [fixed] * len(lengths)


def _needs_padding(config: dict) -> None:
    if fixed_length(config) is not None:
        pytest.skip("reads one input length: batches are never padded beyond it")


def test_forward_backward_on_variable_lengths(any_config, make_batch):
    model = build_model(any_config).train()
    x, lengths = make_batch(_lengths(any_config, LENGTHS))
    logits = model(x, lengths)
    assert logits.shape == (len(LENGTHS), 4)
    F.cross_entropy(logits, torch.tensor([0, 1, 3])).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


def test_forward_without_lengths_on_an_odd_length(any_config, make_batch, make_model):
    model = make_model(any_config).eval()
    odd = _lengths(any_config, [2701, 2701])
    x, _ = make_batch(odd)
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        assert torch.allclose(model(x), model(x, torch.tensor(odd)))


def test_padding_does_not_change_logits(any_config, make_batch, make_model):
    # Eval mode: a record's logits alone must equal its logits when padded next to a longer
    # one, which only holds if every convolution, pooling and RNN respects `lengths`.
    _needs_padding(any_config)
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
    size = fixed_length(any_config) or 2701
    x, lengths = make_batch([size * 5 // 9, size])
    noisy = x.clone()
    noisy[0, :, int(lengths[0]):] = 5.0
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, lengths), model(x, lengths), rtol=1e-5, atol=1e-6)


def test_explanations_live_on_the_input_time_axis(any_config, make_batch, make_model):
    model = make_model(any_config).eval()
    size = fixed_length(any_config) or 2701
    x, lengths = make_batch([size * 5 // 9, size])
    with torch.no_grad():
        explanation = model.explain(x, lengths)
        logits = model(x, lengths)
    torch.testing.assert_close(explanation.pop("logits"), logits)
    assert explanation, "explain returned no maps"
    for name, value in explanation.items():
        assert value.dim() == 3 and value.shape[0] == 2, name
        assert value.shape[-1] == x.shape[-1], f"{name} has time length {value.shape[-1]}"
        assert torch.isfinite(value).all(), name
        assert (value[0, :, int(lengths[0]):] == 0).all(), f"{name} is not zero in the tail"


def test_checkpoint_with_its_config_rebuilds_the_model(
    small_config, make_batch, make_model, tmp_path
):
    model = make_model(small_config).eval()
    path = tmp_path / "model.pt"
    torch.save({"config": model.config, "state_dict": model.state_dict()}, path)
    checkpoint = torch.load(path, weights_only=True)
    rebuilt = build_model(checkpoint["config"]).eval()
    rebuilt.load_state_dict(checkpoint["state_dict"])
    size = fixed_length(small_config) or 1001
    x, lengths = make_batch([size * 7 // 10, size])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, lengths), model(x, lengths))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(small_config, make_batch):
    model = build_model(small_config).cuda()
    x, lengths = make_batch(_lengths(small_config, LENGTHS))
    x = x.cuda()
    model(x, lengths.cuda()).sum().backward()
    model.eval()
    with torch.no_grad():
        explanation = model.explain(x, lengths)  # CPU lengths are moved to the input's device
    assert all(value.is_cuda for value in explanation.values())
