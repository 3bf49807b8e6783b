"""Sanity checks that need the model: cascading parameter randomisation and deletion curves.

The numbers (rank similarity, deletion masks and AUC) come from `reports.explanation_sanity`,
so the benchmark and the report compute them alike; this module only runs models. The
scored maps are those of `reports.explanation_scores.scored_methods`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from reports.explanation_sanity import DELETION_FRACTIONS, deletion_masks, rank_similarity
from reports.explanation_scores import scored_methods
from study.explain.explanation_methods import Batch, explain_batch
from study.explanation_specs import producer

RANDOM_SEED = 0
"""Seed of the re-initialised weights and of the random deletion order (checks repeat)."""


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The model's parameterised leaf modules grouped into layers, top (output) first.

    A layer is the path up to and including its first numeric index (``trunk.blocks.3``:
    the block's convolution and batch norm together) or the first name (``head``); layers
    come in reverse order of registration, i.e. from the output down.
    """
    groups: dict[str, list[nn.Module]] = {}
    for name, module in model.named_modules():
        if not list(module.parameters(recurse=False)):
            continue
        parts = name.split(".")
        cut = next((i for i, p in enumerate(parts) if p.isdigit()), 0)
        groups.setdefault(".".join(parts[: cut + 1]), []).append(module)
    return list(reversed(groups.items()))


def randomised(model: nn.Module, modules: list[nn.Module], *, seed: int) -> nn.Module:
    """A copy of ``model`` whose ``modules`` are re-initialised (their ``reset_parameters``,
    batch-norm statistics included) under ``seed``."""
    names = {id(m) for m in modules}
    copied = copy.deepcopy(model)
    originals = dict(model.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in copied.named_modules():
            if id(originals[name]) in names:
                if not hasattr(module, "reset_parameters"):
                    raise ValueError(f"layer {name} ({type(module).__name__}) cannot be "
                                     "re-initialised (no reset_parameters)")
                module.reset_parameters()
    return copied.eval()


def scored_maps(arrays: Mapping[str, np.ndarray], method: str) -> np.ndarray | None:
    """(B, T) non-negative map of ``method`` (NaN rows where it was not computed)."""
    scored = scored_methods()[method]
    maps = scored.maps(arrays)
    if maps is None:
        return None
    rows = scored.computed(arrays, scored.key(arrays))
    maps[~rows] = np.nan
    return maps


def randomisation_similarity(
    model: nn.Module, batch: Batch, arrays: Mapping[str, np.ndarray], *,
    methods: tuple[str, ...], settings: Mapping, y_true: np.ndarray,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per scored method (B, S) rank similarity of its maps to those of the model with the
    top 1, 2, ..., S layers randomised (cascading); the stage names, top first."""
    groups = layer_groups(model)
    lengths = batch.lengths.cpu().numpy()
    trained = {m: scored_maps(arrays, m) for m in methods}
    out = {m: np.full((len(lengths), len(groups)), np.nan) for m in methods}
    producers = tuple(sorted({producer(m) for m in methods}))
    for stage in range(len(groups)):
        modules = [module for _, layer in groups[: stage + 1] for module in layer]
        shuffled = randomised(model, modules, seed=RANDOM_SEED + stage)
        again = explain_batch(shuffled, batch, settings=settings, methods=producers)
        again.update(y_true=y_true, record_ids=arrays["record_ids"])
        for method in methods:
            maps = scored_maps(again, method)
            if maps is None or trained[method] is None:
                continue
            out[method][:, stage] = rank_similarity(trained[method], maps, lengths)
        if on_stage:
            on_stage(groups[stage][0])
    return [name for name, _ in groups], out


def deletion_curves(model: nn.Module, batch: Batch, maps: np.ndarray, *,
                    fractions: np.ndarray = DELETION_FRACTIONS,
                    seed: int | None = None) -> np.ndarray:
    """(B, F) probability of each record's predicted class as its most relevant samples
    (by ``maps`` (B, T); NaN rows are skipped and stay NaN) are blanked, or in a random
    order with ``seed``."""
    x, lengths = batch.x, batch.lengths
    with torch.no_grad():
        targets = model(x, lengths).argmax(-1)
    valid = ~np.isnan(maps).any(axis=1)
    masks = deletion_masks(np.nan_to_num(maps), lengths.cpu().numpy(), fractions=fractions,
                           seed=seed)  # (B, F, T)
    curves = np.full((len(maps), len(fractions)), np.nan)
    with torch.no_grad():
        for f in range(len(fractions)):
            blank = torch.as_tensor(masks[:, f], device=x.device)[:, None, :]  # (B, 1, T)
            probabilities = model(x.masked_fill(blank, 0.0), lengths).softmax(-1)
            picked = probabilities.gather(1, targets[:, None]).squeeze(1).cpu().numpy()
            curves[valid, f] = picked[valid]
    return curves


def sanity_arrays(
    model: nn.Module, batch: Batch, arrays: Mapping[str, np.ndarray], *,
    settings: Mapping, y_true: np.ndarray,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Randomisation similarities and deletion curves of every scored method present in
    ``arrays`` (the explanations of ``batch``), as `reports.explanation_sanity` reads them."""
    model = model.eval()
    with_y = {**arrays, "y_true": y_true}
    methods = tuple(name for name, m in scored_methods().items() if m.key(with_y) is not None)
    stages, similarity = randomisation_similarity(
        model, batch, with_y, methods=methods, settings=settings, y_true=y_true,
        on_stage=on_stage)
    out: dict[str, np.ndarray] = {
        "record_ids": np.asarray(arrays["record_ids"]),
        "randomisation_stages": np.array(stages),
        "deletion_fractions": DELETION_FRACTIONS,
    }
    first = scored_maps(with_y, methods[0]) if methods else None
    if first is not None:
        out["deletion_random"] = deletion_curves(model, batch, np.zeros_like(first),
                                                 seed=RANDOM_SEED)
    for method in methods:
        out[f"randomisation/{method}"] = similarity[method]
        out[f"deletion/{method}"] = deletion_curves(model, batch, scored_maps(with_y, method))
    return out
