"""The ConvLSTM family: the CNN trunk followed by a recurrent (LSTM/GRU) head.

The trunk is the same `CnnTrunk` as the ``cnn`` family's, under the same attribute name, so a
CNN pre-trained with a GMP head loads into it (`ConvLSTM.load_cnn_trunk`), can be frozen
(``freeze_cnn``) or trained with a lower learning rate (`ConvLSTM.parameter_groups`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from models.cnn import TRUNK_PREFIX, build_trunk
from models.layers import (
    GlobalPool,
    RecurrentHead,
    choose,
    gather_steps,
    resolve_lengths,
    upsample_time,
)
from models.registry import register


def _last_step(outputs: Tensor, final: Tensor, lengths: Tensor) -> Tensor:
    # The final state at each record's last real step (packed sequences): (B, H * D).
    del outputs, lengths
    return final


def _centre_step(outputs: Tensor, final: Tensor, lengths: Tensor) -> Tensor:
    # (B, T, H * D) -> (B, H * D) at the centre of each record's valid steps.
    del final
    return gather_steps(outputs, (lengths - 1) // 2)


class _Readout(NamedTuple):
    select: Callable[[Tensor, Tensor, Tensor], Tensor]
    with_pool: bool  # concatenate a global pooling of the CNN features


_READOUTS: Mapping[str, _Readout] = MappingProxyType(
    {
        "last": _Readout(_last_step, with_pool=False),
        "centre": _Readout(_centre_step, with_pool=False),
        "last_plus_pool": _Readout(_last_step, with_pool=True),
    }
)


TRUNK_ARGUMENTS: tuple[str, ...] = (
    "n_classes",
    "n_leads",
    "depth",
    "channels",
    "kernel_size",
    "pool_every",
    "dropout_min",
    "dropout_max",
    "residual",
    "conv_init",
)
"""ConvLSTM arguments that describe its CNN trunk (and so the CNN to pre-train for it)."""


def pretraining_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cnn`` config (GMP head) whose trunk fits a ``convlstm`` config.

    The thesis' "pretrained" ConvLSTMs first train this CNN, then load its trunk with
    `ConvLSTM.load_cnn_trunk` and train on with a lower CNN learning rate.
    """
    trunk = {key: value for key, value in config.items() if key in TRUNK_ARGUMENTS}
    return {"name": "cnn", **trunk, "pooling": "gmp"}


@register("convlstm")
class ConvLSTM(nn.Module):
    """CNN trunk -> LSTM/GRU over the downsampled time axis -> linear classifier.

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
        cell: ``"lstm"`` or ``"gru"``.
        n_rnn_layers: stacked recurrent layers.
        hidden_units: recurrent hidden size per direction.
        bidirectional: add a backward direction.
        rnn_dropout: dropout between stacked recurrent layers.
        forget_bias: an LSTM's initial forget-gate bias (None: torch's random init; must be
            None for a GRU). See `models.layers.RecurrentHead`.
        chrono_steps: chrono initialisation of an LSTM's gate biases for dependencies of up
            to this many recurrent steps (None: off). See `models.layers.RecurrentHead`.
        readout: what the classifier sees: ``"last"`` (state at the last real step; with a
            backward direction, its state at step 0), ``"centre"`` (output at the centre of
            the valid steps) or ``"last_plus_pool"`` (last, concatenated with a global pooling
            of the CNN features).
        pooling: global pooling of the CNN features for ``"last_plus_pool"`` (otherwise unused).
        lse_temperature: LSE sharpness for ``pooling="lse"``.
        freeze_cnn: keep the trunk fixed: no gradients, BatchNorm and dropout in eval mode.
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
        cell: str = "lstm",
        n_rnn_layers: int = 1,
        hidden_units: int = 64,
        bidirectional: bool = False,
        rnn_dropout: float = 0.0,
        forget_bias: float | None = None,
        chrono_steps: float | None = None,
        readout: str = "last",
        pooling: str = "gmp",
        lse_temperature: float = 1.0,
        freeze_cnn: bool = False,
    ) -> None:
        super().__init__()
        if n_rnn_layers < 1 or hidden_units < 1:
            raise ValueError(
                f"need n_rnn_layers >= 1 and hidden_units >= 1, got {n_rnn_layers}, {hidden_units}"
            )
        self._readout = choose(_READOUTS, readout, what="readout")
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
        self.rnn = RecurrentHead(
            self.trunk.out_channels,
            cell=cell,
            hidden_units=hidden_units,
            n_layers=n_rnn_layers,
            bidirectional=bidirectional,
            dropout=rnn_dropout,
            forget_bias=forget_bias,
            chrono_steps=chrono_steps,
        )
        self.pool = GlobalPool(pooling, temperature=lse_temperature)
        pooled_size = self.trunk.out_channels if self._readout.with_pool else 0
        self.classifier = nn.Linear(self.rnn.output_size + pooled_size, n_classes)
        self.freeze_cnn = freeze_cnn
        if freeze_cnn:
            self.trunk.requires_grad_(False)
            self.trunk.eval()

    def train(self, mode: bool = True) -> ConvLSTM:
        """Like `nn.Module.train`, but a frozen trunk stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        if self.freeze_cnn:
            self.trunk.eval()
        return self

    def _sequence(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Trunk then RNN: CNN features (B, C, T'), their lengths, RNN outputs (B, T', H * D)
        and final states (B, H * D)."""
        features, steps = self.trunk(x, lengths)[-1]
        outputs, final = self.rnn(features.transpose(1, 2), steps)  # (B, C, T') -> (B, T', C)
        return features, steps, outputs, final

    def _with_pool(self, vectors: Tensor, features: Tensor, steps: Tensor) -> Tensor:
        """Append the pooled CNN features (B, C) to vectors (B, H) or (B, T', H) if the readout
        asks for them."""
        if not self._readout.with_pool:
            return vectors
        pooled = self.pool(features, steps)
        if vectors.dim() == 3:
            pooled = pooled[:, None, :].expand(-1, vectors.shape[1], -1)
        return torch.cat([vectors, pooled], dim=-1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, leads, T) -> logits (B, n_classes); ``lengths`` (B,) masks the padded tail."""
        features, steps, outputs, final = self._sequence(x, resolve_lengths(x, lengths))
        vector = self._readout.select(outputs, final, steps)
        return self.classifier(self._with_pool(vector, features, steps))

    def explain(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Logits, per-step decisions and the first recurrent layer's states over time.

        Returns:
            ``logits`` (B, K); ``decision_over_time`` (B, K, T): the classifier applied to the
            RNN output of every step (with ``last_plus_pool`` concatenated with the pooled CNN
            features), unnormalized; for a unidirectional RNN with the ``last`` readout it
            equals the logits at each record's last step. The first layer's states (B, H * D,
            T), recomputed from its weights: for an LSTM ``lstm_hidden``, ``lstm_cell``,
            ``lstm_input_gate``, ``lstm_forget_gate``, ``lstm_output_gate``,
            ``lstm_candidate``; for a GRU ``gru_hidden``, ``gru_reset_gate``,
            ``gru_update_gate``, ``gru_candidate``. Time maps are linearly upsampled from the
            trunk's resolution, each step on the samples it pools (`upsample_time`), and zero
            beyond ``lengths``.
        """
        lengths = resolve_lengths(x, lengths)
        size = x.shape[-1]
        features, steps, outputs, final = self._sequence(x, lengths)
        vector = self._readout.select(outputs, final, steps)
        per_step = self.classifier(self._with_pool(outputs, features, steps))  # (B, T', K)
        on_input = functools.partial(upsample_time, size=size, lengths=lengths,
                                     frame_lengths=steps, stride=self.trunk.strides[-1])
        explanation = {
            "logits": self.classifier(self._with_pool(vector, features, steps)),
            "decision_over_time": on_input(per_step.transpose(1, 2)),
        }
        states = self.rnn.first_layer_states(features.transpose(1, 2), steps)
        for name, state in states.items():  # (B, T', H * D) -> (B, H * D, T)
            explanation[f"{self.rnn.cell}_{name}"] = on_input(state.transpose(1, 2))
        return explanation

    def load_cnn_trunk(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load the trunk from a ``cnn`` (or any model with a ``trunk.*``) state dict.

        The CNN's trunk hyperparameters (depth or channels, kernel, residual) must match;
        its head is ignored.

        Raises:
            ValueError: if the state dict holds no trunk.
            RuntimeError: from `load_state_dict` when names or shapes differ.
        """
        trunk_state = {
            key.removeprefix(TRUNK_PREFIX): value
            for key, value in state_dict.items()
            if key.startswith(TRUNK_PREFIX)
        }
        if not trunk_state:
            raise ValueError(f"state dict has no {TRUNK_PREFIX!r} entries to load")
        self.trunk.load_state_dict(trunk_state)

    def parameter_groups(
        self, cnn_lr_scale: float, *, base_lr: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups with a scaled learning rate for the CNN trunk.

        Args:
            cnn_lr_scale: trunk learning rate relative to the rest (e.g. 0.1 for a pretrained
                trunk).
            base_lr: if given, each group gets ``lr = base_lr * lr_scale``; otherwise the
                trainer reads ``group["lr_scale"]``.

        Returns:
            ``[{"name": "cnn", "params": [...], "lr_scale": cnn_lr_scale},
            {"name": "head", "params": [...], "lr_scale": 1.0}]``, leaving out frozen
            parameters and empty groups.
        """
        trunk_ids = {id(p) for p in self.trunk.parameters()}
        groups = [
            {
                "name": "cnn",
                "params": [p for p in self.trunk.parameters() if p.requires_grad],
                "lr_scale": float(cnn_lr_scale),
            },
            {
                "name": "head",
                "params": [
                    p for p in self.parameters() if p.requires_grad and id(p) not in trunk_ids
                ],
                "lr_scale": 1.0,
            },
        ]
        groups = [group for group in groups if group["params"]]
        if base_lr is not None:
            for group in groups:
                group["lr"] = base_lr * group["lr_scale"]
        return groups
