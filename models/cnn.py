"""The 1-D CNN family: configurable-depth conv trunk, global pooling head, class activation maps.

Channel series per depth (the reference thesis' presets) are data in ``cnn_channels.json``:
4 layers (16, 32, 64, 128), 7 layers (16, 32, 32, 64, 64, 128, 128), 15 layers from 16 to 256
(16 x2, 32 x3, 64 x3, 128 x3, 256 x4) and 17 layers from 16 to 512 (16, 32, 64, 128, 256 x3
each, 512 x2). Every series is monotone non-decreasing and doubles at most once per step.

`build_trunk` turns the trunk hyperparameters into a `CnnTrunk`; the ConvLSTM and the
attention-gated CNN call it too, so every family shares one feature extractor (and a
``cnn`` state dict's ``trunk.*`` entries load straight into a ConvLSTM).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    CnnTrunk,
    GlobalPool,
    choose,
    mask_tail,
    resolve_lengths,
    time_mask,
    upsample_time,
)
from models.registry import register

TRUNK_PREFIX = "trunk."
"""State-dict prefix of the CNN trunk in every family that has one (cnn, convlstm,
attention_gate)."""

DEFAULT_DEPTH = 7
"""Depth used when a config gives neither ``depth`` nor ``channels``."""


@functools.cache
def _channel_table() -> dict[str, tuple[int, ...]]:
    text = resources.files("models").joinpath("cnn_channels.json").read_text(encoding="utf-8")
    return {depth: tuple(channels) for depth, channels in json.loads(text).items()}


def cnn_depths() -> list[int]:
    """Depths that have a channel preset in ``cnn_channels.json``."""
    return sorted(int(depth) for depth in _channel_table())


def channels_for_depth(depth: int) -> list[int]:
    """The thesis' channel series for a preset depth (4, 7, 15 or 17).

    Raises:
        ValueError: for a depth without a preset (the message lists the preset depths).
    """
    return list(choose(_channel_table(), str(depth), what="CNN depth (channel preset)"))


def dropout_series(depth: int, dropout_min: float, dropout_max: float) -> list[float]:
    """Dropout per layer rising linearly from ``dropout_min`` (first) to ``dropout_max`` (last)."""
    if not 0.0 <= dropout_min <= dropout_max < 1.0:
        raise ValueError(
            f"need 0 <= dropout_min <= dropout_max < 1, got {dropout_min}, {dropout_max}"
        )
    if depth == 1:
        return [dropout_min]
    step = (dropout_max - dropout_min) / (depth - 1)
    return [dropout_min + i * step for i in range(depth)]


def build_trunk(
    *,
    n_leads: int,
    depth: int | None,
    channels: Sequence[int] | None,
    kernel_size: int,
    pool_every: int,
    dropout_min: float,
    dropout_max: float,
    residual: bool,
    conv_init: str = "pytorch",
) -> CnnTrunk:
    """The CNN feature extractor from the trunk hyperparameters shared by every CNN family.

    Args:
        n_leads: input channels.
        depth: a preset depth (see `channels_for_depth`); exclusive with ``channels``.
        channels: explicit channels per layer; exclusive with ``depth``. With neither,
            ``DEFAULT_DEPTH`` is used.
        kernel_size: odd convolution kernel length.
        pool_every: average pooling (kernel 2) after every this many layers, never after the
            last one.
        dropout_min: dropout after the first layer.
        dropout_max: dropout after the last layer (linear in between).
        residual: identity connections around every convolution.
        conv_init: initialisation of the convolution weights (``models.layers.CONV_INITS``).

    Raises:
        ValueError: if both ``depth`` and ``channels`` are given, or for an unknown depth.
    """
    if depth is not None and channels is not None:
        raise ValueError("give either depth (a channel preset) or channels, not both")
    if channels is None:
        channels = channels_for_depth(DEFAULT_DEPTH if depth is None else depth)
    return CnnTrunk(
        n_leads=n_leads,
        channels=channels,
        kernel_size=kernel_size,
        pool_every=pool_every,
        dropouts=dropout_series(len(channels), dropout_min, dropout_max),
        residual=residual,
        conv_init=conv_init,
    )


def class_activation_map(features: Tensor, lengths: Tensor, head: nn.Linear) -> Tensor:
    """CAM of every class: the head's weights applied at each step, (B, C, T) -> (B, K, T).

    With average pooling, ``head(gap(features)) == mean_t(cam[..., t]) + head.bias`` over the
    valid steps. The bias is left out of the map.
    """
    cam = torch.einsum("kc,bct->bkt", head.weight, features)
    return mask_tail(cam, lengths)


def _evidence_peak(attribution: Tensor, lengths: Tensor, *, width: int) -> Tensor:
    """Input sample (B,) where |attribution| (B, leads, T), summed over leads and averaged
    over a centred window of about ``width`` samples, is largest within each record."""
    half = width // 2
    magnitude = attribution.abs().sum(1, keepdim=True)  # (B, 1, T)
    smoothed = F.avg_pool1d(magnitude, 2 * half + 1, stride=1, padding=half,
                            count_include_pad=False)  # (B, 1, T)
    valid = time_mask(lengths, smoothed.shape[-1])
    return smoothed.masked_fill(~valid, float("-inf")).argmax(-1)[:, 0]


def evidence_offsets(cam: Tensor, steps: Tensor, signal: Tensor, lengths: Tensor, *,
                     stride: int) -> Tensor:
    """Where each record's class map must sit so that its peak step lands on its evidence.

    A step of the last layer sees the whole receptive field of the trunk (several seconds);
    a trained trunk need not centre what a step responds to on the step: the benchmark's
    models, same data and settings, seeds 0-3, put the class-O map's peak a constant 0 to 3
    steps (up to 0.5 s) before the abnormal beat, in every record. The step's evidence is
    located here as the largest gradient x input of its CAM value over the input (smoothed
    over one step), the map of each class is moved so that its peak step lands there.

    Args:
        cam: (B, K, T') class activation maps computed from ``signal`` (in autograd).
        steps: (B,) valid steps.
        signal: (B, leads, T) the input, requiring grad.
        lengths: (B,) real input samples.
        stride: input samples per step.

    Returns:
        (B, K) input sample on which step 0 of each record's class map is to be centred
        (`models.layers.upsample_time`'s ``offset``).
    """
    valid = time_mask(steps, cam.shape[-1])  # (B, 1, T')
    peak = cam.detach().masked_fill(~valid, float("-inf")).argmax(-1)  # (B, K)
    where = []
    for k in range(cam.shape[1]):
        # records are independent in eval mode: the gradient of the sum is each record's own
        at_peak = cam[:, k].gather(-1, peak[:, k : k + 1]).sum()
        (grad,) = torch.autograd.grad(at_peak, signal, retain_graph=True)
        where.append(_evidence_peak(grad * signal.detach(), lengths, width=stride))
    return torch.stack(where, dim=1).double() - stride * peak.double()


@register("cnn")
class CNN(nn.Module):
    """1-D CNN: conv trunk -> global pooling -> linear head (optionally a second, mean-vote head).

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        depth: preset depth 4, 7, 15 or 17 (channels from ``cnn_channels.json``).
        channels: explicit channels per layer instead of ``depth``.
        kernel_size: odd convolution kernel length.
        pool_every: average pooling (kernel 2) after every this many layers.
        dropout_min: dropout after the first layer, rising linearly to ``dropout_max``.
        dropout_max: dropout after the last layer.
        residual: identity connections (1x1 conv when channels change) around each conv.
        conv_init: initialisation of the CNN convolution weights, ``"pytorch"`` (torch's
            default), ``"kaiming"`` (He normal for ReLU) or ``"delta_orthogonal"``
            (orthogonal centre tap, Xiao et al. 2018).
        pooling: global pooling over time, ``"gap"``, ``"gmp"`` or ``"lse"``.
        lse_temperature: sharpness r of the log-mean-exp pooling.
        mean_vote_layer: index of an intermediate layer (0 <= i < depth - 1) that gets its own
            pooling + linear head; the two heads' logits are averaged (the thesis' two-head
            "mean vote" variant). None for a single head.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        depth: int | None = None,
        channels: Sequence[int] | None = None,
        kernel_size: int = 21,
        pool_every: int = 1,
        dropout_min: float = 0.1,
        dropout_max: float = 0.3,
        residual: bool = False,
        conv_init: str = "pytorch",
        pooling: str = "gmp",
        lse_temperature: float = 1.0,
        mean_vote_layer: int | None = None,
    ) -> None:
        super().__init__()
        self.trunk = build_trunk(
            n_leads=n_leads,
            depth=depth,
            channels=channels,
            kernel_size=kernel_size,
            pool_every=pool_every,
            dropout_min=dropout_min,
            dropout_max=dropout_max,
            residual=residual,
            conv_init=conv_init,
        )
        self.pool = GlobalPool(pooling, temperature=lse_temperature)
        self.head = nn.Linear(self.trunk.out_channels, n_classes)
        self.mean_vote_layer = mean_vote_layer
        self.vote_head: nn.Linear | None = None
        if mean_vote_layer is not None:
            if not 0 <= mean_vote_layer < self.trunk.depth - 1:
                raise ValueError(
                    f"mean_vote_layer must be an intermediate layer in [0, {self.trunk.depth - 2}]"
                    f" for depth {self.trunk.depth}, got {mean_vote_layer}"
                )
            self.vote_head = nn.Linear(self.trunk.channels[mean_vote_layer], n_classes)

    def _heads(self, x: Tensor, lengths: Tensor) -> list[tuple[Tensor, Tensor, nn.Linear]]:
        """(features (B, C, T'), lengths (B,), linear head) for the last and the vote layer."""
        outputs = self.trunk(x, lengths)
        heads = [(*outputs[-1], self.head)]
        if self.vote_head is not None:
            heads.append((*outputs[self.mean_vote_layer], self.vote_head))
        return heads

    def _head_strides(self) -> list[int]:
        """Input samples per step of each head's features, in `_heads`' order."""
        strides = self.trunk.strides
        return [strides[-1]] + ([] if self.vote_head is None else [strides[self.mean_vote_layer]])

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        return self._vote(self._heads(x, resolve_lengths(x, lengths)))

    def _vote(self, heads: list[tuple[Tensor, Tensor, nn.Linear]]) -> Tensor:
        """Pool each head's features and average the heads' logits (a no-op for one head)."""
        logits = [head(self.pool(features, steps)) for features, steps, head in heads]
        return torch.stack(logits).mean(0)

    def class_activation_maps(
        self, x: Tensor, lengths: Tensor | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """CAMs at the feature resolution: [(cam (B, K, T'), lengths (B,)), ...].

        The first entry is the last conv layer's; the second (if ``mean_vote_layer``) the
        intermediate layer's.
        """
        heads = self._heads(x, resolve_lengths(x, lengths))
        return [(class_activation_map(f, steps, head), steps) for f, steps, head in heads]

    def explain(
        self, x: Tensor, lengths: Tensor | None = None, *, registered: bool = True
    ) -> dict[str, Tensor]:
        """Logits and class activation maps on the input's time axis.

        Args:
            x: (B, leads, T).
            lengths: (B,) real samples per record; None for full length.
            registered: also give each CAM registered to the input (``cam_registered``,
                ``cam_intermediate_registered``): each record's class map moved so that its
                peak step lands on that step's evidence in the input (`evidence_offsets`; one
                backward pass per class and head, so not under ``torch.inference_mode``). An
                addition of ours, not the thesis' method (docs/fidelity.md).

        Returns:
            ``logits`` (B, K); ``cam`` (B, K, T): the last conv layer's CAM for every class
            (the thesis' CAM), each step on the centre of the samples it pools, linearly
            interpolated between steps (`upsample_time`) and zero beyond ``lengths``; with a
            mean-vote head also ``cam_intermediate`` (B, K, T) from the intermediate layer;
            with ``registered`` the same maps registered, under ``<name>_registered``.
        """
        lengths = resolve_lengths(x, lengths)
        heads = self._heads(x, lengths)
        strides = self._head_strides()
        offsets: list[Tensor | None] = [None] * len(heads)
        if registered:
            with torch.enable_grad():
                signal = x.detach().requires_grad_(True)
                offsets = [
                    evidence_offsets(class_activation_map(f, steps, head), steps, signal,
                                     lengths, stride=stride)
                    for (f, steps, head), stride in zip(self._heads(signal, lengths), strides,
                                                        strict=True)
                ]
        explanation = {"logits": self._vote(heads)}
        names = ("cam", "cam_intermediate")[: len(heads)]
        for name, (features, steps, head), stride, offset in zip(
            names, heads, strides, offsets, strict=True
        ):
            cam = class_activation_map(features, steps, head)
            explanation[name] = upsample_time(cam, size=x.shape[-1], lengths=lengths,
                                              frame_lengths=steps, stride=stride)
            if offset is not None:
                explanation[f"{name}_registered"] = upsample_time(
                    cam, size=x.shape[-1], lengths=lengths, frame_lengths=steps,
                    stride=stride, offset=offset)
        return explanation
