"""Model-agnostic explanations: shift perturbation, occlusion, integrated gradients.

They only call ``model(x, lengths)``, so they explain every family alike (the thesis'
shift-perturbation masks included). Every method takes a batch x (B, leads, T) zero-padded
past ``lengths`` (B,) and returns a dict of maps on the input's time axis, zero past each
record's length. The model is put in eval mode and its parameters are frozen while
explaining (no gradients accumulate in them); its modes and ``requires_grad`` flags are
restored afterwards. No method draws random numbers, so a given input gives the same maps.

    from models.perturbation import explain_by_perturbation
    maps = explain_by_perturbation("occlusion", model, x, lengths=lengths,
                                   window_samples=150, stride_samples=30)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

import torch
from torch import Tensor, nn

from models.layers import choose, mask_tail, resolve_lengths, time_mask

# ---------------------------------------------------------------------------------------------
# shared helpers


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` inside the block; previous state restored after."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module, training in modes:
            module.training = training


def _check_input(x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """Detached x (B, C, T) with zeros past ``lengths``, and lengths (B,) as long."""
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, leads, time), got shape {tuple(x.shape)}")
    lengths = resolve_lengths(x, lengths)
    return mask_tail(x.detach(), lengths), lengths


def _target_indices(target_class: int | Tensor | None, logits: Tensor) -> Tensor:
    """Class index per record (B,): ``target_class`` broadcast, or the predicted class if None.

    Raises:
        ValueError: for a class outside [0, K) or a per-record tensor of the wrong shape.
    """
    batch, n_classes = logits.shape
    if target_class is None:
        return logits.argmax(-1)
    targets = torch.as_tensor(target_class, device=logits.device).long()
    targets = targets.expand(batch) if targets.dim() == 0 else targets
    if targets.shape != (batch,):
        raise ValueError(f"target_class must be an int or have shape ({batch},)")
    if bool((targets < 0).any()) or bool((targets >= n_classes).any()):
        raise ValueError(f"target_class must lie in [0, {n_classes}), got {targets.tolist()}")
    return targets


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def _chunks(n_items: int, batch: int, batch_size: int) -> Iterator[slice]:
    """Slices of at most ``max(1, batch_size // batch)`` items, so a forward pass over
    ``items x batch`` copies stays near ``batch_size`` records."""
    per_chunk = max(1, batch_size // batch)
    for start in range(0, n_items, per_chunk):
        yield slice(start, min(start + per_chunk, n_items))


# ---------------------------------------------------------------------------------------------
# shift perturbation


def _upsample_grid(grid: Tensor, grid_factor: int, size: int) -> Tensor:
    """Knot values (B, 1, G) at samples 0, f, 2f, ... -> linear interpolation (B, 1, size).

    Indexed with integers (knot t // f, weight (t % f) / f) rather than ``F.interpolate``,
    so a sample's value does not depend on G, i.e. on how long the padded batch is.
    """
    steps = torch.arange(size, device=grid.device)
    left = steps // grid_factor
    right = (left + 1).clamp(max=grid.shape[-1] - 1)
    weight = (steps % grid_factor).to(grid.dtype) / grid_factor
    return torch.lerp(grid[..., left], grid[..., right], weight)


def _resample(x: Tensor, positions: Tensor, lengths: Tensor) -> Tensor:
    """x (B, C, T) read at fractional sample positions (B, 1, T) by linear interpolation.

    Positions are clamped to each record's own [0, length - 1], so a shifted record never
    reads the zero padding. Gradients flow to ``positions`` through the interpolation
    weight (the local slope of x).
    """
    last = (lengths - 1)[:, None, None]  # (B, 1, 1)
    positions = torch.minimum(positions.clamp(min=0), last.to(positions.dtype))
    left = positions.detach().floor().long()
    right = torch.minimum(left + 1, last)
    weight = positions - left.to(positions.dtype)  # (B, 1, T) in [0, 1)
    channels = x.shape[1]
    x_left = x.gather(-1, left.expand(-1, channels, -1))
    x_right = x.gather(-1, right.expand(-1, channels, -1))
    return x_left + weight * (x_right - x_left)


def shift_perturbation(
    model: nn.Module,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    target_class: int | Tensor,
    grid_factor: int = 100,
    l1_weight: float,
    tv_weight: float,
    steps: int = 300,
    lr: float = 0.05,
    max_shift_samples: float | None = None,
) -> dict[str, Tensor]:
    """Smallest smooth time shift of the signal that moves the prediction to ``target_class``.

    The reference thesis' explanation of AF / Other predictions: a deformation d(t) (in
    samples) is defined by one knot every ``grid_factor`` samples and linear interpolation
    between knots; the shifted signal is x read at t + d(t) (linear interpolation, inside
    each record). Adam minimises, per record,

        -log p(target | shifted) + l1_weight * mean|g| + tv_weight * mean|g[k+1] - g[k]|

    where g = d / grid_factor are the knot values in grid spacings and the means run over
    the knots that touch the record. Measuring shifts in grid spacings keeps ``lr`` (the
    per-step change of a knot, roughly) and the penalty weights meaningful at any sampling
    rate and ``grid_factor``. The L1 term keeps d sparse, the total-variation term smooth;
    where |d| is large the model needed the signal moved, which is the explanation.

    The knots start at zero and nothing is random, so the result is deterministic. Records
    are optimised independently (the loss is summed over the batch; Adam is elementwise),
    exactly so in float64; in float32 the rounding differences between a padded and a lone
    forward pass can grow over the steps (Adam moves knots with near-zero gradients by
    about ``lr``), so compare explanations computed with the same batch layout.

    Args:
        model: any classifier ``model(x, lengths) -> logits (B, K)``.
        x: (B, leads, T); every lead is shifted by the same d(t).
        lengths: (B,) real samples per record; None for full length.
        target_class: class to move towards (0 = Normal), an int or one per record (B,).
        grid_factor: samples per knot of the deformation grid.
        l1_weight: weight of the mean absolute knot value (sparsity).
        tv_weight: weight of the mean absolute difference of neighbouring knots
            (smoothness).
        steps: Adam steps.
        lr: Adam learning rate, in grid spacings.
        max_shift_samples: bound |d| smoothly (d = m * tanh(raw / m)); None for no bound.

    Returns:
        ``mask`` (B, 1, T): |d(t)| in samples; ``deformation`` (B, 1, T): d(t) signed
        (positive reads later samples); ``shifted_signal`` (B, leads, T); and
        ``target_probability_before`` / ``target_probability_after`` (B,): the target
        class' softmax probability for x and for the shifted signal. Maps are zero past
        ``lengths``.
    """
    if grid_factor < 1 or steps < 0:
        raise ValueError(f"need grid_factor >= 1 and steps >= 0, got {grid_factor}, {steps}")
    _positive(lr=lr)
    if max_shift_samples is not None:
        _positive(max_shift_samples=max_shift_samples)
    if l1_weight < 0 or tv_weight < 0:
        raise ValueError(f"penalty weights must be >= 0, got {l1_weight}, {tv_weight}")
    x, lengths = _check_input(x, lengths)
    batch, size = x.shape[0], x.shape[-1]
    n_knots = math.ceil((size - 1) / grid_factor) + 1
    # Knot k shapes samples (k - 1) f .. (k + 1) f; knots past a record's last sample get no
    # loss gradient and no penalty, so they stay at zero.
    last_knot = (lengths - 1 + grid_factor - 1) // grid_factor  # (B,)
    knot_mask = time_mask(last_knot + 1, n_knots).to(x.dtype)  # (B, 1, G)
    n_valid = knot_mask.sum(-1)  # (B, 1)
    steps_t = torch.arange(size, device=x.device, dtype=x.dtype)  # (T,)

    def deform(raw: Tensor) -> Tensor:
        # raw knots (B, 1, G) in grid spacings -> d (B, 1, T) in samples, zero past lengths.
        knots = raw * knot_mask * grid_factor
        if max_shift_samples is not None:
            knots = max_shift_samples * torch.tanh(knots / max_shift_samples)
        return mask_tail(_upsample_grid(knots, grid_factor, size), lengths)

    def penalties(raw: Tensor) -> Tensor:
        # (B,) mean |g| and mean |g[k+1] - g[k]| over each record's knots, in grid spacings.
        knots = raw * knot_mask
        if max_shift_samples is not None:
            bound = max_shift_samples / grid_factor
            knots = bound * torch.tanh(knots / bound)
        l1 = knots.abs().sum(-1) / n_valid
        tv = (knots.diff(dim=-1).abs() * knot_mask[..., 1:]).sum(-1) / (n_valid - 1).clamp(min=1)
        return (l1_weight * l1 + tv_weight * tv).squeeze(1)

    def target_log_probability(signal: Tensor, targets: Tensor) -> Tensor:
        logits = model(mask_tail(signal, lengths), lengths)
        return logits.log_softmax(-1).gather(1, targets[:, None]).squeeze(1)  # (B,)

    with _frozen(model):
        with torch.no_grad():
            targets = _target_indices(target_class, model(x, lengths))
            before = target_log_probability(x, targets).exp()
        raw = torch.zeros(batch, 1, n_knots, dtype=x.dtype, device=x.device, requires_grad=True)
        optimizer = torch.optim.Adam([raw], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                shifted = _resample(x, steps_t + deform(raw), lengths)
                loss = -target_log_probability(shifted, targets) + penalties(raw)
                loss.sum().backward()
                optimizer.step()
        with torch.no_grad():
            deformation = deform(raw)
            shifted = mask_tail(_resample(x, steps_t + deformation, lengths), lengths)
            after = target_log_probability(shifted, targets).exp()
    return {
        "mask": deformation.abs(),
        "deformation": deformation,
        "shifted_signal": shifted,
        "target_probability_before": before,
        "target_probability_after": after,
    }


# ---------------------------------------------------------------------------------------------
# occlusion


def _zero_baseline(x: Tensor, lengths: Tensor) -> Tensor:
    del lengths
    return torch.zeros_like(x)


def _mean_baseline(x: Tensor, lengths: Tensor) -> Tensor:
    # (B, C, T) -> each record's per-lead mean over its valid samples, broadcast over T.
    mean = x.sum(-1, keepdim=True) / lengths[:, None, None].to(x.dtype)
    return mean.expand_as(x)


OCCLUSION_BASELINES: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = MappingProxyType(
    {"zero": _zero_baseline, "mean": _mean_baseline}
)
"""What an occluded window is replaced by: (x (B, C, T), lengths (B,)) -> (B, C, T)."""


def _windows(lengths: Tensor, window: int, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every record's occlusion windows as flat (record, start, width) index tensors (N,).

    Windows start every ``stride`` samples inside the record, plus one flush with its end,
    so every real sample is covered; none reaches into the padding. They depend only on
    the record's own length, so a record gets the same windows alone or in any batch.
    """
    records, starts, widths = [], [], []
    for record, length in enumerate(lengths.tolist()):
        width = min(window, length)
        record_starts = list(range(0, length - width + 1, stride))
        if record_starts[-1] + width < length:
            record_starts.append(length - width)
        records += [record] * len(record_starts)
        starts += record_starts
        widths += [width] * len(record_starts)
    return tuple(torch.tensor(v, device=lengths.device) for v in (records, starts, widths))


def occlusion(
    model: nn.Module,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    target_class: int | Tensor | None = None,
    window_samples: int,
    stride_samples: int,
    baseline: str = "zero",
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """Drop of the class probability when a sliding window of the signal is blanked out.

    Each window (all leads) is replaced by the baseline; the drop p(x) - p(occluded) of the
    target class is credited to every sample of the window, and each sample's map value is
    the mean drop over the windows covering it. Positive values mark evidence for the class.
    Windows stay inside each record (the last one is flush with its end).

    Args:
        model: any classifier ``model(x, lengths) -> logits (B, K)``.
        x: (B, leads, T).
        lengths: (B,) real samples per record; None for full length.
        target_class: class to explain, an int or one per record (B,); None for each
            record's predicted class.
        window_samples: occluded window length (shortened to the record if longer).
        stride_samples: step between window starts.
        baseline: replacement signal, a key of ``OCCLUSION_BASELINES``.
        batch_size: occluded copies per forward pass.

    Returns:
        ``occlusion`` (B, 1, T), zero past ``lengths``.
    """
    if window_samples < 1 or stride_samples < 1 or batch_size < 1:
        raise ValueError(
            "window_samples, stride_samples and batch_size must be >= 1, got "
            f"{window_samples}, {stride_samples}, {batch_size}"
        )
    make_baseline = choose(OCCLUSION_BASELINES, baseline, what="occlusion baseline")
    x, lengths = _check_input(x, lengths)
    fill = make_baseline(x, lengths)  # (B, C, T)
    records, starts, widths = _windows(lengths, window_samples, stride_samples)  # (N,) each
    samples = torch.arange(x.shape[-1], device=x.device)
    heat = x.new_zeros(x.shape[0], x.shape[-1])  # (B, T) summed drops
    count = torch.zeros_like(heat)  # (B, T) covering windows
    with _frozen(model), torch.no_grad():
        logits = model(x, lengths)
        targets = _target_indices(target_class, logits)
        reference = logits.softmax(-1).gather(1, targets[:, None]).squeeze(1)  # (B,)
        for first in range(0, len(records), batch_size):
            part = slice(first, first + batch_size)
            record = records[part]  # (n,) which record each occluded copy comes from
            window = (samples >= starts[part, None]) & (samples < (starts + widths)[part, None])
            occluded = torch.where(window[:, None, :], fill[record], x[record])  # (n, C, T)
            probabilities = model(occluded, lengths[record]).softmax(-1)
            picked = probabilities.gather(1, targets[record, None]).squeeze(1)
            covered = window.to(x.dtype)  # (n, T)
            heat.index_add_(0, record, (reference[record] - picked)[:, None] * covered)
            count.index_add_(0, record, covered)
    # Every real sample has count >= 1; the clamp only guards the padding (zeroed anyway).
    heat = heat / count.clamp(min=1)
    return {"occlusion": mask_tail(heat[:, None, :], lengths)}


# ---------------------------------------------------------------------------------------------
# integrated gradients


def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    target_class: int | Tensor | None = None,
    steps: int = 32,
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """Integrated gradients of the target logit along the straight path from a zero signal.

    attribution(t) = x(t) * integral_0^1 d logit(a x) / dx(t) da, the integral by the
    trapezoid rule on ``steps`` intervals. Completeness: the attributions sum to
    logit(x) - logit(0) up to the quadrature error (small for piecewise-linear ReLU nets).
    Leads are summed, so the map is per time step.

    Args:
        model: any classifier ``model(x, lengths) -> logits (B, K)``.
        x: (B, leads, T).
        lengths: (B,) real samples per record; None for full length.
        target_class: class to explain, an int or one per record (B,); None for each
            record's predicted class.
        steps: trapezoid intervals (``steps + 1`` gradient evaluations).
        batch_size: records per forward pass (the path points are batched).

    Returns:
        ``integrated_gradients`` (B, 1, T), zero past ``lengths``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    x, lengths = _check_input(x, lengths)
    batch = x.shape[0]
    alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype, device=x.device)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[[0, -1]] = 0.5 / steps  # trapezoid end points
    path_gradient = torch.zeros_like(x)  # (B, C, T)
    with _frozen(model):
        with torch.no_grad():
            targets = _target_indices(target_class, model(x, lengths))
        for part in _chunks(len(alphas), batch, batch_size):
            n = part.stop - part.start
            with torch.enable_grad():
                # (n, 1, 1, 1) * (1, B, C, T) -> (n * B, C, T) points on the path.
                points = (alphas[part, None, None, None] * x[None]).flatten(0, 1)
                points.requires_grad_(True)
                logits = model(points, lengths.repeat(n))
                picked = logits.gather(1, targets.repeat(n)[:, None]).sum()
                (gradient,) = torch.autograd.grad(picked, points)
            gradient = gradient.view(n, *x.shape)
            path_gradient += (weights[part, None, None, None] * gradient).sum(0)
    attribution = (x * path_gradient).sum(1, keepdim=True)  # (B, C, T) -> (B, 1, T)
    return {"integrated_gradients": mask_tail(attribution, lengths)}


# ---------------------------------------------------------------------------------------------
# registry


PERTURBATION_METHODS: Mapping[str, Callable[..., dict[str, Tensor]]] = MappingProxyType(
    {
        "shift_perturbation": shift_perturbation,
        "occlusion": occlusion,
        "integrated_gradients": integrated_gradients,
    }
)
"""Model-agnostic explanation methods by name; each is ``method(model, x, **options)``."""


def explain_by_perturbation(
    name: str, model: nn.Module, x: Tensor, **options: object
) -> dict[str, Tensor]:
    """Run the explanation method ``name`` (a key of ``PERTURBATION_METHODS``).

    Raises:
        ValueError: for an unknown name (the message lists the known methods).
    """
    method = choose(PERTURBATION_METHODS, name, what="perturbation method")
    return method(model, x, **options)
