"""ECG-DualNet (Reich et al.): a signal encoder and a spectrogram encoder fused by attention.

The signal encoder is a stack of 1-D residual conv stages over the raw record; the spectrogram
encoder a stack of 2-D residual conv stages over the log-magnitude STFT of the same record,
computed inside the model with `torch.stft` so that every data path, cache and explanation
method keeps the single ``(B, leads, T)`` input. In the "++" variant every spectrogram stage
ends with an axial-attention block (attention along frequency, then along time). The two
latent sequences are fused by cross-attention: each signal step queries the spectrogram frames
and the answer is added to it (the spectrogram conditions the signal), then the fused sequence
is pooled over time into a linear classifier.

Padding: a spectrogram frame is valid when its whole window lies inside the record
(``conv_lengths`` of a "convolution" with kernel ``stft_window`` and stride ``stft_hop``); the
frames past it are zero after every stage and are masked out of every attention, like the
time-domain padding rule of `models.layers`, so logits do not depend on padding in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.cnn import class_activation_map
from models.layers import (
    CnnTrunk,
    GlobalPool,
    choose,
    conv_lengths,
    mask_tail,
    resolve_lengths,
    time_mask,
    upsample_time,
)
from models.registry import register

ENCODERS: Mapping[str, tuple[bool, bool]] = MappingProxyType(
    {"both": (True, True), "signal": (True, False), "spectrogram": (False, True)}
)
"""Ablation switch ``encoders`` -> (signal encoder built, spectrogram encoder built)."""

_LOG_FLOOR = 1e-4  # log(|S| + floor): a silent frame stays finite


class ResidualBlock2d(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN (+ skip) -> ReLU on (B, C, F, N) spectrograms.

    The skip is a 1x1 convolution when the channels change. Frames past ``lengths`` (N axis)
    are zero on output, so the next 3x3 convolution sees the same zeros after a record's last
    frame whether it is alone or padded in a batch.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # No conv bias: BatchNorm's shift replaces it.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.skip: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, bias=False)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        y = mask_tail(F.relu(self.norm1(self.conv1(x))), lengths)
        y = self.norm2(self.conv2(y))
        return mask_tail(F.relu(y + self.skip(x)), lengths)


class AxialAttention2d(nn.Module):
    """Self-attention along the frequency axis, then along the time axis, of (B, C, F, N).

    Each is a residual multi-head attention followed by LayerNorm over the channels. The
    frequency attention gets a learned embedding per frequency bin (the bins have a fixed
    meaning); the time attention ignores frames past each record's length.

    Args:
        channels: C (divisible by ``n_heads``).
        n_freq: F, the number of frequency bins at this stage.
        n_heads: attention heads.
        dropout: dropout on the attention weights.
    """

    def __init__(self, channels: int, *, n_freq: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.freq_embedding = nn.Parameter(torch.zeros(1, channels, n_freq, 1))
        self.freq_attention = nn.MultiheadAttention(
            channels, n_heads, dropout=dropout, batch_first=True
        )
        self.time_attention = nn.MultiheadAttention(
            channels, n_heads, dropout=dropout, batch_first=True
        )
        self.freq_norm = nn.LayerNorm(channels)
        self.time_norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        b, c, f, n = x.shape
        # Along frequency: one sequence of F bins per (record, frame): (B * N, F, C).
        seq = (x + self.freq_embedding).permute(0, 3, 2, 1).reshape(b * n, f, c)
        seq = self.freq_norm(seq + self.freq_attention(seq, seq, seq, need_weights=False)[0])
        x = seq.reshape(b, n, f, c).permute(0, 3, 2, 1)
        # Along time: one sequence of N frames per (record, bin): (B * F, N, C).
        seq = x.permute(0, 2, 3, 1).reshape(b * f, n, c)
        padded = ~time_mask(lengths, n)[:, 0, :].repeat_interleave(f, dim=0)  # (B * F, N)
        attended = self.time_attention(seq, seq, seq, key_padding_mask=padded, need_weights=False)
        seq = self.time_norm(seq + attended[0])
        return mask_tail(seq.reshape(b, f, n, c).permute(0, 3, 1, 2), lengths)


class SpectrogramEncoder(nn.Module):
    """Log-magnitude STFT -> per-bin normalization -> 2-D residual stages -> latent sequence.

    Each stage is a `ResidualBlock2d` (plus an `AxialAttention2d` when ``axial_attention``),
    followed by 2x2 average pooling except after the last stage. The last map (B, C, F', N')
    is flattened over frequency and projected to ``latent_channels`` per frame.

    Args:
        n_leads: input leads (the spectrogram's input channels).
        channels: output channels per stage.
        window: STFT window (and FFT) length in samples.
        hop: STFT hop in samples.
        latent_channels: channels of the output sequence.
        axial_attention: add axial-attention blocks (the "++" variant).
        attention_heads: heads of the axial attention.
        dropout: dropout after every stage.
    """

    def __init__(
        self,
        *,
        n_leads: int,
        channels: Sequence[int],
        window: int,
        hop: int,
        latent_channels: int,
        axial_attention: bool,
        attention_heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if window < 4 or not 1 <= hop <= window:
            raise ValueError(f"need stft_window >= 4 and 1 <= stft_hop <= window, got "
                             f"{window}, {hop}")
        if len(channels) == 0:
            raise ValueError("spectrogram_channels must name at least one stage")
        self.window, self.hop = window, hop
        self.register_buffer("taper", torch.hann_window(window), persistent=False)
        n_freq = window // 2 + 1
        if n_freq >> (len(channels) - 1) < 1:
            raise ValueError(
                f"{len(channels)} spectrogram stages pool the {n_freq} frequency bins of a "
                f"{window}-sample window below one bin; use fewer stages or a longer window"
            )
        self.input_norm = nn.BatchNorm1d(n_leads * n_freq)  # one scale per lead and bin
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        in_channels = n_leads
        for stage, out_channels in enumerate(channels):
            self.blocks.append(ResidualBlock2d(in_channels, out_channels))
            if axial_attention:
                self.attentions.append(AxialAttention2d(
                    out_channels, n_freq=n_freq >> stage, n_heads=attention_heads,
                    dropout=dropout,
                ))
            in_channels = out_channels
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Conv1d(in_channels * (n_freq >> (len(channels) - 1)), latent_channels, 1)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Valid STFT frames per record: those whose window lies inside the record (>= 1)."""
        return conv_lengths(lengths, kernel_size=self.window, stride=self.hop)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid steps of the output sequence per record (`forward`'s second output)."""
        return (self.frame_lengths(lengths) // 2 ** (len(self.blocks) - 1)).clamp(min=1)

    def time_grid(self) -> tuple[int, float]:
        """(stride, offset) of the output sequence on the input's time axis (`upsample_time`):
        STFT frame n spans samples n * hop .. n * hop + window - 1, and each of the poolings
        between the stages averages two frames."""
        factor = 2 ** (len(self.blocks) - 1)
        return self.hop * factor, (self.window - 1) / 2 + self.hop * (factor - 1) / 2

    def spectrogram(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Normalized log-magnitude STFT (B, leads, F, N), zero past each record's frames."""
        b, leads, t = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            signal = x.float().reshape(b * leads, t)
            if t < self.window:  # a record shorter than one window: one zero-padded frame
                signal = F.pad(signal, (0, self.window - t))
            stft = torch.stft(
                signal, n_fft=self.window, hop_length=self.hop, window=self.taper,
                center=False, return_complex=True,
            )  # (B * leads, F, N)
            power = torch.log(stft.abs() + _LOG_FLOOR)
        frames = self.frame_lengths(lengths)
        n = power.shape[-1]
        # Padded frames are zeroed before the normalization, as zero-padded samples are
        # before the first conv's BatchNorm in the other families; left at log(floor) they
        # would drag the batch statistics of every bin in training.
        power = mask_tail(power.reshape(b, -1, n), frames)  # (B, leads * F, N)
        normed = self.input_norm(power)
        return mask_tail(normed.reshape(b, leads, -1, n), frames), frames

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, leads, T) -> latent sequence (B, D, N') and its valid lengths (B,)."""
        spec, frames = self.spectrogram(x, lengths)
        last = len(self.blocks) - 1
        for stage, block in enumerate(self.blocks):
            spec = block(spec, frames)
            if self.attentions:
                spec = self.attentions[stage](spec, frames)
            spec = self.dropout(spec)
            if stage < last:
                # (B, C, F, N) -> (B, C, F // 2, N // 2); a pair straddling the end is masked.
                spec = F.avg_pool2d(spec, 2)
                frames = (frames // 2).clamp(min=1)
                spec = mask_tail(spec, frames)
        b, c, f, n = spec.shape
        latent = self.project(spec.reshape(b, c * f, n))  # (B, C * F', N') -> (B, D, N')
        return mask_tail(latent, frames), frames


class CrossAttentionFusion(nn.Module):
    """Signal steps attend over spectrogram frames; the answer conditions the signal features.

    ``s' = LN(s + Attn(q=s, k=v=z))`` then ``LN(s' + FFN(s'))``, with the spectrogram frames
    past each record's length masked out of the keys.
    """

    def __init__(self, channels: int, *, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(
            channels, n_heads, dropout=dropout, batch_first=True
        )
        self.attention_norm = nn.LayerNorm(channels)
        self.feedforward = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(2 * channels, channels),
        )
        self.feedforward_norm = nn.LayerNorm(channels)

    def forward(
        self, signal: Tensor, signal_lengths: Tensor, spec: Tensor, spec_lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(B, D, T'), (B, D, N') -> fused (B, D, T') and attention weights (B, T', N')."""
        query = signal.transpose(1, 2)  # (B, T', D)
        keys = spec.transpose(1, 2)  # (B, N', D)
        padded = ~time_mask(spec_lengths, keys.shape[1])[:, 0, :]  # (B, N')
        attended, weights = self.attention(
            query, keys, keys, key_padding_mask=padded, need_weights=True,
            average_attn_weights=True,
        )
        fused = self.attention_norm(query + attended)
        fused = self.feedforward_norm(fused + self.feedforward(fused))
        weights = weights.masked_fill(~time_mask(signal_lengths, query.shape[1]).transpose(1, 2),
                                      0.0)
        return mask_tail(fused.transpose(1, 2), signal_lengths), weights


@register("dualnet")
class DualNet(nn.Module):
    """ECG-DualNet / ECG-DualNet++: signal encoder + spectrogram encoder, attention fusion.

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        encoders: ``"both"``, ``"signal"`` (no spectrogram encoder) or ``"spectrogram"`` (no
            signal encoder): the work's ablation. With one encoder its latent sequence is
            pooled directly.
        signal_channels: output channels per 1-D stage; a stage is two residual convs, and
            average pooling (kernel 2) follows every stage but the last.
        signal_kernel_size: odd kernel length of the 1-D convs.
        spectrogram_channels: output channels per 2-D stage (2x2 pooling between stages).
        stft_window: STFT window in samples (Hann taper; ``window // 2 + 1`` bins).
        stft_hop: STFT hop in samples.
        axial_attention: axial-attention block in every spectrogram stage (the "++" variant).
        latent_channels: width D of both latent sequences and of the fusion.
        fusion_heads: heads of the cross-attention (and of the axial attention).
        dropout: dropout after every encoder stage, in the attention and before the classifier.
        pooling: pooling of the fused sequence over time, ``"gap"``, ``"gmp"`` or ``"lse"``.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        encoders: str = "both",
        signal_channels: Sequence[int] = (32, 64, 128, 128, 128),
        signal_kernel_size: int = 7,
        spectrogram_channels: Sequence[int] = (16, 32, 64, 128, 128),
        stft_window: int = 64,
        stft_hop: int = 16,
        axial_attention: bool = False,
        latent_channels: int = 128,
        fusion_heads: int = 4,
        dropout: float = 0.2,
        pooling: str = "gap",
    ) -> None:
        super().__init__()
        use_signal, use_spectrogram = choose(ENCODERS, encoders, what="encoders")
        if latent_channels % fusion_heads:
            raise ValueError(f"latent_channels ({latent_channels}) must be divisible by "
                             f"fusion_heads ({fusion_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.signal_encoder: CnnTrunk | None = None
        self.signal_project: nn.Conv1d | None = None
        if use_signal:
            if len(signal_channels) == 0:
                raise ValueError("signal_channels must name at least one stage")
            layers = [int(c) for c in signal_channels for _ in range(2)]  # two convs per stage
            self.signal_encoder = CnnTrunk(
                n_leads=n_leads, channels=layers, kernel_size=signal_kernel_size, pool_every=2,
                dropouts=[dropout] * len(layers), residual=True,
            )
            self.signal_project = nn.Conv1d(layers[-1], latent_channels, 1)
        self.spectrogram_encoder: SpectrogramEncoder | None = None
        if use_spectrogram:
            self.spectrogram_encoder = SpectrogramEncoder(
                n_leads=n_leads, channels=spectrogram_channels, window=stft_window, hop=stft_hop,
                latent_channels=latent_channels, axial_attention=axial_attention,
                attention_heads=_heads_for(spectrogram_channels, fusion_heads),
                dropout=dropout,
            )
        self.fusion: CrossAttentionFusion | None = None
        if use_signal and use_spectrogram:
            self.fusion = CrossAttentionFusion(latent_channels, n_heads=fusion_heads,
                                               dropout=dropout)
        self.pool = GlobalPool(pooling)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(latent_channels, n_classes)

    def _encode(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The sequence the head pools (B, D, T'), its lengths, and the cross-attention
        weights (B, T', N') when both encoders are on."""
        x = mask_tail(x, lengths)
        spec = None
        if self.spectrogram_encoder is not None:
            spec, spec_lengths = self.spectrogram_encoder(x, lengths)
        if self.signal_encoder is None:
            return spec, spec_lengths, None
        features, steps = self.signal_encoder(x, lengths)[-1]
        signal = mask_tail(self.signal_project(features), steps)  # (B, C, T') -> (B, D, T')
        if self.fusion is None:
            return signal, steps, None
        fused, weights = self.fusion(signal, steps, spec, spec_lengths)
        return fused, steps, weights

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        features, steps, _ = self._encode(x, resolve_lengths(x, lengths))
        return self.head(self.dropout(self.pool(features, steps)))

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits, the class activation maps and the attention between the encoders.

        Returns:
            ``logits`` (B, K); ``cam`` (B, K, T): the classifier's weights applied to the
            pooled sequence at every step (exact for ``pooling="gap"``); with both encoders
            ``encoder_attention`` (B, 1, T): the attention each spectrogram frame receives
            from the signal steps (mean over the valid steps, so it sums to one over frames),
            on the input's time axis. All maps are zero past ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        features, steps, weights = self._encode(x, lengths)
        if self.signal_encoder is not None:
            stride, offset = self.signal_encoder.strides[-1], None
        else:
            stride, offset = self.spectrogram_encoder.time_grid()
        explanation = {
            "logits": self.head(self.dropout(self.pool(features, steps))),
            "cam": upsample_time(class_activation_map(features, steps, self.head),
                                 size=x.shape[-1], lengths=lengths, frame_lengths=steps,
                                 stride=stride, offset=offset),
        }
        if weights is not None:
            # (B, T', N') -> (B, 1, N'): mean over the valid query steps.
            received = weights.sum(1, keepdim=True) / steps[:, None, None].to(weights.dtype)
            spec_stride, spec_offset = self.spectrogram_encoder.time_grid()
            explanation["encoder_attention"] = upsample_time(
                received, size=x.shape[-1], lengths=lengths, stride=spec_stride,
                frame_lengths=self.spectrogram_encoder.output_lengths(lengths),
                offset=spec_offset)
        return explanation


def _heads_for(channels: Sequence[int], heads: int) -> int:
    """Axial-attention heads: ``heads``, reduced to a divisor of every stage's channels."""
    while heads > 1 and any(int(c) % heads for c in channels):
        heads //= 2
    return heads
