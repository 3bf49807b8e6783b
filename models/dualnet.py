"""ECG-DualNet and ECG-DualNet++ (Reich, Rohr et al.), layer by layer as in the published code.

Published code: github.com/ChristophReich1996/ECG_Classification at 3694a7e,
``ecg_classification/model.py`` (``ECGCNN`` is ECG-DualNet, ``ECGAttNet`` ECG-DualNet++),
sizes in ``config.py``, the STFT and the signal windows in ``dataset.py``. docs/fidelity.md
lists every detail with its source line and where this module departs.

- Signal encoder: the record (z-scored by the data pipeline) cut into windows of 256 samples
  every 224 samples; ECG-DualNet reads them with a 2-3 layer LSTM and keeps its last output,
  ECG-DualNet++ with a Transformer encoder (GELU, learned positional embedding) and averages
  its outputs. The vector conditions every spectrogram block and joins the head.
- Spectrogram encoder: the log-magnitude STFT (n_fft 64, Hann window 64, hop 32, centred
  with reflection, magnitude normalised by the window's energy, log(max(|S|, 1e-8))) through
  5 residual 2-D blocks: conv3x3 -> conditional batch norm -> PAU -> conv3x3 -> conditional
  batch norm (+ 1x1 skip) -> PAU, 2x2 average pooling after each. In ++ stages 3-5 are
  axial-attention blocks instead (Axial-DeepLab: attention along time, then frequency, with
  relative positions in 16 groups, as the published code computes it).
- Head: average pool -> Linear + PAU -> plus the signal vector -> Linear.

Lengths: the published loader pads every record to 18,000 samples. Here a record is
processed at its own length and the padding of a batch is masked: windows past the record's
end are not read (the LSTM's output is taken at the record's last window), spectrogram frames
past it are zero before every convolution and out of every attention and of the pooling, so
logits do not depend on padding in eval mode. ``pad_to_max`` restores the published padding.
The spectrogram is laid out (B, C, frequency, time), time last like the signal; the published
(B, C, time, frequency) differs by a transposition of every 3x3 kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    CnnTrunk,
    choose,
    gather_steps,
    mask_tail,
    resolve_lengths,
    time_mask,
    upsample_time,
)
from models.pau import PadeActivation
from models.registry import register

ENCODERS: Mapping[str, tuple[bool, bool]] = MappingProxyType(
    {"both": (True, True), "signal": (True, False), "spectrogram": (False, True)}
)
"""Ablation switch ``encoders`` -> (signal encoder built, spectrogram encoder built), the
published ``no_spectrogram_encoder`` / ``no_signal_encoder`` flags."""

_LOG_FLOOR = 1e-8  # published: log(|S|.clamp(min=1e-8))


# ---------------------------------------------------------------------------------------------
# signal encoders


def window_counts(lengths: Tensor, *, window: int, step: int, max_windows: int) -> Tensor:
    """Windows that cover each record: the first at sample 0, then every ``step``; the last
    may run past the record's end (zeros there, as in the published zero-padded record).
    At most ``max_windows`` (the published 80 over 18,000 samples)."""
    beyond = (lengths - window).clamp(min=0)
    return (torch.div(beyond + step - 1, step, rounding_mode="floor") + 1).clamp(max=max_windows)


def signal_windows(x: Tensor, counts: Tensor, *, window: int, step: int) -> Tensor:
    """(B, leads, T) zero past each record -> windows (B, K, leads * window), K = max count."""
    n = int(counts.max())
    width = (n - 1) * step + window
    if x.shape[-1] < width:
        x = F.pad(x, (0, width - x.shape[-1]))
    windows = x[..., :width].unfold(-1, window, step)  # (B, leads, K, window)
    return windows.permute(0, 2, 1, 3).reshape(x.shape[0], n, -1)


class _Windows(nn.Module):
    """Cuts (B, leads, T) records into windows (B, K, leads * window) with their counts."""

    def __init__(self, *, window: int, step: int, max_windows: int) -> None:
        super().__init__()
        self.window, self.step, self.max_windows = window, step, max_windows

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        counts = window_counts(lengths, window=self.window, step=self.step,
                               max_windows=self.max_windows)
        return signal_windows(x, counts, window=self.window, step=self.step), counts


class LstmSignalEncoder(nn.Module):
    """ECG-DualNet's signal encoder: an LSTM over the windows; its last output is the vector.

    Returns the vector (B, D) after the record's last window, the outputs after every window
    (B, D, K) (the vector a record ending there would have given) and the window counts.
    """

    def __init__(self, *, n_leads: int, window: int, step: int, max_windows: int, hidden: int,
                 layers: int, dropout: float) -> None:
        super().__init__()
        self.windows = _Windows(window=window, step=step, max_windows=max_windows)
        self.lstm = nn.LSTM(n_leads * window, hidden, num_layers=layers, dropout=dropout,
                            batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        windows, counts = self.windows(x, lengths)
        # (B, K, leads * window) -> (B, K, D); causal, so the output at the last valid window
        # does not depend on the windows after it.
        outputs, _ = self.lstm(windows)
        return gather_steps(outputs, counts - 1), outputs.transpose(1, 2), counts


class TransformerSignalEncoder(nn.Module):
    """ECG-DualNet++'s signal encoder: a post-norm Transformer encoder (GELU) with a final
    LayerNorm over the windows plus a learned positional embedding (initialised
    0.1 * N(0, 1)); the vector is the mean of its outputs over the record's windows."""

    def __init__(self, *, n_leads: int, window: int, step: int, max_windows: int, heads: int,
                 feedforward: int, layers: int, dropout: float) -> None:
        super().__init__()
        width = n_leads * window
        if width % heads:
            raise ValueError(f"the window ({width} values) must be divisible by "
                             f"transformer_heads ({heads})")
        self.windows = _Windows(window=window, step=step, max_windows=max_windows)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=feedforward,
                                           dropout=dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width),
                                             enable_nested_tensor=False)
        self.positional_embedding = nn.Parameter(0.1 * torch.randn(max_windows, width))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        windows, counts = self.windows(x, lengths)
        n = windows.shape[1]
        valid = time_mask(counts, n)[:, 0, :]  # (B, K)
        outputs = self.encoder(windows + self.positional_embedding[:n],
                               src_key_padding_mask=~valid)
        steps = mask_tail(outputs.transpose(1, 2), counts)  # (B, D, K)
        return steps.sum(-1) / counts[:, None].to(steps.dtype), steps, counts


class CnnSignalEncoder(nn.Module):
    """Ablation (not published): the 1-D residual CNN this project used before, two convs per
    stage with average pooling between stages, averaged over time and mapped to ``hidden``."""

    def __init__(self, *, n_leads: int, channels: Sequence[int], kernel_size: int,
                 hidden: int, dropout: float) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError("signal_channels must name at least one stage")
        layers = [int(c) for c in channels for _ in range(2)]  # two convs per stage
        self.trunk = CnnTrunk(n_leads=n_leads, channels=layers, kernel_size=kernel_size,
                              pool_every=2, dropouts=[dropout] * len(layers), residual=True)
        self.project = nn.Conv1d(layers[-1], hidden, 1)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features, steps = self.trunk(x, lengths)[-1]
        projected = mask_tail(self.project(features), steps)  # (B, D, T')
        return projected.sum(-1) / steps[:, None].to(projected.dtype), projected, steps


# ---------------------------------------------------------------------------------------------
# spectrogram encoder


class Spectrogram(nn.Module):
    """The published STFT: torchaudio ``Spectrogram(n_fft, win_length=n_fft, hop, power=1,
    normalized=True)`` (periodic Hann window, centred with reflection at both ends of each
    record) followed by ``log(|S|.clamp(min=1e-8))``; frames past a record's
    ``1 + length // hop`` are zero (the published zero padding of shorter records)."""

    def __init__(self, *, n_fft: int, hop: int) -> None:
        super().__init__()
        if n_fft < 4 or not 1 <= hop <= n_fft:
            raise ValueError(f"need stft_window >= 4 and 1 <= stft_hop <= stft_window, got "
                             f"{n_fft}, {hop}")
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("taper", torch.hann_window(n_fft), persistent=False)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, lengths: Tensor) -> Tensor:
        """Frames of each record (torchaudio's centred count)."""
        return 1 + torch.div(lengths, self.hop, rounding_mode="floor")

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, leads, T) -> log-magnitude (B, leads, bins, N) and frames per record (B,)."""
        b, leads, t = x.shape
        half = self.n_fft // 2
        # Reflect each record at its own ends (not at the batch's padded end): index i of
        # the centred signal reads sample |i| before the start and 2 (L - 1) - i after the end.
        positions = torch.arange(-half, t + half, device=x.device)[None, :]  # (1, T + n_fft)
        last = (lengths - 1)[:, None]
        index = torch.where(positions > last, 2 * last - positions, positions.abs())
        index = index.clamp(min=0).minimum(last)  # records shorter than half a window
        with torch.autocast(device_type=x.device.type, enabled=False):
            centred = x.float().gather(-1, index[:, None, :].expand(b, leads, -1))
            stft = torch.stft(centred.reshape(b * leads, -1), n_fft=self.n_fft,
                              hop_length=self.hop, window=self.taper, center=False,
                              return_complex=True)  # (B * leads, bins, N)
            magnitude = stft.abs() / self.taper.pow(2).sum().sqrt()
            spectrum = torch.log(magnitude.clamp(min=_LOG_FLOOR))
        frames = self.frames(lengths)
        spectrum = spectrum.reshape(b, leads, self.bins, -1)
        return mask_tail(spectrum, frames), frames


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose output is scaled and shifted by a linear map of the signal vector
    (de Vries et al. 2017): ``scale(z) * BN(x) + shift(z)``, ``(scale, shift) = W z`` (no
    bias, as published, so the scale starts near zero). ``latent=None`` (no signal encoder)
    builds plain BN (the published ablation keeps W, unused)."""

    def __init__(self, channels: int, *, latent: int | None) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.project = None if latent is None else nn.Linear(latent, 2 * channels, bias=False)

    def forward(self, x: Tensor, latent: Tensor | None) -> Tensor:
        y = self.norm(x)
        if self.project is None or latent is None:
            return y
        scale, shift = self.project(latent).chunk(2, dim=-1)  # (B, C) each
        return scale[..., None, None] * y + shift[..., None, None]


def _masked(x: Tensor, frames: Tensor | None) -> Tensor:
    """``x`` zero past each record's frames; ``frames=None``: no record of the batch is
    padded (the common case of equal lengths), nothing to mask."""
    return x if frames is None else mask_tail(x, frames)


def _pool(x: Tensor, frames: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """2x2 average pooling (floor); a pair of frames straddling a record's end is masked."""
    if frames is not None:
        frames = torch.div(frames, 2, rounding_mode="floor")
    return _masked(F.avg_pool2d(x, 2), frames), frames


class ResidualBlock2d(nn.Module):
    """The published ``Conv2dResidualBlock``: conv3x3 -> CBN -> PAU -> dropout -> conv3x3 ->
    CBN, plus the input (1x1 conv when the channels change) -> PAU -> dropout -> 2x2 average
    pooling. Convolutions have no bias; dropout drops whole channels (``Dropout2d``)."""

    def __init__(self, in_channels: int, out_channels: int, *, latent: int | None,
                 dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = ConditionalBatchNorm2d(out_channels, latent=latent)
        self.act1 = PadeActivation()
        self.dropout1 = nn.Dropout2d(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = ConditionalBatchNorm2d(out_channels, latent=latent)
        self.skip: nn.Module = (nn.Identity() if in_channels == out_channels
                                else nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.act2 = PadeActivation()
        self.dropout2 = nn.Dropout2d(dropout)

    def forward(self, x: Tensor, frames: Tensor | None,
                latent: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(B, C_in, F, N), zero past ``frames`` -> (B, C_out, F // 2, N // 2) and its frames
        (None: no record padded)."""
        y = self.dropout1(self.act1(self.norm1(self.conv1(x), latent)))
        y = self.norm2(self.conv2(_masked(y, frames)), latent)  # zeros past the end, as alone
        y = self.dropout2(self.act2(y + self.skip(x)))
        return _pool(_masked(y, frames), frames)


class AxialAttention(nn.Module):
    """The published ``AxialAttention2d`` along one axis of (B, C, F, N): Axial-DeepLab
    (Wang et al. 2020) with relative positions over ``span`` in ``groups`` heads, computed as
    the published code does.

    Queries, keys (C / 2 channels each) and values (C) come from one 1x1 conv + BN. With
    relative embeddings r (span-relative offsets), the similarity is the sum of three
    batch-normalised maps: ``qr_ij = q_i . r^q_ij``, ``kr_ij = k_i . r^k_ij`` and
    ``sum_m qr_mi kr_mj`` (the published einsum contracts the embedded maps over their first
    position, model.py:448, where Axial-DeepLab has ``q_i . k_j``); softmax over j; the output
    is ``BN(sum_j a_ij v_j) + BN(sum_j a_ij r^v_ij)``. Along time, positions past a record's
    frames are out of the keys and out of that sum over m.

    Args:
        channels: C, divisible by ``groups`` (and C / groups even).
        span: the longest axis the relative embeddings cover (published: the padded
            spectrogram's size at this stage).
        groups: attention heads.
        along_time: attend along the time axis N (else along frequency F).
    """

    def __init__(self, channels: int, *, span: int, groups: int, along_time: bool) -> None:
        super().__init__()
        group_channels = channels // groups
        if channels % groups or group_channels % 2:
            raise ValueError(f"axial attention needs channels ({channels}) divisible by "
                             f"2 x axial_groups ({groups})")
        self.groups, self.group_channels, self.span = groups, group_channels, span
        self.along_time = along_time
        self.qkv = nn.Sequential(nn.Conv1d(channels, 2 * channels, 1, bias=False),
                                 nn.BatchNorm1d(2 * channels))
        self.output_norm = nn.BatchNorm1d(2 * channels)
        self.similarity_norm = nn.BatchNorm2d(3 * groups)
        self.relative = nn.Parameter(torch.randn(2 * group_channels, 2 * span - 1))

    def forward(self, x: Tensor, frames: Tensor | None) -> Tensor:
        """(B, C, F, N) -> (B, C, F, N); ``frames=None``: no record padded."""
        b, c, f, n = x.shape
        valid = None
        if self.along_time:  # one sequence per (record, bin): (B * F, C, N)
            seq = x.permute(0, 2, 1, 3).reshape(b * f, c, n)
            if frames is not None:
                valid = time_mask(frames, n)[:, 0, :].repeat_interleave(f, dim=0)  # (B * F, N)
        else:  # one sequence per (record, frame): (B * N, C, F), every bin valid
            seq = x.permute(0, 3, 1, 2).reshape(b * n, c, f)
        out = self._attend(seq, valid)
        if self.along_time:
            return out.reshape(b, f, c, n).permute(0, 2, 1, 3)
        return out.reshape(b, n, c, f).permute(0, 2, 3, 1)

    def _attend(self, seq: Tensor, valid: Tensor | None) -> Tensor:
        """(S, C, L) sequences with valid positions (S, L) (None: all) -> (S, C, L)."""
        s, c, length = seq.shape
        if length > self.span:
            raise ValueError(f"axial attention over {length} positions, but its relative "
                             f"embeddings span {self.span} (raise max_samples)")
        g, gc = self.groups, self.group_channels
        qkv = self.qkv(seq).reshape(s, g, 2 * gc, length)
        query, key, value = qkv.split([gc // 2, gc // 2, gc], dim=2)
        if valid is not None:
            keep = valid[:, None, None, :].to(qkv.dtype)  # (S, 1, 1, L)
            query, key = query * keep, key * keep
        offsets = torch.arange(length, device=seq.device)
        index = (offsets[:, None] - offsets[None, :] + self.span - 1).reshape(-1)
        embedded = self.relative.index_select(1, index).view(2 * gc, length, length)
        query_rel, key_rel, value_rel = embedded.to(qkv.dtype).split(
            [gc // 2, gc // 2, gc], dim=0)
        query_embedded = torch.einsum("sgci,cij->sgij", query, query_rel)
        key_embedded = torch.einsum("sgci,cij->sgij", key, key_rel)
        query_key = torch.einsum("sgmi,sgmj->sgij", query_embedded, key_embedded)
        similarity = torch.cat([query_key, query_embedded, key_embedded], dim=1)  # (S, 3G, L, L)
        similarity = self.similarity_norm(similarity).view(s, 3, g, length, length).sum(1)
        if valid is not None:
            similarity = similarity.masked_fill(~valid[:, None, None, :], float("-inf"))
        weights = similarity.softmax(dim=-1)  # (S, G, L, L)
        attended = torch.einsum("sgij,sgcj->sgci", weights, value)
        attended_rel = torch.einsum("sgij,cij->sgci", weights, value_rel)
        # (S, G, gc, 2, L) -> channels (g, c, half) as the published cat(..., -1).view(...).
        both = torch.stack([attended, attended_rel], dim=3).reshape(s, 2 * c, length)
        return self.output_norm(both).view(s, c, 2, length).sum(2)


class AxialBlock2d(nn.Module):
    """The published ``AxialAttention2dBlock``: 1x1 conv -> CBN -> PAU -> attention along
    time, then along frequency -> dropout -> 2x2 average pooling -> 1x1 conv -> CBN, plus the
    pooled input (1x1 conv when the channels change) -> PAU."""

    def __init__(self, in_channels: int, out_channels: int, *, latent: int | None,
                 spans: tuple[int, int], groups: int, dropout: float) -> None:
        super().__init__()
        span_freq, span_time = spans
        self.input_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.input_norm = ConditionalBatchNorm2d(out_channels, latent=latent)
        self.input_act = PadeActivation()
        self.time_attention = AxialAttention(out_channels, span=span_time, groups=groups,
                                             along_time=True)
        self.freq_attention = AxialAttention(out_channels, span=span_freq, groups=groups,
                                             along_time=False)
        self.dropout = nn.Dropout2d(dropout)
        self.output_conv = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.output_norm = ConditionalBatchNorm2d(out_channels, latent=latent)
        self.skip: nn.Module = (nn.Identity() if in_channels == out_channels
                                else nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.act = PadeActivation()

    def forward(self, x: Tensor, frames: Tensor | None,
                latent: Tensor | None) -> tuple[Tensor, Tensor | None]:
        y = _masked(self.input_act(self.input_norm(self.input_conv(x), latent)), frames)
        y = _masked(self.freq_attention(self.time_attention(y, frames), frames), frames)
        y, pooled = _pool(self.dropout(y), frames)
        y = self.output_norm(self.output_conv(y), latent)
        skip, _ = _pool(self.skip(x), frames)
        return _masked(self.act(y + skip), pooled), pooled


class SpectrogramEncoder(nn.Module):
    """STFT -> residual (or axial-attention) 2-D blocks, each ending in 2x2 average pooling.

    Args:
        n_leads: input channels of the first block.
        channels: output channels per stage.
        axial_stages: 0-based stages built as axial-attention blocks (published ++: 2, 3, 4).
        axial_groups: heads of the axial attention.
        n_fft: STFT size and window (Hann).
        hop: STFT hop.
        max_samples: the longest record; sets the spans of the relative position embeddings
            (the published ones: its frames and bins halved per stage).
        pad_to_max: zero-pad every spectrogram to the frames of ``max_samples`` and treat
            the padding as data, as the published loader does.
        latent: width of the signal vector that conditions the batch norms (None: plain
            batch norms, no signal encoder).
        dropout: channel dropout in every block.
    """

    def __init__(self, *, n_leads: int, channels: Sequence[int], axial_stages: Sequence[int],
                 axial_groups: int, n_fft: int, hop: int, max_samples: int, pad_to_max: bool,
                 latent: int | None, dropout: float) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError("spectrogram_channels must name at least one stage")
        bad = sorted(set(axial_stages) - set(range(len(channels))))
        if bad:
            raise ValueError(f"axial_stages {bad} are not stages of {len(channels)}")
        self.spectrogram = Spectrogram(n_fft=n_fft, hop=hop)
        self.min_frames = 2 ** len(channels)  # one frame left after the last pooling
        max_frames = 1 + max_samples // hop  # `Spectrogram.frames` in plain integers
        self.padded_frames = max_frames if pad_to_max else None
        if self.spectrogram.bins < self.min_frames or max_frames < self.min_frames:
            raise ValueError(
                f"{len(channels)} stages pool the {self.spectrogram.bins} frequency bins of a "
                f"{n_fft}-sample window (or the {max_frames} frames of max_samples) below one; "
                "use fewer stages, a longer window or a larger max_samples")
        self.blocks = nn.ModuleList()
        in_channels = n_leads
        for stage, out_channels in enumerate(channels):
            spans = (self.spectrogram.bins >> stage, max_frames >> stage)
            self.blocks.append(
                AxialBlock2d(in_channels, out_channels, latent=latent, spans=spans,
                             groups=axial_groups, dropout=dropout) if stage in axial_stages
                else ResidualBlock2d(in_channels, out_channels, latent=latent, dropout=dropout))
            in_channels = out_channels
        self.out_channels = in_channels

    def forward(self, x: Tensor, lengths: Tensor, latent: Tensor | None) -> tuple[Tensor, Tensor]:
        """(B, leads, T) -> last map (B, C, F', N') and its frames (B,)."""
        spec, frames = self.spectrogram(x, lengths)
        # A record too short for the pooling is zero-padded, as the published loader pads
        # every record (pad_to_max: to the frames of max_samples, all read as data).
        width = self.padded_frames or self.min_frames
        if spec.shape[-1] < width:
            spec = F.pad(spec, (0, width - spec.shape[-1]))
        frames = frames.clamp(min=width)
        # Equal lengths (most batches of 30-s records): no masking anywhere (None).
        ragged: Tensor | None = frames if bool((frames < spec.shape[-1]).any()) else None
        for block in self.blocks:
            spec, ragged = block(spec, ragged, latent)
        if ragged is None:
            return spec, torch.full_like(frames, spec.shape[-1])
        return spec, ragged


# ---------------------------------------------------------------------------------------------
# the model


def _lstm(o: Mapping) -> nn.Module:
    return LstmSignalEncoder(n_leads=o["n_leads"], window=o["window"], step=o["step"],
                             max_windows=o["max_windows"], hidden=o["hidden"],
                             layers=o["layers"], dropout=o["dropout"])


def _transformer(o: Mapping) -> nn.Module:
    return TransformerSignalEncoder(
        n_leads=o["n_leads"], window=o["window"], step=o["step"], max_windows=o["max_windows"],
        heads=o["heads"], feedforward=o["feedforward"], layers=o["layers"],
        dropout=o["dropout"])


def _cnn(o: Mapping) -> nn.Module:
    return CnnSignalEncoder(n_leads=o["n_leads"], channels=o["channels"],
                            kernel_size=o["kernel_size"], hidden=o["hidden"],
                            dropout=o["dropout"])


SIGNAL_ENCODERS: Mapping[str, Callable[[Mapping], nn.Module]] = MappingProxyType(
    {"lstm": _lstm, "transformer": _transformer, "cnn": _cnn}
)
"""``signal_encoder`` -> builder: ``lstm`` (ECG-DualNet), ``transformer`` (ECG-DualNet++),
``cnn`` (ablation, not published)."""

@register("dualnet")
class DualNet(nn.Module):
    """ECG-DualNet / ECG-DualNet++: signal and spectrogram encoders fused by conditional
    batch norm and in the head.

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required; the published model has 1).
        encoders: ``"both"``, ``"signal"`` or ``"spectrogram"``: the published ablation
            (without a signal encoder the batch norms are plain; without a spectrogram
            encoder the head is the last Linear on the signal vector).
        signal_encoder: ``"lstm"`` (ECG-DualNet), ``"transformer"`` (ECG-DualNet++) or
            ``"cnn"`` (ablation: a 1-D residual CNN, not published).
        window_samples: samples per signal window (published 256).
        window_step: samples between window starts (published 224).
        signal_hidden: LSTM units (published S/M/L/XL: 128/256/256/512), also the width of
            the signal vector for ``lstm`` and ``cnn``; a Transformer's vector is its window.
        signal_layers: LSTM or Transformer layers (published 2/2/3/3).
        transformer_heads: Transformer heads (published 8).
        transformer_feedforward: Transformer feed-forward width (published 128/256/256/512).
        signal_channels: ``cnn`` only: channels per stage (two convolutions each).
        signal_kernel_size: ``cnn`` only: odd kernel length.
        spectrogram_channels: output channels of the 2-D blocks (published S 16-256).
        axial_stages: 0-based stages that are axial-attention blocks (published ++:
            [2, 3, 4]; empty: ECG-DualNet).
        axial_groups: axial-attention heads (published 16).
        stft_window: STFT size and Hann window (published 64).
        stft_hop: STFT hop (published 32, half the window).
        max_samples: records are cut to this many samples (published 18,000); it sets the
            Transformer's positional embeddings and the axial attention's spans.
        pad_to_max: zero-pad every record to ``max_samples`` as the published loader does
            (the LSTM then reads the padding, the pooling averages it); off, each record is
            read at its own length.
        dropout: dropout in the encoders (published 0.05).
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        encoders: str = "both",
        signal_encoder: str = "lstm",
        window_samples: int = 256,
        window_step: int = 224,
        signal_hidden: int = 128,
        signal_layers: int = 2,
        transformer_heads: int = 8,
        transformer_feedforward: int = 128,
        signal_channels: Sequence[int] = (32, 64, 128, 128, 128),
        signal_kernel_size: int = 7,
        spectrogram_channels: Sequence[int] = (16, 32, 64, 128, 256),
        axial_stages: Sequence[int] = (),
        axial_groups: int = 16,
        stft_window: int = 64,
        stft_hop: int = 32,
        max_samples: int = 18000,
        pad_to_max: bool = False,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        use_signal, use_spectrogram = choose(ENCODERS, encoders, what="encoders")
        build_signal = choose(SIGNAL_ENCODERS, signal_encoder, what="signal_encoder")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if not 1 <= window_step <= window_samples <= max_samples:
            raise ValueError(f"need 1 <= window_step <= window_samples <= max_samples, got "
                             f"{window_step}, {window_samples}, {max_samples}")
        self.max_samples, self.pad_to_max = max_samples, pad_to_max
        # The signal vector's width: the Transformer keeps its window, the others map to
        # signal_hidden; the batch norms and the head are sized by it even without the encoder.
        latent = window_samples * n_leads if signal_encoder == "transformer" else signal_hidden
        self.signal_encoder: nn.Module | None = None
        if use_signal:
            self.signal_encoder = build_signal({
                "n_leads": n_leads, "window": window_samples, "step": window_step,
                "max_windows": (max_samples - window_samples) // window_step + 1,
                "hidden": signal_hidden, "layers": signal_layers, "heads": transformer_heads,
                "feedforward": transformer_feedforward, "dropout": dropout,
                "channels": signal_channels, "kernel_size": signal_kernel_size})
        self.spectrogram_encoder: SpectrogramEncoder | None = None
        self.project: nn.Linear | None = None
        self.project_act: PadeActivation | None = None
        if use_spectrogram:
            self.spectrogram_encoder = SpectrogramEncoder(
                n_leads=n_leads, channels=spectrogram_channels, axial_stages=axial_stages,
                axial_groups=axial_groups, n_fft=stft_window, hop=stft_hop,
                max_samples=max_samples, pad_to_max=pad_to_max,
                latent=latent if use_signal else None, dropout=dropout)
            self.project = nn.Linear(self.spectrogram_encoder.out_channels, latent)
            self.project_act = PadeActivation()
        self.head = nn.Linear(latent, n_classes)

    def _encode(self, x: Tensor, lengths: Tensor | None) -> dict[str, Tensor]:
        """The per-step signal features (B, D, K) with their counts, the spectrogram's last
        map (B, C, F', N') with its frames, and the head's input.

        Records are cut to ``max_samples`` and zero past their lengths; with ``pad_to_max``
        the signal encoder reads every record zero-padded to ``max_samples`` and the
        spectrogram encoder every spectrogram zero-padded to its frames.
        """
        lengths = resolve_lengths(x, lengths).clamp(max=self.max_samples)
        x = mask_tail(x[..., : self.max_samples], lengths)
        parts: dict[str, Tensor] = {}
        vector = None
        if self.signal_encoder is not None:
            signal, signal_lengths = x, lengths
            if self.pad_to_max:
                signal = F.pad(x, (0, self.max_samples - x.shape[-1]))
                signal_lengths = torch.full_like(lengths, self.max_samples)
            vector, steps, counts = self.signal_encoder(signal, signal_lengths)
            parts.update(signal_steps=steps, signal_counts=counts)
        if self.spectrogram_encoder is not None:
            spec, frames = self.spectrogram_encoder(x, lengths, vector)
            parts.update(spectrogram=spec, frames=frames)
            pooled = mask_tail(spec, frames).sum((-2, -1)) / (
                frames * spec.shape[-2]).to(spec.dtype)[:, None]  # (B, C)
            parts["pre_activation"] = self.project(pooled)
            hidden = self.project_act(parts["pre_activation"])
            vector = hidden if vector is None else hidden + vector
        parts["head_input"] = vector
        return parts

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        return self.head(self._encode(x, lengths)["head_input"])

    def parameter_parts(self) -> dict[str, int]:
        """Trainable parameters per part: ``signal_encoder``, ``spectrogram_encoder`` and
        ``head`` (the published split: its ``ecg_encoder`` (+ positional embedding),
        ``spectrogram_encoder``, and ``linear_layer_1`` with its PAU + ``linear_layer_2``)."""
        def count(*modules: nn.Module | None) -> int:
            return sum(p.numel() for m in modules if m is not None for p in m.parameters()
                       if p.requires_grad)

        return {"signal_encoder": count(self.signal_encoder),
                "spectrogram_encoder": count(self.spectrogram_encoder),
                "head": count(self.project, self.project_act, self.head)}

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and maps on the input's time axis, zero past ``lengths``.

        Returns:
            ``logits`` (B, K); with the spectrogram encoder ``cam`` (B, K, T): the last
            spectrogram map averaged over frequency, weighted per class by the head's
            gradient with respect to the pooled map (Grad-CAM; the head is Linear -> PAU ->
            Linear, so the gradient is the same at every frame and the map's mean over the
            record is the first-order part of the logit); with the signal encoder
            ``signal_steps`` (B, K, T): the head's last Linear applied to each window's
            feature (LSTM: the decision had the record ended there; Transformer and CNN:
            each step's share of the mean).
        """
        original = resolve_lengths(x, lengths)
        parts = self._encode(x, original)
        # the samples the encoders' steps cover
        used = (torch.full_like(original, self.max_samples) if self.pad_to_max
                else original.clamp(max=self.max_samples))
        explanation = {"logits": self.head(parts["head_input"])}
        if "spectrogram" in parts:
            spec, frames = parts["spectrogram"], parts["frames"]
            slope = self.project_act.derivative(parts["pre_activation"])  # (B, D)
            gradient = torch.einsum("kd,bd,dc->bkc", self.head.weight, slope,
                                    self.project.weight)  # d logits / d pooled map
            cam = torch.einsum("bkc,bcn->bkn", gradient, mask_tail(spec, frames).mean(-2))
            explanation["cam"] = _on_input(cam, frames, used=used, original=original,
                                           width=x.shape[-1])
        if "signal_steps" in parts:
            counts = parts["signal_counts"]
            steps = torch.einsum("kd,bdn->bkn", self.head.weight, parts["signal_steps"])
            explanation["signal_steps"] = _on_input(steps, counts, used=used,
                                                    original=original, width=x.shape[-1])
        return explanation


def _on_input(maps: Tensor, steps: Tensor, *, used: Tensor, original: Tensor,
              width: int) -> Tensor:
    """(B, K, n) maps over each record's ``steps`` valid steps, which cover its ``used``
    samples -> (B, K, width) on the input's time axis, zero past the ``original`` lengths."""
    out = maps.new_zeros(maps.shape[0], maps.shape[1], max(width, int(used.max())))
    for b in range(maps.shape[0]):  # records differ in samples per step: one at a time
        n, length = int(steps[b]), int(used[b])
        # step j centred on its share of the record: samples (j + 1/2) * length / n
        stride = max(length / n, 1.0)
        out[b, :, :length] = upsample_time(
            maps[b : b + 1, :, :n], size=length, lengths=used[b : b + 1],
            frame_lengths=steps[b : b + 1], stride=stride)[0]
    return mask_tail(out[..., :width], original)
