"""The hybrid attention deep learning network (HADLN): a residual CNN branch and a BiLSTM
branch in parallel, fused on a common time axis and pooled by additive attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import (
    AdditiveAttention,
    ConvBlock,
    RecurrentHead,
    mask_tail,
    resolve_lengths,
    upsample_time,
)
from models.registry import register


@register("hadln")
class HybridAttentionNet(nn.Module):
    """Residual CNN branch || BiLSTM branch -> concatenation -> attention pooling -> classifier.

    The CNN branch is a stem conv then ``residual_depth`` blocks, each a stride-2 residual
    conv (1x1 stride-2 skip) and a stride-1 residual conv: it downsamples by
    ``f = 2 ** residual_depth``. The LSTM branch runs on the input average-pooled by the same
    f, which puts both on a common time axis of ``T // f`` steps (the CNN branch's one or two
    extra steps at the end, covering the incomplete last window, are cropped). The
    concatenated features are pooled over each record's valid steps by additive (tanh)
    attention.

    Args:
        n_classes: output classes.
        n_leads: input channels.
        cnn_channels: channels of the stem and of every residual block.
        stem_kernel_size: odd kernel length of the stem conv.
        residual_depth: number of downsampling residual blocks.
        residual_kernel_size: odd kernel length inside the residual blocks.
        lstm_units: hidden size per direction of the BiLSTM.
        attention_size: width of the attention layer.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        *,
        n_classes: int = 4,
        n_leads: int = 1,
        cnn_channels: int = 32,
        stem_kernel_size: int = 15,
        residual_depth: int = 4,
        residual_kernel_size: int = 7,
        lstm_units: int = 32,
        attention_size: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if residual_depth < 1:
            raise ValueError(f"residual_depth must be >= 1, got {residual_depth}")
        self.downsample = 2**residual_depth
        self.stem = ConvBlock(n_leads, cnn_channels, stem_kernel_size)
        self.residual_blocks = nn.ModuleList()
        for _ in range(residual_depth):
            self.residual_blocks.append(
                ConvBlock(cnn_channels, cnn_channels, residual_kernel_size, stride=2, residual=True)
            )
            self.residual_blocks.append(
                ConvBlock(cnn_channels, cnn_channels, residual_kernel_size, residual=True)
            )
        self.lstm = RecurrentHead(
            n_leads, cell="lstm", hidden_units=lstm_units, n_layers=1, bidirectional=True
        )
        fused = cnn_channels + self.lstm.output_size
        self.attention = AdditiveAttention(
            fused, attention_size, normalization="softmax", activation="tanh"
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fused, n_classes)

    def _attend(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled fused features (B, C + 2U) and attention weights (B, 1, T // f)."""
        x = mask_tail(x, lengths)
        cnn, cnn_lengths = self.stem(x, lengths)
        for block in self.residual_blocks:
            cnn, cnn_lengths = block(cnn, cnn_lengths)  # (B, C, T) -> (B, C, ~T / f)
        slow = F.avg_pool1d(x, self.downsample)  # (B, leads, T) -> (B, leads, T // f)
        slow_lengths = (lengths // self.downsample).clamp(min=1)
        rnn, _ = self.lstm(slow.transpose(1, 2), slow_lengths)  # (B, T // f, 2U)
        steps = slow.shape[-1]
        fused_lengths = torch.minimum(cnn_lengths, slow_lengths)
        fused = torch.cat([cnn[..., :steps], rnn.transpose(1, 2)], dim=1)  # (B, C + 2U, T // f)
        fused = mask_tail(fused, fused_lengths)
        return self.attention(fused, fused_lengths)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        pooled, _ = self._attend(x, resolve_lengths(x, lengths))
        return self.classifier(self.dropout(pooled))

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and the attention over time.

        Returns:
            ``logits`` (B, K); ``attention`` (B, 1, T): the softmax weights over the fused
            steps, linearly upsampled to the input length, zero beyond ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        pooled, weights = self._attend(x, lengths)
        return {
            "logits": self.classifier(self.dropout(pooled)),
            "attention": upsample_time(weights, x.shape[-1], lengths),
        }
