"""The joint segmenter + classifier ("attention segmenter"): a 1-D U-Net marks where to look,
a CNN classifies the attended signal; both learn end to end from the record's label only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    CnnTrunk,
    ConvBlock,
    GlobalPool,
    choose,
    mask_tail,
    resolve_lengths,
    time_mask,
)
from models.registry import register

_EPS = 1e-6


class DoubleConv(nn.Module):
    """Two `ConvBlock`s (Conv -> BN -> ReLU, twice) at one resolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.first = ConvBlock(in_channels, out_channels, kernel_size)
        self.second = ConvBlock(out_channels, out_channels, kernel_size)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x, lengths = self.first(x, lengths)
        x, _ = self.second(x, lengths)
        return x


class UNet1d(nn.Module):
    """A 1-D U-Net mapping (B, C, T) to one channel (B, 1, T), for any T.

    The input is zero-padded on the right to a multiple of ``2 ** depth`` (so every max
    pooling halves exactly and every upsampling doubles back) and the output is cropped to T.
    Level i has ``width * 2 ** i`` channels; decoders upsample (nearest) and concatenate the
    encoder's map at the same level.

    Args:
        in_channels: input channels.
        width: channels at the first level.
        depth: number of poolings (>= 1).
        kernel_size: odd convolution kernel length.
    """

    def __init__(self, in_channels: int, *, width: int, depth: int, kernel_size: int) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"need unet_depth >= 1 and unet_width >= 1, got {depth}, {width}")
        sizes = [width * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.encoders = nn.ModuleList(
            DoubleConv(c_in, c_out, kernel_size)
            for c_in, c_out in zip([in_channels, *sizes[:-2]], sizes[:-1], strict=True)
        )
        self.bottleneck = DoubleConv(sizes[-2], sizes[-1], kernel_size)
        self.decoders = nn.ModuleList(
            DoubleConv(sizes[level + 1] + sizes[level], sizes[level], kernel_size)
            for level in reversed(range(depth))
        )
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, C, T) -> (B, 1, T), zero beyond ``lengths``."""
        size = x.shape[-1]
        pad = -size % 2**self.depth
        x = mask_tail(F.pad(x, (0, pad)), lengths)  # (B, C, T) -> (B, C, T + pad)
        skips: list[tuple[Tensor, Tensor]] = []
        level_lengths = lengths
        for encoder in self.encoders:
            x = encoder(x, level_lengths)  # (B, C_i, T_i)
            skips.append((x, level_lengths))
            # (B, C_i, T_i) -> (B, C_i, T_i / 2); a window with any real sample is real.
            x = F.max_pool1d(x, 2)
            level_lengths = (level_lengths + 1) // 2
        x = self.bottleneck(x, level_lengths)
        for decoder in self.decoders:
            skip, level_lengths = skips.pop()
            up = mask_tail(x.repeat_interleave(2, dim=-1), level_lengths)
            x = decoder(torch.cat([up, skip], dim=1), level_lengths)  # (B, C_i+1 + C_i, T_i)
        return mask_tail(self.out(x)[..., :size], lengths)


def _same_pad(x: Tensor, window: int) -> Tensor:
    # Zero padding so that a stride-1 window of any length keeps the time length.
    left = (window - 1) // 2
    return F.pad(x, (left, window - 1 - left))


def _l2_window_pool(x: Tensor, window: int) -> Tensor:
    # (B, 1, T) -> (B, 1, T): sqrt of the sum of squares in each window (eps keeps the
    # gradient of sqrt finite where the map is exactly zero).
    energy = F.avg_pool1d(_same_pad(x.square(), window), window, stride=1) * window
    return torch.sqrt(energy + _EPS)


def _relu_max_window_pool(x: Tensor, window: int) -> Tensor:
    # (B, 1, T) -> (B, 1, T): ReLU, then the max in each window (zero padding is neutral
    # after the ReLU).
    return F.max_pool1d(_same_pad(F.relu(x), window), window, stride=1)


_WINDOW_POOLS: Mapping[str, Callable[[Tensor, int], Tensor]] = MappingProxyType(
    {"l2": _l2_window_pool, "relu_max": _relu_max_window_pool}
)


def _unscaled(pooled: Tensor) -> Tensor:
    return pooled  # the paper's attention: the pooled map itself


def _record_max_scaled(pooled: Tensor) -> Tensor:
    # (B, 1, T) / its maximum over the record: in [0, 1] whatever the scale of the map
    return pooled / (pooled.amax(dim=-1, keepdim=True) + _EPS)


_ATTENTION_SCALES: Mapping[str, Callable[[Tensor], Tensor]] = MappingProxyType(
    {"none": _unscaled, "record_max": _record_max_scaled})


def _attended(x: Tensor, attention: Tensor) -> Tensor:
    return attention * x  # (B, 1, T) * (B, leads, T) -> (B, leads, T)


def _attention_alone(x: Tensor, attention: Tensor) -> Tensor:
    del x
    return attention  # (B, 1, T)


class _Variant(NamedTuple):
    with_segmenter: bool
    classifier_input: Callable[[Tensor, Tensor], Tensor]
    signal_channels: bool  # the classifier input has the signal's channels (else one)


_VARIANTS: Mapping[str, _Variant] = MappingProxyType(
    {
        "joint": _Variant(with_segmenter=True, classifier_input=_attended, signal_channels=True),
        # Without a segmenter the attention is all ones, so the classifier sees x itself.
        "classifier_only": _Variant(
            with_segmenter=False, classifier_input=_attended, signal_channels=True
        ),
        "cascaded": _Variant(
            with_segmenter=True, classifier_input=_attention_alone, signal_channels=False
        ),
    }
)


@register("segmenter")
class AttentionSegmenter(nn.Module):
    """Joint segmenter + classifier; the defaults are the published model where the paper or
    its code gives a value (``docs/fidelity.md``).

    The U-Net produces a map L (B, 1, T); a stride-1 window pooling of ``pool_kernel`` samples
    (zero-padded, so the length is kept) turns it into the non-negative attention A, as
    published (``attention_scale="none"``); ``"record_max"`` divides A by its maximum over the
    record's valid samples (a switch of ours: A in [0, 1] whatever the scale of L). The
    classifier sees A * x (``"joint"``), x (``"classifier_only"``, no U-Net) or A alone
    (``"cascaded"``): a pointwise conv, ``len(classifier_channels)`` blocks of two Conv + BN +
    ReLU with average pooling (kernel 2) between blocks, masked global average pooling and a
    two-layer perceptron (hidden 128, no dropout, as published).

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        variant: ``"joint"``, ``"classifier_only"`` or ``"cascaded"``.
        unet_depth: U-Net poolings.
        unet_width: U-Net channels at the first level (doubling per level).
        unet_kernel_size: odd U-Net kernel length.
        pool_kernel: window (samples) of the attention's window pooling.
        window_pooling: ``"l2"`` (L2-norm pooling) or ``"relu_max"`` (ReLU then max pooling).
        attention_scale: ``"none"`` (published) or ``"record_max"`` (divide by the record's
            maximum).
        classifier_channels: channels of each classifier block (four in the paper).
        classifier_kernel_size: odd classifier kernel length.
        hidden_units: width of the perceptron's hidden layer (128 published).
        dropout: dropout before the perceptron's output layer (none published).
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        variant: str = "joint",
        unet_depth: int = 4,
        unet_width: int = 8,
        unet_kernel_size: int = 9,
        pool_kernel: int = 63,
        window_pooling: str = "l2",
        attention_scale: str = "none",
        classifier_channels: Sequence[int] = (16, 32, 64, 128),
        classifier_kernel_size: int = 7,
        hidden_units: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self._variant = choose(_VARIANTS, variant, what="segmenter variant")
        self._window_pool = choose(_WINDOW_POOLS, window_pooling, what="window pooling")
        self._scale = choose(_ATTENTION_SCALES, attention_scale, what="attention scale")
        if pool_kernel < 1:
            raise ValueError(f"pool_kernel must be >= 1, got {pool_kernel}")
        if not classifier_channels:
            raise ValueError("classifier_channels must name at least one block")
        self.pool_kernel = pool_kernel
        self.unet: UNet1d | None = None
        if self._variant.with_segmenter:
            self.unet = UNet1d(
                n_leads, width=unet_width, depth=unet_depth, kernel_size=unet_kernel_size
            )
        in_channels = n_leads if self._variant.signal_channels else 1
        self.pointwise = nn.Conv1d(in_channels, classifier_channels[0], 1)
        # Blocks of two convs with pooling between blocks = a trunk pooling every 2 layers.
        self.classifier_trunk = CnnTrunk(
            n_leads=classifier_channels[0],
            channels=[c for c in classifier_channels for _ in range(2)],
            kernel_size=classifier_kernel_size,
            pool_every=2,
            dropouts=[0.0] * (2 * len(classifier_channels)),
            residual=False,
        )
        self.pool = GlobalPool("gap")
        self.perceptron = nn.Sequential(
            nn.Linear(classifier_channels[-1], hidden_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, n_classes),
        )

    def attention(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The attention A (B, 1, T) >= 0 (in [0, 1] with ``record_max``), zero beyond
        ``lengths`` (ones without a U-Net)."""
        if self.unet is None:
            return time_mask(lengths, x.shape[-1]).to(x.dtype)
        segment_map = self.unet(x, lengths)  # (B, leads, T) -> (B, 1, T), zero in the tail
        # (B, 1, T) >= 0; windows reaching past the end spread into the tail, which is cut.
        pooled = mask_tail(self._window_pool(segment_map, self.pool_kernel), lengths)
        return self._scale(pooled)

    def _classify(self, x: Tensor, attention: Tensor, lengths: Tensor) -> Tensor:
        """Classifier on the variant's input: (B, C, T) -> logits (B, K)."""
        h = self.pointwise(self._variant.classifier_input(x, attention))  # (B, C_0, T)
        # The trunk masks its input, so the pointwise conv's bias does not leak into the tail.
        features, steps = self.classifier_trunk(h, lengths)[-1]
        return self.perceptron(self.pool(features, steps))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        lengths = resolve_lengths(x, lengths)
        return self._classify(x, self.attention(x, lengths), lengths)

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and the attention.

        Returns:
            ``logits`` (B, K); ``attention`` (B, 1, T) >= 0 (all ones for
            ``"classifier_only"``); ``attended_signal`` (B, leads, T) = A * x. Both are zero
            beyond ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        attention = self.attention(x, lengths)
        return {
            "logits": self._classify(x, attention, lengths),
            "attention": attention,
            "attended_signal": _attended(x, attention),
        }
