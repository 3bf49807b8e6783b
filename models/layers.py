"""Building blocks shared by every model family: masks, conv blocks, pooling, attention, RNNs.

Variable-length batches are zero-padded at the end and come with ``lengths`` (B,), the number
of real samples per record. Every block here keeps one invariant: a feature map it returns is
zero beyond each record's (downsampled) length. A convolution therefore sees the same zeros
after a record's end whether the record is alone (conv padding) or padded in a batch (masked
tail), which is what makes logits independent of the padding in eval mode. Pooling over time
and attention normalize over valid positions only.

BatchNorm statistics in training mode are computed over all positions, padded ones included;
eval mode uses running statistics and is exactly padding invariant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

T = TypeVar("T")


def choose(options: Mapping[str, T], key: str, *, what: str) -> T:
    """Look up a config string (e.g. a pooling name) in a table of implementations.

    Raises:
        ValueError: for an unknown key; the message names ``what`` and lists the options.
    """
    try:
        return options[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {key!r}; choose one of {sorted(options)}") from None


# ---------------------------------------------------------------------------------------------
# lengths and masks


def full_lengths(x: Tensor) -> Tensor:
    """Lengths (B,) saying every record fills the whole time axis of ``x`` (B, C, T)."""
    return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)


def resolve_lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    """``lengths`` as a long tensor on ``x``'s device, or full lengths when None.

    Raises:
        ValueError: if the shape does not match the batch or a length is outside [1, T].
    """
    if lengths is None:
        return full_lengths(x)
    lengths = torch.as_tensor(lengths, device=x.device).long()
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > x.shape[-1]).any()):
        raise ValueError(f"lengths must lie in [1, {x.shape[-1]}], got {lengths.tolist()}")
    return lengths


def time_mask(lengths: Tensor, size: int) -> Tensor:
    """Boolean mask (B, 1, size): True at valid positions, False in the padded tail."""
    steps = torch.arange(size, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1)


def mask_tail(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero x (B, C, T) or (B, C, F, T) beyond each record's length along the last axis
    (keeps the dtype; NaN in the tail too)."""
    mask = time_mask(lengths, x.shape[-1])  # (B, 1, T)
    if x.dim() > 3:  # (B, 1, T) -> (B, 1, ..., 1, T)
        mask = mask.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
    return x.masked_fill(~mask, 0.0)


def conv_lengths(lengths: Tensor, *, kernel_size: int, stride: int = 1, padding: int = 0) -> Tensor:
    """Valid output lengths of a convolution or pooling layer (at least 1)."""
    return ((lengths + 2 * padding - kernel_size) // stride + 1).clamp(min=1)


def upsample_time(
    x: Tensor,
    *,
    size: int,
    lengths: Tensor,
    frame_lengths: Tensor,
    stride: float,
    offset: float | Tensor | None = None,
) -> Tensor:
    """Put a map on frames (B, C, T') onto the input's time axis (B, C, size), zero beyond
    ``lengths``.

    Frame j of a record is centred on input sample ``offset + stride * j``: a feature map
    after average poolings that divide time by ``stride`` in all has ``offset = (stride - 1)
    / 2`` (the default), an STFT frame of a W-sample window ``(W - 1) / 2``. Sample i reads
    the map at frame position ``(i - offset) / stride`` by linear interpolation, clamped to
    the record's own valid frames ``[0, frame_lengths - 1]``.

    The position depends only on ``stride``, never on how many frames the padded batch has:
    stretching T' frames over ``size`` samples (``F.interpolate(size=...)``) moves a frame by
    up to one stride at the record's end, since pooling drops the last ``T mod stride``
    samples, and by more where a record is shorter than its batch.

    Args:
        x: (B, C, T') map on the frames.
        size: input samples T of the batch.
        lengths: (B,) real input samples per record.
        frame_lengths: (B,) valid frames per record (the model's own output lengths).
        stride: input samples per frame (>= 1).
        offset: input sample on which frame 0 is centred: one number, or one per record and
            channel (B, C); None for average pooling's.
    """
    if not stride >= 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    offset = (stride - 1) / 2 if offset is None else offset
    offset = torch.as_tensor(offset, dtype=torch.float64, device=x.device)
    offset = offset.reshape(1, 1, 1) if offset.dim() == 0 else offset[..., None]  # (B, C, 1)
    samples = torch.arange(size, device=x.device, dtype=torch.float64)
    position = ((samples - offset) / stride).clamp(min=0)  # (B or 1, C or 1, size) in frames
    last = (frame_lengths.to(x.device).clamp(min=1) - 1)[:, None, None]  # (B, 1, 1)
    position = torch.minimum(position, last.to(position.dtype)).expand(*x.shape[:2], size)
    left = position.floor().long()
    right = torch.minimum(left + 1, last)
    weight = (position - left.to(position.dtype)).to(x.dtype)  # (B, C, size)
    x_left, x_right = x.gather(-1, left), x.gather(-1, right)
    return mask_tail(x_left + weight * (x_right - x_left), lengths)


def gather_steps(x: Tensor, steps: Tensor) -> Tensor:
    """Pick one time step per record: (B, T, C) and steps (B,) -> (B, C)."""
    return x[torch.arange(x.shape[0], device=x.device), steps]


# ---------------------------------------------------------------------------------------------
# convolutional blocks


class ConvBlock(nn.Module):
    """Conv1d -> BatchNorm -> (+ skip) -> ReLU, zero beyond each record's length.

    With ``residual=True`` the block input is added before the ReLU (the thesis' identity
    connections): through a 1x1 convolution when channels or stride change, cropped to the
    convolution's output length when the two differ.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel length; padding ``kernel_size // 2`` keeps the length at stride 1.
        stride: convolution stride (downsampling).
        residual: add the skip connection.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.kernel_size = kernel_size
        self.stride = stride
        # No conv bias: BatchNorm's shift replaces it.
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        )
        self.norm = nn.BatchNorm1d(out_channels)
        self.skip: nn.Module | None = None
        if residual:
            self.skip = (
                nn.Identity()
                if in_channels == out_channels and stride == 1
                else nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False)
            )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C_in, T) -> (B, C_out, T'), with the output lengths (B,)."""
        y = self.norm(self.conv(x))
        if self.skip is not None:
            skip = self.skip(x)  # (B, C_out, T'') with T'' >= T'
            y = y + skip[..., : y.shape[-1]]
        out_lengths = conv_lengths(
            lengths, kernel_size=self.kernel_size, stride=self.stride, padding=self.kernel_size // 2
        )
        return mask_tail(F.relu(y), out_lengths), out_lengths


def _pytorch_init(weight: Tensor) -> None:
    del weight  # keep torch's own kaiming-uniform with a = sqrt(5): std 1 / sqrt(3 fan_in)


def _kaiming_init(weight: Tensor) -> None:
    # He et al. for ReLU: std sqrt(2 / fan_in), sqrt(6) times torch's default
    nn.init.kaiming_normal_(weight, nonlinearity="relu")


def _delta_orthogonal_init(weight: Tensor) -> None:
    # Xiao et al. 2018: an orthogonal (C_out, C_in) matrix at the centre tap, zeros elsewhere,
    # so each convolution starts as a norm-preserving channel mix and a deep plain trunk
    # starts close to an isometry; ReLU gain sqrt(2).
    with torch.no_grad():
        centre = torch.empty(weight.shape[0], weight.shape[1])
        nn.init.orthogonal_(centre, gain=math.sqrt(2.0))
        weight.zero_()
        weight[:, :, weight.shape[-1] // 2] = centre


CONV_INITS = {"pytorch": _pytorch_init, "kaiming": _kaiming_init,
              "delta_orthogonal": _delta_orthogonal_init}
"""Initialisations of the trunk's convolution weights, by the name a model config gives."""


class CnnTrunk(nn.Module):
    """A stack of `ConvBlock`s with average pooling (kernel 2) every ``pool_every`` layers.

    Layer i is conv -> BN -> ReLU -> dropout(dropouts[i]); pooling follows layers
    ``pool_every - 1, 2 * pool_every - 1, ...`` but never the last one, so the last layer's
    map keeps the resolution of its convolution (for CAM).

    Args:
        n_leads: input channels.
        channels: output channels per layer; its length is the depth.
        kernel_size: odd convolution kernel length.
        pool_every: pool after every this many layers (>= 1).
        dropouts: dropout probability after each layer, same length as ``channels``.
        residual: identity connections around every convolution.
        conv_init: initialisation of the convolution weights (a `CONV_INITS` name).
    """

    def __init__(
        self,
        *,
        n_leads: int,
        channels: Sequence[int],
        kernel_size: int,
        pool_every: int,
        dropouts: Sequence[float],
        residual: bool,
        conv_init: str = "pytorch",
    ) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError("channels must name at least one layer")
        if len(dropouts) != len(channels):
            raise ValueError(f"need one dropout per layer: {len(dropouts)} != {len(channels)}")
        if pool_every < 1:
            raise ValueError(f"pool_every must be >= 1, got {pool_every}")
        self.channels = [int(c) for c in channels]
        in_channels = [n_leads, *self.channels[:-1]]
        self.blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, kernel_size, residual=residual)
            for c_in, c_out in zip(in_channels, self.channels, strict=True)
        )
        initialise = choose(CONV_INITS, conv_init, what="conv_init")
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv1d):
                initialise(module.weight)
        self.dropouts = nn.ModuleList(nn.Dropout(p) for p in dropouts)
        depth = len(self.channels)
        self.pool_after = [(i + 1) % pool_every == 0 and i < depth - 1 for i in range(depth)]

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    @property
    def strides(self) -> list[int]:
        """Input samples per step of each layer's output (the poolings before it), in the
        order of `forward`'s outputs; what `upsample_time` needs to put a layer's map on the
        input's time axis."""
        strides, stride = [], 1
        for pool in self.pool_after:
            strides.append(stride)
            stride *= 2 if pool else 1
        return strides

    def forward(self, x: Tensor, lengths: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Run every layer; return each layer's (features (B, C_i, T_i), lengths (B,)).

        The features are taken after the layer's dropout and before the pooling that follows
        it. The last entry is the trunk's output.
        """
        x = mask_tail(x, lengths)  # whatever the caller padded with, zeros now
        outputs: list[tuple[Tensor, Tensor]] = []
        for block, dropout, pool in zip(self.blocks, self.dropouts, self.pool_after, strict=True):
            x, lengths = block(x, lengths)
            x = dropout(x)
            outputs.append((x, lengths))
            if pool:
                # (B, C, T) -> (B, C, T // 2); a pair straddling the record's end is masked.
                x = F.avg_pool1d(x, 2)
                lengths = (lengths // 2).clamp(min=1)
                x = mask_tail(x, lengths)
        return outputs


# ---------------------------------------------------------------------------------------------
# global pooling over time


def _masked_mean(x: Tensor, lengths: Tensor, temperature: float) -> Tensor:
    # (B, C, T) -> (B, C); divided by each record's own length, not T.
    del temperature
    return mask_tail(x, lengths).sum(-1) / lengths[:, None].to(x.dtype)


def _masked_max(x: Tensor, lengths: Tensor, temperature: float) -> Tensor:
    # (B, C, T) -> (B, C); -inf in the tail so a zero there never wins over negative values.
    del temperature
    mask = time_mask(lengths, x.shape[-1])
    return x.masked_fill(~mask, float("-inf")).amax(-1)


def _masked_log_mean_exp(x: Tensor, lengths: Tensor, temperature: float) -> Tensor:
    # (B, C, T) -> (B, C): (1/r) log(mean_t exp(r x_t)) over valid t. Using the mean, not the
    # sum, keeps it between GAP (r -> 0) and GMP (r -> inf) for any record length.
    mask = time_mask(lengths, x.shape[-1])
    scaled = (temperature * x).masked_fill(~mask, float("-inf"))
    log_n = torch.log(lengths.to(x.dtype))[:, None]
    return (torch.logsumexp(scaled, dim=-1) - log_n) / temperature


_GLOBAL_POOLS: Mapping[str, Callable[[Tensor, Tensor, float], Tensor]] = MappingProxyType(
    {"gap": _masked_mean, "gmp": _masked_max, "lse": _masked_log_mean_exp}
)


class GlobalPool(nn.Module):
    """Pool (B, C, T) -> (B, C) over each record's valid positions.

    Args:
        kind: ``"gap"`` (average), ``"gmp"`` (max) or ``"lse"`` (log-mean-exp).
        temperature: the LSE sharpness r (ignored by gap and gmp); must be > 0.

    ``mean_share`` (0 unless the trainer sets it,
    `study.engine.trainer.pool_mean_shares`) blends the
    pooled vector toward the average over time: the max passes each channel's gradient to one
    time step, the average to all of them. An average pooling is left as it is.
    """

    def __init__(self, kind: str, *, temperature: float = 1.0) -> None:
        super().__init__()
        self._pool = choose(_GLOBAL_POOLS, kind, what="global pooling")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.kind = kind
        self.temperature = float(temperature)
        self.mean_share = 0.0

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        pooled = self._pool(x, lengths, self.temperature)  # (B, C)
        if self.mean_share > 0 and self._pool is not _masked_mean:
            pooled = torch.lerp(pooled, _masked_mean(x, lengths, self.temperature),
                                self.mean_share)
        return pooled

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, temperature={self.temperature}"


def set_pool_mean_share(model: nn.Module, share: float) -> None:
    """Set the mean's share (`GlobalPool.mean_share`) in every global pooling of ``model``."""
    for module in model.modules():
        if isinstance(module, GlobalPool):
            module.mean_share = share


def pool_mean_share(model: nn.Module) -> float:
    """The mean's share in ``model``'s global poolings; 0 when it has none."""
    return max((m.mean_share for m in model.modules() if isinstance(m, GlobalPool)), default=0.0)


# ---------------------------------------------------------------------------------------------
# additive attention (attention gates, attention pooling)


def _softmax_pool(scores: Tensor, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    # scores (B, 1, T): weights sum to one over each record's valid positions; the pooled
    # vector (B, C) is the weighted sum of the local features.
    mask = time_mask(lengths, scores.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights, (x * weights).sum(-1)


def _sigmoid_pool(scores: Tensor, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    # scores (B, 1, T): independent gates in (0, 1); the gated features are averaged over the
    # valid positions so the pooled scale does not grow with the record's duration.
    weights = mask_tail(torch.sigmoid(scores), lengths)
    return weights, (x * weights).sum(-1) / lengths[:, None].to(x.dtype)


_NORMALIZATIONS: Mapping[str, Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]] = (
    MappingProxyType({"softmax": _softmax_pool, "sigmoid": _sigmoid_pool})
)
_ACTIVATIONS: Mapping[str, Callable[[Tensor], Tensor]] = MappingProxyType(
    {"relu": F.relu, "tanh": torch.tanh}
)


class AdditiveAttention(nn.Module):
    """Additive attention over time, optionally conditioned on a global context vector.

    Scores ``c_t = <u, act(W_l l_t + W_g g)> + b`` (Bahdanau; with a context g this is the
    attention gate of Jetley et al. 2018 / Schlemper et al. 2019), normalized over each
    record's valid positions, then ``sum_t a_t l_t`` pools the local features.

    Args:
        in_channels: channels C of the local features l.
        attention_size: width of the compatibility layer.
        context_channels: channels of the global context g; 0 for no context.
        normalization: ``"softmax"`` (weights sum to 1) or ``"sigmoid"`` (independent gates,
            pooled as a gated mean).
        activation: ``"relu"`` (attention gates) or ``"tanh"`` (Bahdanau attention).
    """

    def __init__(
        self,
        in_channels: int,
        attention_size: int,
        *,
        context_channels: int = 0,
        normalization: str = "softmax",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self._normalize = choose(_NORMALIZATIONS, normalization, what="attention normalization")
        self._activation = choose(_ACTIVATIONS, activation, what="attention activation")
        self.local = nn.Conv1d(in_channels, attention_size, 1)
        self.context: nn.Linear | None = (
            nn.Linear(context_channels, attention_size, bias=False) if context_channels else None
        )
        self.score = nn.Conv1d(attention_size, 1, 1)

    def forward(
        self, x: Tensor, lengths: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pool local features x (B, C, T) into (B, C); also return the weights (B, 1, T).

        The weights are zero beyond ``lengths``; softmax weights sum to one per record,
        sigmoid weights are the gate values in (0, 1).
        """
        if (context is None) != (self.context is None):
            raise ValueError("pass a context exactly when the layer has context_channels > 0")
        hidden = self.local(x)  # (B, C, T) -> (B, A, T)
        if self.context is not None:
            hidden = hidden + self.context(context)[:, :, None]  # (B, C_g) -> (B, A, 1)
        scores = self.score(self._activation(hidden))  # (B, A, T) -> (B, 1, T)
        weights, pooled = self._normalize(scores, x, lengths)
        return pooled, weights


# ---------------------------------------------------------------------------------------------
# recurrent head


def _reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each record's valid steps, leaving the padded tail in place: (B, T, C)."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    last = lengths[:, None] - 1
    index = torch.where(steps <= last, last - steps, steps)  # (B, T); an involution
    return x.gather(1, index[:, :, None].expand_as(x))


def _lstm_steps(x_proj: Tensor, w_hh: Tensor, b_hh: Tensor) -> dict[str, Tensor]:
    """Unroll the LSTM equations; x_proj (B, T, 4H) = x W_ih^T + b_ih. Gate order i, f, g, o."""
    batch, n_steps, _ = x_proj.shape
    h = x_proj.new_zeros(batch, w_hh.shape[1])
    c = torch.zeros_like(h)
    names = ("input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden")
    states: dict[str, list[Tensor]] = {name: [] for name in names}
    for t in range(n_steps):
        i, f, g, o = (x_proj[:, t] + h @ w_hh.T + b_hh).chunk(4, dim=-1)  # 4 x (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        for name, value in zip(names, (i, f, g, o, c, h), strict=True):
            states[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in states.items()}


def _gru_steps(x_proj: Tensor, w_hh: Tensor, b_hh: Tensor) -> dict[str, Tensor]:
    """Unroll the GRU equations; x_proj (B, T, 3H) = x W_ih^T + b_ih. Gate order r, z, n."""
    batch, n_steps, _ = x_proj.shape
    h = x_proj.new_zeros(batch, w_hh.shape[1])
    names = ("reset_gate", "update_gate", "candidate", "hidden")
    states: dict[str, list[Tensor]] = {name: [] for name in names}
    for t in range(n_steps):
        xr, xz, xn = x_proj[:, t].chunk(3, dim=-1)
        hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        for name, value in zip(names, (r, z, n, h), strict=True):
            states[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in states.items()}


_RNN_CELLS: Mapping[str, type[nn.RNNBase]] = MappingProxyType({"lstm": nn.LSTM, "gru": nn.GRU})
_RNN_STEPS: Mapping[str, Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]] = MappingProxyType(
    {"lstm": _lstm_steps, "gru": _gru_steps}
)


@torch.no_grad()
def _set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    # torch orders an LSTM's gates (input, forget, cell, output) in blocks of hidden_size, and
    # adds two biases; the forget gate's total becomes exactly ``value``.
    size = lstm.hidden_size
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_"):
            bias[size : 2 * size] = value if name.startswith("bias_ih") else 0.0


def _check_chrono(chrono_steps: float, *, cell: str, forget_bias: float | None) -> None:
    if cell != "lstm":
        raise ValueError(f"chrono_steps applies to an LSTM only, not a {cell!r} cell")
    if forget_bias is not None:
        raise ValueError("chrono_steps sets the forget-gate biases: give it or forget_bias")
    if not chrono_steps > 2:
        raise ValueError(f"chrono_steps must be > 2 (u ~ U(1, steps - 1)), got {chrono_steps}")


@torch.no_grad()
def _set_chrono_biases(lstm: nn.LSTM, max_steps: float) -> None:
    # Tallec & Ollivier 2018, "Can recurrent neural networks warp time?": forget-gate bias
    # log(u), u ~ U(1, max_steps - 1), input-gate bias its negative, drawn per unit, layer and
    # direction from torch's generator (so the training seed fixes them). Unit k then starts
    # with a memory of about u_k steps; the cell and output gates keep torch's init.
    size = lstm.hidden_size
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_ih"):
            log_u = torch.empty(size).uniform_(1.0, max_steps - 1.0).log()
            bias[:size] = -log_u
            bias[size : 2 * size] = log_u
        elif name.startswith("bias_hh"):
            bias[: 2 * size] = 0.0


class RecurrentHead(nn.Module):
    """An LSTM or GRU over (B, T, C) sequences that respects each record's length.

    Sequences are packed, so a backward direction starts at each record's last real step and
    the final states belong to the last real step, not the padded tail.

    Args:
        input_size: features per step.
        cell: ``"lstm"`` or ``"gru"``.
        hidden_units: hidden size per direction.
        n_layers: stacked recurrent layers.
        bidirectional: add a backward direction (outputs concatenate [forward, backward]).
        dropout: dropout between stacked layers (ignored with one layer).
        forget_bias: an LSTM's initial forget-gate bias (None keeps torch's random one). A
            positive bias starts the cell remembering across steps instead of about halving its
            memory at every step (Gers et al. 2000; Jozefowicz et al. 2015). A GRU has no
            forget gate: it must be None there.
        chrono_steps: the longest dependency, in steps, an LSTM should start able to carry
            (None: off). Chrono initialisation (Tallec & Ollivier 2018) spreads the units'
            initial memories over 1 to ``chrono_steps`` steps by their forget- and
            input-gate biases. Excludes ``forget_bias``; an LSTM only.
    """

    def __init__(
        self,
        input_size: int,
        *,
        cell: str,
        hidden_units: int,
        n_layers: int,
        bidirectional: bool,
        dropout: float = 0.0,
        forget_bias: float | None = None,
        chrono_steps: float | None = None,
    ) -> None:
        super().__init__()
        rnn_class = choose(_RNN_CELLS, cell, what="recurrent cell")
        self._steps = _RNN_STEPS[cell]
        self.cell = cell
        self.n_directions = 2 if bidirectional else 1
        self.rnn = rnn_class(
            input_size,
            hidden_units,
            num_layers=n_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        if forget_bias is not None:
            if cell != "lstm":
                raise ValueError(f"forget_bias applies to an LSTM only, not a {cell!r} cell")
            _set_forget_bias(self.rnn, float(forget_bias))
        if chrono_steps is not None:
            _check_chrono(chrono_steps, cell=cell, forget_bias=forget_bias)
            _set_chrono_biases(self.rnn, float(chrono_steps))

    @property
    def output_size(self) -> int:
        return self.rnn.hidden_size * self.n_directions

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, C) -> outputs (B, T, H * D), zero in the tail, and final states (B, H * D).

        The final state concatenates the last layer's forward state at the last real step and
        (if bidirectional) its backward state at step 0.
        """
        device = x.device.type
        if torch.is_autocast_enabled(device):
            # Under CPU autocast, oneDNN's bf16 LSTM rejects a float32 input (it fails to
            # create its primitive); an input already in the autocast dtype works. Inputs that
            # come straight from the signal (HADLN's recurrent branch) are float32.
            x = x.to(torch.get_autocast_dtype(device))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * D, B, H)
        final = h_n[-self.n_directions :].permute(1, 0, 2).reshape(x.shape[0], -1)
        return outputs, final

    def first_layer_states(self, x: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """Recompute the first layer's hidden states and gate values from its weights.

        ``nn.LSTM``/``nn.GRU`` only return hidden states, so the cell equations are unrolled
        step by step with the module's own weights.

        Returns:
            (B, T, H * D) tensors, zero in the tail. LSTM: ``hidden``, ``cell``,
            ``input_gate``, ``forget_gate``, ``output_gate``, ``candidate``. GRU: ``hidden``,
            ``reset_gate``, ``update_gate``, ``candidate``. ``hidden`` equals the module's
            output when it has a single layer.
        """
        per_direction: list[dict[str, Tensor]] = []
        for suffix in ("", "_reverse")[: self.n_directions]:
            w_ih = getattr(self.rnn, f"weight_ih_l0{suffix}")
            w_hh = getattr(self.rnn, f"weight_hh_l0{suffix}")
            b_ih = getattr(self.rnn, f"bias_ih_l0{suffix}")
            b_hh = getattr(self.rnn, f"bias_hh_l0{suffix}")
            reverse = suffix == "_reverse"
            inputs = _reverse_within_lengths(x, lengths) if reverse else x
            states = self._steps(inputs @ w_ih.T + b_ih, w_hh, b_hh)
            if reverse:
                states = {k: _reverse_within_lengths(v, lengths) for k, v in states.items()}
            per_direction.append(states)
        tail = ~time_mask(lengths, x.shape[1]).transpose(1, 2)  # (B, T, 1)
        return {
            name: torch.cat([states[name] for states in per_direction], dim=-1).masked_fill(tail, 0)
            for name in per_direction[0]
        }
