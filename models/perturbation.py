"""Model-agnostic explanations: shift perturbation (ours), occlusion and integrated
gradients (Captum).

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
        class' softmax probability for x and for the shifted signal; ``target_reached``
        (B,) bool: the shifted signal is classified as the target (where it is not, the
        mask is no explanation of the decision and is not scored). Maps are zero past
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

    def predicted(signal: Tensor) -> Tensor:
        return model(mask_tail(signal, lengths), lengths).argmax(-1)  # (B,)

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
            reached = predicted(shifted) == targets
    return {
        "mask": deformation.abs(),
        "deformation": deformation,
        "shifted_signal": shifted,
        "target_probability_before": before,
        "target_probability_after": after,
        "target_reached": reached,
    }


# ---------------------------------------------------------------------------------------------
# occlusion and integrated gradients (Captum), one length group at a time


def _zero_baseline(x: Tensor, lengths: Tensor) -> Tensor:
    del lengths
    return torch.zeros_like(x)


def _mean_baseline(x: Tensor, lengths: Tensor) -> Tensor:
    # (B, C, T) -> each record's per-lead mean over its valid samples, broadcast over T.
    mean = x.sum(-1, keepdim=True) / lengths[:, None, None].to(x.dtype)
    return mean.expand_as(x).contiguous()


OCCLUSION_BASELINES: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = MappingProxyType(
    {"zero": _zero_baseline, "mean": _mean_baseline}
)
"""What an occluded window is replaced by: (x (B, C, T), lengths (B,)) -> (B, C, T)."""

OCCLUSION_OUTPUTS: Mapping[str, bool] = MappingProxyType({"probability": True, "logit": False})
"""What an occlusion's drop is measured on (True: the softmax probability). The logit does not
saturate: where several beats each carry the class, blanking one barely moves a probability
near 1 but still lowers the logit (docs/explanations.md measures both)."""


def _length_groups(lengths: Tensor) -> Iterator[tuple[Tensor, int]]:
    """(rows (n,), length) of the records sharing each length.

    Captum's attributions run on a group cropped to its length, so no window or path point
    ever sees the padding and a record gets the same map alone or in any padded batch.
    """
    for length in torch.unique(lengths).tolist():
        yield torch.nonzero(lengths == length).flatten(), int(length)


def _unpadded(model: nn.Module, *, softmax: bool) -> Callable[[Tensor], Tensor]:
    """``inputs (n, C, L) -> (n, K)`` on records of full length L: probabilities or logits."""

    def forward(inputs: Tensor) -> Tensor:
        logits = model(inputs, None)
        return logits.softmax(-1) if softmax else logits

    return forward


def occlusion(
    model: nn.Module,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    target_class: int | Tensor | None = None,
    window_samples: int,
    stride_samples: int,
    baseline: str = "zero",
    output: str = "probability",
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """Drop of the class probability (or logit) when a sliding window of the signal is
    blanked out (Captum's ``Occlusion``, Zeiler and Fergus 2014).

    Each window (all leads) is replaced by the baseline; the drop p(x) - p(occluded) of the
    target class is credited to every sample of the window, and each sample's map value is
    the mean drop over the windows covering it. Positive values mark evidence for the class.
    Windows start every ``stride_samples`` inside each record; where the stride does not
    tile the record, Captum adds one more window cut short at the record's end, so every
    sample is covered.

    Args:
        model: any classifier ``model(x, lengths) -> logits (B, K)``.
        x: (B, leads, T).
        lengths: (B,) real samples per record; None for full length.
        target_class: class to explain, an int or one per record (B,); None for each
            record's predicted class.
        window_samples: occluded window length (shortened to the record if longer).
        stride_samples: step between window starts.
        baseline: replacement signal, a key of ``OCCLUSION_BASELINES``.
        output: what the drop is measured on, a key of ``OCCLUSION_OUTPUTS``.
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
    softmax = choose(OCCLUSION_OUTPUTS, output, what="occlusion output")
    x, lengths = _check_input(x, lengths)
    fill = make_baseline(x, lengths)  # (B, C, T)
    heat = x.new_zeros(x.shape[0], 1, x.shape[-1])  # (B, 1, T)
    with _frozen(model):
        with torch.no_grad():
            targets = _target_indices(target_class, model(x, lengths))
        from captum import attr as captum_attr  # imports matplotlib: only when run

        explainer = captum_attr.Occlusion(_unpadded(model, softmax=softmax))
        for rows, length in _length_groups(lengths):
            width = min(window_samples, length)
            leads = x.shape[1]
            with torch.no_grad():
                drops = explainer.attribute(
                    x[rows, :, :length], target=targets[rows],
                    sliding_window_shapes=(leads, width), strides=(leads, stride_samples),
                    baselines=fill[rows, :, :length],
                    perturbations_per_eval=max(1, batch_size // len(rows)),
                )  # (n, C, L): every lead of a window gets the same drop
            heat[rows, :, :length] = drops[:, :1].to(x.dtype)
    return {"occlusion": mask_tail(heat, lengths)}


def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    target_class: int | Tensor | None = None,
    steps: int = 32,
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """Integrated gradients (Sundararajan et al. 2017; Captum's ``IntegratedGradients``) of
    the target logit along the straight path from a zero signal.

    attribution(t) = x(t) * integral_0^1 d logit(a x) / dx(t) da, the integral by
    Gauss-Legendre quadrature on ``steps`` points (Captum's default; its trapezoid rule
    weighs the path by (n - 1) / n instead of 1, so it is not used). Completeness: the
    attributions sum to logit(x) - logit(0) up to the quadrature error (small for
    piecewise-linear ReLU nets).
    Leads are summed, so the map is per time step.

    Args:
        model: any classifier ``model(x, lengths) -> logits (B, K)``.
        x: (B, leads, T).
        lengths: (B,) real samples per record; None for full length.
        target_class: class to explain, an int or one per record (B,); None for each
            record's predicted class.
        steps: quadrature points (gradient evaluations per record).
        batch_size: path points per forward pass.

    Returns:
        ``integrated_gradients`` (B, 1, T), zero past ``lengths``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    x, lengths = _check_input(x, lengths)
    attribution = torch.zeros_like(x)  # (B, C, T)
    with _frozen(model):
        with torch.no_grad():
            targets = _target_indices(target_class, model(x, lengths))
        from captum import attr as captum_attr  # imports matplotlib: only when run

        explainer = captum_attr.IntegratedGradients(_unpadded(model, softmax=False))
        for rows, length in _length_groups(lengths):
            with torch.enable_grad():
                part = x[rows, :, :length]
                attribution[rows, :, :length] = explainer.attribute(
                    part, baselines=torch.zeros_like(part), target=targets[rows],
                    n_steps=steps, method="gausslegendre",
                    internal_batch_size=max(batch_size, len(rows)),
                ).detach()
    return {"integrated_gradients": mask_tail(attribution.sum(1, keepdim=True), lengths)}


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
