"""The hybrid attention deep learning network (HADLN) as in its reproduction: a residual CNN
branch and a BiLSTM branch in parallel, attention inside the recurrent branch, the two branch
vectors fused before the classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    AdditiveAttention,
    ConvBlock,
    GlobalPool,
    RecurrentHead,
    mask_tail,
    resolve_lengths,
    upsample_time,
)
from models.registry import register


@register("hadln")
class HybridAttentionNet(nn.Module):
    """Residual CNN branch || (BiLSTM -> attention) branch -> concatenation -> classifier.

    The CNN branch is a stem conv then ``residual_depth`` blocks, each a stride-2 residual
    conv (1x1 stride-2 skip) and a stride-1 residual conv, globally average-pooled over each
    record's valid steps. The recurrent branch reads the input at full resolution
    (``lstm_stride=1``; a larger stride average-pools the input first, for long records such
    as 30-s rhythm strips) with a BiLSTM whose outputs are pooled by additive (tanh)
    attention. The CNN vector (C) and the attended BiLSTM vector (2U) are concatenated and
    classified by a linear layer after dropout.

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        cnn_channels: channels of the stem and of every residual block.
        stem_kernel_size: odd kernel length of the stem conv.
        residual_depth: number of downsampling residual blocks.
        residual_kernel_size: odd kernel length inside the residual blocks.
        lstm_units: hidden size per direction of the BiLSTM.
        lstm_stride: average-pooling factor of the BiLSTM's input (1: full resolution).
        attention_size: width of the attention layer.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        n_leads: int,
        cnn_channels: int = 32,
        stem_kernel_size: int = 15,
        residual_depth: int = 4,
        residual_kernel_size: int = 7,
        lstm_units: int = 32,
        lstm_stride: int = 1,
        attention_size: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if residual_depth < 1:
            raise ValueError(f"residual_depth must be >= 1, got {residual_depth}")
        if lstm_stride < 1:
            raise ValueError(f"lstm_stride must be >= 1, got {lstm_stride}")
        self.lstm_stride = lstm_stride
        self.stem = ConvBlock(n_leads, cnn_channels, stem_kernel_size)
        self.residual_blocks = nn.ModuleList()
        for _ in range(residual_depth):
            self.residual_blocks.append(
                ConvBlock(cnn_channels, cnn_channels, residual_kernel_size, stride=2, residual=True)
            )
            self.residual_blocks.append(
                ConvBlock(cnn_channels, cnn_channels, residual_kernel_size, residual=True)
            )
        self.cnn_pool = GlobalPool("gap")
        self.lstm = RecurrentHead(
            n_leads, cell="lstm", hidden_units=lstm_units, n_layers=1, bidirectional=True
        )
        self.attention = AdditiveAttention(
            self.lstm.output_size, attention_size, normalization="softmax", activation="tanh"
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cnn_channels + self.lstm.output_size, n_classes)

    def _cnn_branch(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, leads, T) -> (B, C): residual trunk, average over the valid steps."""
        h, h_lengths = self.stem(x, lengths)
        for block in self.residual_blocks:
            h, h_lengths = block(h, h_lengths)  # (B, C, T) -> (B, C, ~T / 2**depth)
        return self.cnn_pool(h, h_lengths)

    def _recurrent_branch(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, leads, T) -> attended BiLSTM vector (B, 2U) and weights (B, 1, T // stride)."""
        if self.lstm_stride > 1:
            x = F.avg_pool1d(x, self.lstm_stride)  # (B, leads, T) -> (B, leads, T // s)
            lengths = (lengths // self.lstm_stride).clamp(min=1)
        outputs, _ = self.lstm(x.transpose(1, 2), lengths)  # (B, T', 2U)
        return self.attention(mask_tail(outputs.transpose(1, 2), lengths), lengths)

    def _features(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = mask_tail(x, lengths)
        rnn, weights = self._recurrent_branch(x, lengths)
        fused = torch.cat([self._cnn_branch(x, lengths), rnn], dim=1)  # (B, C + 2U)
        return fused, weights

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        fused, _ = self._features(x, resolve_lengths(x, lengths))
        return self.classifier(self.dropout(fused))

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and the recurrent branch's attention over time.

        Returns:
            ``logits`` (B, K); ``attention`` (B, 1, T): the softmax weights over the BiLSTM
            steps, linearly upsampled to the input length, zero beyond ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        fused, weights = self._features(x, lengths)
        return {
            "logits": self.classifier(self.dropout(fused)),
            "attention": upsample_time(
                weights, size=x.shape[-1], lengths=lengths, stride=self.lstm_stride,
                frame_lengths=(lengths // self.lstm_stride).clamp(min=1)),
        }
