"""Learning rates that shrink with a 1-D convolution's fan-in and with the CNN trunk's depth.

With Adam every weight moves by about the learning rate per step, while a layer's weights are
about 1/sqrt(fan-in) in size, so the widest convolutions of a deep trunk turn fastest
(measured in `docs/lab-notes/presets-under-the-default-protocol.md`). ``optim.conv_lr_fan_in``
caps that: a `Conv1d` whose fan-in (input channels x kernel taps) exceeds it learns at
``lr * conv_lr_fan_in / fan_in``.
``optim.lr_depth`` does the same over depth: a plain trunk's layers compose, so one step
moves the network's output by about the sum of its layers' relative updates.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from models.layers import CnnTrunk


def fan_in_scales(model: nn.Module, *, reference_fan_in: float) -> dict[int, float]:
    """Learning-rate factor (<= 1) per parameter id of each convolution wider than the reference."""
    scales: dict[int, float] = {}
    for module in model.modules():
        if not isinstance(module, nn.Conv1d):
            continue
        fan_in = module.in_channels // module.groups * module.kernel_size[0]
        if fan_in > reference_fan_in:
            scales[id(module.weight)] = reference_fan_in / fan_in
    return scales


def split_by_fan_in(
    groups: list[dict[str, Any]], *, model: nn.Module, base_lr: float, reference_fan_in: float
) -> list[dict[str, Any]]:
    """Optimizer groups with each wide convolution's weight in a group of its own lower rate.

    A group's own ``lr`` (e.g. a pre-trained trunk's lower rate) is the rate scaled; the other
    keys of the group are kept. ``reference_fan_in`` 0 returns the groups unchanged.
    """
    if not reference_fan_in:
        return groups
    scales = fan_in_scales(model, reference_fan_in=reference_fan_in)
    split: list[dict[str, Any]] = []
    for group in groups:
        rate = group.get("lr", base_lr)
        plain = [p for p in group["params"] if id(p) not in scales]
        if plain:
            split.append({**group, "params": plain, "lr": rate})
        for param in (p for p in group["params"] if id(p) in scales):
            split.append({**group, "params": [param], "lr": rate * scales[id(param)]})
    return split


def depth_scale(model: nn.Module, *, reference_depth: int) -> float:
    """Learning-rate factor (<= 1) of a model whose CNN trunk is deeper than the reference.

    ``reference_depth / depth`` for a `CnnTrunk` (attribute ``trunk``) of more layers, 1 for
    a shallower one, for a model without one, and for ``reference_depth`` 0.
    """
    trunk = getattr(model, "trunk", None)
    if not reference_depth or not isinstance(trunk, CnnTrunk) or trunk.depth <= reference_depth:
        return 1.0
    return reference_depth / trunk.depth
