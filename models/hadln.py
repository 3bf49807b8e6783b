"""HADLN, the hybrid attention deep learning network (Jiang et al. 2021), as its reproduction
published it (Gritton and Thio 2021: report and ``hadln.ipynb``): a BiLSTM branch and a
pre-activation residual CNN branch read the signal in parallel, their outputs are
concatenated step by step and enter a sigmoid self-attention, and a batch-normalised linear
classifier reads the attended sequence. ``docs/fidelity.md`` lists every published detail
beside ours."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    RecurrentHead,
    choose,
    conv_lengths,
    mask_tail,
    resolve_lengths,
    time_mask,
    upsample_time,
)
from models.registry import register


class ValidConvBnRelu(nn.Module):
    """Conv1d without padding (its own bias, as published) -> BatchNorm -> ReLU: the
    published stems (``c1L``, ``c1RP``), each shortening the record by ``kernel_size - 1``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C_in, T) -> (B, C_out, T - k + 1), zero beyond the output lengths."""
        out_lengths = conv_lengths(lengths, kernel_size=self.conv.kernel_size[0])
        return mask_tail(F.relu(self.norm(self.conv(x))), out_lengths), out_lengths


class ValidConvPair(nn.Module):
    """The published ``c2RP``: Conv -> BN -> ReLU -> Dropout -> Conv, no padding, no skip."""

    def __init__(self, channels: int, kernel_size: int, *, dropout: float) -> None:
        super().__init__()
        self.first = ValidConvBnRelu(channels, channels, kernel_size)
        self.dropout = nn.Dropout(dropout)
        self.second = nn.Conv1d(channels, channels, kernel_size)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h, lengths = self.first(x, lengths)
        out_lengths = conv_lengths(lengths, kernel_size=self.second.kernel_size[0])
        return mask_tail(self.second(self.dropout(h)), out_lengths), out_lengths


class PreActBlock(nn.Module):
    """The published ``BasicBlock``: BN -> ReLU -> Conv(k, stride) -> BN -> ReLU -> Dropout ->
    Conv(k), ``k // 2`` padding, plus a skip: none (the first block), the input itself, or
    (channels or stride change) the published ``ShortcutBlock``, a 1x1 strided conv + BN.

    The tail beyond each record's length is zeroed after every activation, so the padding a
    convolution sees past a record's end is zeros whether it is batched or alone.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int,
                 dropout: float, skip: bool) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size, self.stride = kernel_size, stride
        self.norm1 = nn.BatchNorm1d(in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                               padding=kernel_size // 2)
        self.norm2 = nn.BatchNorm1d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.shortcut: nn.Module | None = None
        if skip and (in_channels != out_channels or stride != 1):
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, stride=stride),
                                          nn.BatchNorm1d(out_channels))
        elif skip:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C_in, T) -> (B, C_out, ~T / stride), zero beyond the output lengths."""
        out_lengths = conv_lengths(lengths, kernel_size=self.kernel_size, stride=self.stride,
                                   padding=self.kernel_size // 2)
        h = self.conv1(mask_tail(F.relu(self.norm1(x)), lengths))
        h = mask_tail(self.dropout(F.relu(self.norm2(h))), out_lengths)
        h = self.conv2(h)
        if self.shortcut is not None:
            h = h + self.shortcut(x)  # 1x1 stride-s conv: the same output length
        return mask_tail(h, out_lengths), out_lengths


def bin_average(x: Tensor, *, lengths: Tensor, out_lengths: Tensor, out_steps: int) -> Tensor:
    """Average (B, T, C) steps into ``out_steps`` bins per record: record b's first
    ``lengths[b]`` steps fall into ``out_lengths[b]`` bins as adaptive average pooling splits
    them (bin i spans steps floor(i L / L') to ceil((i + 1) L / L')); bins beyond
    ``out_lengths`` are zero. Returns (B, out_steps, C)."""
    steps = torch.arange(x.shape[1], device=x.device)[None, None, :]  # (1, 1, T)
    bins = torch.arange(out_steps, device=x.device)[None, :, None]  # (1, T', 1)
    n_in, n_out = lengths[:, None, None], out_lengths[:, None, None]
    start = torch.div(bins * n_in, n_out, rounding_mode="floor")
    end = -torch.div(-(bins + 1) * n_in, n_out, rounding_mode="floor")  # ceil
    member = (steps >= start) & (steps < end) & (bins < n_out)  # (B, T', T)
    weights = member.to(x.dtype)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1.0)
    return weights @ x


class SigmoidSelfAttention(nn.Module):
    """The report's self-attention (Gritton and Thio, section 5.4): for each step i of the
    sequence V, scores ``s_ij = (Q v_i) . (K v_j)`` with learned query and key matrices,
    weights ``w_ij = sigmoid(s_ij)`` (not a softmax: each weight is its own gate in (0, 1)),
    and ``v*_i = sum_j w_ij (W_v v_j)`` over the record's valid steps j.

    Args:
        channels: width d of each step's feature vector.
        attention_size: width of the query and key projections.
    """

    def __init__(self, channels: int, attention_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(channels, attention_size)
        self.key = nn.Linear(channels, attention_size)
        self.value = nn.Linear(channels, channels)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, d) -> attended (B, T, d) and weights (B, T, T), zero at invalid steps."""
        scores = self.query(x) @ self.key(x).transpose(1, 2)  # (B, T, T): query i, key j
        valid = time_mask(lengths, x.shape[1])  # (B, 1, T)
        pairs = valid & valid.transpose(1, 2)  # (B, T, T): both steps real
        weights = torch.sigmoid(scores).masked_fill(~pairs, 0.0)
        return weights @ self.value(x), weights


def _flatten_readout(h: Tensor, lengths: Tensor) -> Tensor:
    del lengths  # every step of the fixed-length sequence is a feature of its own
    return h.flatten(1)  # (B, d, T') -> (B, d * T')


def _mean_readout(h: Tensor, lengths: Tensor) -> Tensor:
    return h.sum(-1) / lengths[:, None].to(h.dtype)  # (B, d, T') -> (B, d), tail is zero


_READOUTS: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = MappingProxyType(
    {"flatten": _flatten_readout, "mean": _mean_readout})


@register("hadln")
class HybridAttentionNet(nn.Module):
    """BiLSTM branch || residual CNN branch -> step-wise concatenation -> sigmoid
    self-attention -> BN -> ReLU -> linear classifier; the defaults are the published model.

    Recurrent branch (``c1L``, ``L``): a ``stem_kernel_size`` conv (no padding) to
    ``stem_channels`` with BN and ReLU, then a one-layer BiLSTM of ``lstm_units`` per
    direction over its steps. CNN branch: the same stem (``c1RP``), a second unpadded pair of
    convs (``c2RP``), then ``len(stage_channels)`` stages of ``blocks_per_stage``
    pre-activation residual blocks (kernel ``kernel_size``; every stage after the first
    halves the steps in its first block, whose skip is a 1x1 strided conv + BN; the very first
    block has no skip). The BiLSTM outputs are averaged to the CNN's steps (`bin_average`),
    concatenated with the CNN features at each step and attended (`SigmoidSelfAttention`);
    the readout is the flattened sequence (``flatten``, published: a fixed-length input of
    ``input_samples``) or its mean over the valid steps (``mean``, any length), then
    BatchNorm, ReLU and a linear layer give the logits.

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        stem_channels: channels of the stems of both branches and of ``c2RP``.
        stem_kernel_size: kernel of the unpadded stem convolutions.
        stage_channels: channels of each residual stage.
        blocks_per_stage: residual blocks per stage.
        kernel_size: odd kernel of the residual blocks (17: the reproduction's "from the
            original 16 to 17", report section 6.4).
        dropout: dropout inside ``c2RP`` and inside every residual block.
        lstm_units: BiLSTM hidden size per direction.
        lstm_stride: average-pooling factor of the recurrent branch's input (1: full
            resolution, as published; a larger stride for 30-s records).
        attention_size: width of the attention's queries and keys (None: the concatenated
            width; the report gives none).
        readout: ``"flatten"`` (published) or ``"mean"`` (records of any length).
        input_samples: the input length the ``flatten`` readout is sized for (187: the
            Kaggle MIT-BIH beats the reproduction classifies); ignored by ``mean``.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        stem_channels: int = 32,
        stem_kernel_size: int = 16,
        stage_channels: Sequence[int] = (32, 64, 128, 256),
        blocks_per_stage: int = 4,
        kernel_size: int = 17,
        dropout: float = 0.3,
        lstm_units: int = 172,
        lstm_stride: int = 1,
        attention_size: int | None = None,
        readout: str = "flatten",
        input_samples: int = 187,
    ) -> None:
        super().__init__()
        if not stage_channels or blocks_per_stage < 1:
            raise ValueError("need at least one residual stage of at least one block, got "
                             f"{list(stage_channels)} x {blocks_per_stage}")
        if lstm_stride < 1:
            raise ValueError(f"lstm_stride must be >= 1, got {lstm_stride}")
        self._readout = choose(_READOUTS, readout, what="HADLN readout")
        self.readout_name, self.input_samples = readout, input_samples
        self.lstm_stride = lstm_stride
        self.lstm_stem = ValidConvBnRelu(n_leads, stem_channels, stem_kernel_size)
        self.lstm = RecurrentHead(stem_channels, cell="lstm", hidden_units=lstm_units,
                                  n_layers=1, bidirectional=True)
        self.cnn_stem = ValidConvBnRelu(n_leads, stem_channels, stem_kernel_size)
        self.cnn_pair = ValidConvPair(stem_channels, stem_kernel_size, dropout=dropout)
        self.blocks = nn.ModuleList()
        in_channels = stem_channels
        for stage, channels in enumerate(stage_channels):
            for block in range(blocks_per_stage):
                first = block == 0
                self.blocks.append(PreActBlock(
                    in_channels, channels, kernel_size, stride=2 if first and stage else 1,
                    dropout=dropout, skip=not (first and stage == 0)))
                in_channels = channels
        fused = stage_channels[-1] + self.lstm.output_size
        self.attention = SigmoidSelfAttention(fused, attention_size or fused)
        features = fused * self._cnn_steps(input_samples) if readout == "flatten" else fused
        self.norm = nn.BatchNorm1d(features)
        self.classifier = nn.Linear(features, n_classes)

    @property
    def fixed_input_samples(self) -> int | None:
        """The one input length the model reads (the flatten readout), None for any length."""
        return self.input_samples if self.readout_name == "flatten" else None

    def _cnn_steps(self, samples: int) -> int:
        """Steps of the CNN branch's output for an input of ``samples`` (plain integers, so
        a model built on the meta device sizes its readout too)."""
        for conv in self._unpadded_convs():
            samples = max(samples - conv.kernel_size[0] + 1, 1)
        for block in self.blocks:
            samples = max((samples - 1) // block.stride + 1, 1)  # k // 2 padding, odd k
        return samples

    def _unpadded_convs(self) -> tuple[nn.Conv1d, ...]:
        """The CNN branch's convolutions without padding, before its strided blocks."""
        return (self.cnn_stem.conv, self.cnn_pair.first.conv, self.cnn_pair.second)

    def _time_grid(self) -> tuple[int, float]:
        """(stride, offset) of the CNN branch's steps on the input's time axis: the three
        unpadded convolutions shift step 0 to the centre of their kernels, and each strided
        block (k // 2 padding, odd k) keeps step j on its input's step stride * j."""
        offset = sum((conv.kernel_size[0] - 1) / 2 for conv in self._unpadded_convs())
        return math.prod(block.stride for block in self.blocks), offset

    def _recurrent_branch(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, leads, T) -> BiLSTM outputs (B, T_l, 2U) and their lengths (B,)."""
        if self.lstm_stride > 1:
            x = F.avg_pool1d(x, self.lstm_stride)  # (B, leads, T) -> (B, leads, T // s)
            lengths = (lengths // self.lstm_stride).clamp(min=1)
        h, lengths = self.lstm_stem(x, lengths)  # (B, stem, T_l)
        outputs, _ = self.lstm(h.transpose(1, 2), lengths)  # (B, T_l, 2U), zero in the tail
        return outputs, lengths

    def _cnn_branch(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, leads, T) -> (B, C, T_r) and the lengths (B,)."""
        h, lengths = self.cnn_stem(x, lengths)
        h, lengths = self.cnn_pair(h, lengths)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        return h, lengths

    def _attended(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Attended fused sequence (B, d, T_r), attention weights (B, T_r, T_r), lengths."""
        if self.readout_name == "flatten" and x.shape[-1] != self.input_samples:
            raise ValueError(
                f"HADLN's flatten readout (published) reads {self.input_samples}-sample inputs "
                f"(input_samples), got {x.shape[-1]}; for records of other lengths use "
                "readout='mean' (e.g. --set model/readout='\"mean\"', and lstm_stride for "
                "long records)")
        x = mask_tail(x, lengths)
        rnn, rnn_lengths = self._recurrent_branch(x, lengths)
        cnn, cnn_lengths = self._cnn_branch(x, lengths)
        aligned = bin_average(rnn, lengths=rnn_lengths, out_lengths=cnn_lengths,
                              out_steps=cnn.shape[-1])  # (B, T_r, 2U)
        fused = torch.cat([cnn.transpose(1, 2), aligned], dim=-1)  # (B, T_r, C + 2U)
        attended, weights = self.attention(fused, cnn_lengths)
        return attended.transpose(1, 2), weights, cnn_lengths

    def _logits(self, attended: Tensor, lengths: Tensor) -> Tensor:
        return self.classifier(F.relu(self.norm(self._readout(attended, lengths))))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        lengths = resolve_lengths(x, lengths)
        attended, _, steps = self._attended(x, lengths)
        return self._logits(attended, steps)

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and the attention each step receives.

        Returns:
            ``logits`` (B, K); ``attention`` (B, 1, T): the sigmoid weights on each CNN step
            averaged over the steps attending to it, linearly upsampled to the input length,
            zero beyond ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        attended, weights, steps = self._attended(x, lengths)
        received = weights.sum(1) / steps[:, None].to(weights.dtype)  # (B, T_r)
        stride, offset = self._time_grid()
        return {
            "logits": self._logits(attended, steps),
            "attention": upsample_time(received[:, None, :], size=x.shape[-1], lengths=lengths,
                                       frame_lengths=steps, stride=stride, offset=offset),
        }
