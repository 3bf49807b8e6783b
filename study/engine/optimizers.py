"""The optimisers a training config may name (``optim.optimizer``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch

OPTIMIZERS: Mapping[str, type[torch.optim.Optimizer]] = MappingProxyType(
    {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}
)
"""``optim.optimizer`` -> optimiser class: Adam (our default) or RAdam (Liu et al. 2020,
ECG-DualNet's ``torch_optimizer.RAdam``), both with torch's default betas and eps."""
