"""The attention-gated CNN family (Jetley et al. 2018 "Learn to pay attention"; Schlemper et
al. 2019 attention-gated networks), on the shared CNN trunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor, nn

from models.cnn import build_trunk
from models.layers import AdditiveAttention, GlobalPool, choose, resolve_lengths, upsample_time
from models.registry import register


class ConcatClassifier(nn.Module):
    """One linear classifier on the concatenation of every path's pooled vector."""

    def __init__(self, path_sizes: Sequence[int], n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(sum(path_sizes), n_classes)

    def forward(self, pooled: list[Tensor]) -> Tensor:
        return self.linear(torch.cat(pooled, dim=-1))  # n_paths x (B, C_i) -> (B, K)


class MeanVoteClassifier(nn.Module):
    """An independent linear classifier per path; their logits are averaged."""

    def __init__(self, path_sizes: Sequence[int], n_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(size, n_classes) for size in path_sizes)

    def forward(self, pooled: list[Tensor]) -> Tensor:
        logits = [head(vector) for head, vector in zip(self.heads, pooled, strict=True)]
        return torch.stack(logits).mean(0)  # n_paths x (B, K) -> (B, K)


_AGGREGATIONS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"concat": ConcatClassifier, "mean_vote": MeanVoteClassifier}
)


@register("attention_gate")
class AttentionGatedCNN(nn.Module):
    """CNN trunk with attention gates on chosen layers; the gated paths feed the classifier.

    Each gate scores the local features l_t of its layer against the global context g (the
    last layer's features, globally pooled) with ``c_t = <u, relu(W_l l_t + W_g g)>``,
    normalizes the scores over the record's valid steps and pools the layer's features with
    them (one vector per path).

    Args:
        n_classes: output classes (the data set's count: required, no data set is assumed).
        n_leads: input leads (the data's lead count: required).
        depth: CNN preset depth (4, 7, 15, 17); see `models.cnn.build_trunk`.
        channels: explicit CNN channels per layer instead of ``depth``.
        kernel_size: odd CNN kernel length.
        pool_every: CNN average pooling after every this many layers.
        dropout_min: CNN dropout after the first layer.
        dropout_max: CNN dropout after the last layer.
        residual: CNN identity connections.
        conv_init: initialisation of the CNN convolution weights, ``"pytorch"`` (torch's
            default), ``"kaiming"`` (He normal for ReLU) or ``"delta_orthogonal"``
            (orthogonal centre tap, Xiao et al. 2018).
        gate_layers: 0-based indices of the gated layers, each < depth, no repeats.
        attention_size: width of each gate's compatibility layer.
        gate_normalization: ``"softmax"`` over time, or ``"sigmoid"`` per step.
        aggregation: ``"concat"`` (one classifier on the concatenated paths) or
            ``"mean_vote"`` (one classifier per path, logits averaged).
        pooling: global pooling that turns the last layer into the context g.
        lse_temperature: LSE sharpness for ``pooling="lse"``.
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
        gate_layers: Sequence[int] = (3, 5),
        attention_size: int = 32,
        gate_normalization: str = "softmax",
        aggregation: str = "concat",
        pooling: str = "gap",
        lse_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        aggregator = choose(_AGGREGATIONS, aggregation, what="aggregation")
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
        n_layers = self.trunk.depth
        self.gate_layers = [int(layer) for layer in gate_layers]
        if not self.gate_layers:
            raise ValueError("gate_layers must name at least one layer")
        out_of_range = [layer for layer in self.gate_layers if not 0 <= layer < n_layers]
        if out_of_range:
            raise ValueError(
                f"gate_layers {out_of_range} out of range: each gate layer must be a 0-based "
                f"layer index < depth {n_layers}"
            )
        if len(set(self.gate_layers)) != len(self.gate_layers):
            raise ValueError(f"gate_layers has repeats: {self.gate_layers}")
        self.pool = GlobalPool(pooling, temperature=lse_temperature)
        path_sizes = [self.trunk.channels[layer] for layer in self.gate_layers]
        self.gates = nn.ModuleList(
            AdditiveAttention(
                size,
                attention_size,
                context_channels=self.trunk.out_channels,
                normalization=gate_normalization,
                activation="relu",
            )
            for size in path_sizes
        )
        self.classifier = aggregator(path_sizes, n_classes)

    def _gated_paths(
        self, x: Tensor, lengths: Tensor
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per gate: the pooled path vector (B, C_i), the gate weights (B, 1, T_i) and the
        layer's valid steps (B,)."""
        outputs = self.trunk(x, lengths)
        context = self.pool(*outputs[-1])  # (B, C_last, T') -> (B, C_last)
        pooled, weights, steps = [], [], []
        for gate, layer in zip(self.gates, self.gate_layers, strict=True):
            vector, gate_weights = gate(*outputs[layer], context)
            pooled.append(vector)
            weights.append(gate_weights)
            steps.append(outputs[layer][1])
        return pooled, weights, steps

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        pooled, _, _ = self._gated_paths(x, resolve_lengths(x, lengths))
        return self.classifier(pooled)

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and the gates' attention maps.

        Returns:
            ``logits`` (B, K); ``gate_maps`` (B, n_gates, T) in ``gate_layers`` order: each
            gate's weights (softmax: summing to one over its layer's valid steps; sigmoid:
            gate values in (0, 1)), linearly upsampled to the input length with each step on
            the samples it pools (`upsample_time`), zero beyond
            ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        pooled, weights, steps = self._gated_paths(x, lengths)
        strides = [self.trunk.strides[layer] for layer in self.gate_layers]
        maps = [  # (B, 1, T) each
            upsample_time(w, size=x.shape[-1], lengths=lengths, frame_lengths=n, stride=stride)
            for w, n, stride in zip(weights, steps, strides, strict=True)
        ]
        return {"logits": self.classifier(pooled), "gate_maps": torch.cat(maps, dim=1)}
