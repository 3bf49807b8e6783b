"""The loss' class weights: rules computed from the training labels, or weights given."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def inverse_frequency(labels: np.ndarray, n_classes: int) -> list[float]:
    """Class weights n / (k * count), so every class weighs the same in total."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.divide(len(labels), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return weights.tolist()


def sqrt_inverse_frequency(labels: np.ndarray, n_classes: int) -> list[float]:
    """The square root of `inverse_frequency`: rare classes gain weight, less extremely."""
    return np.sqrt(inverse_frequency(labels, n_classes)).tolist()


def complement_frequency(labels: np.ndarray, n_classes: int) -> list[float]:
    """Class weights 1 - count / n (the HADLN reproduction's focal-loss weights): every
    class but a dominant one weighs nearly 1, the dominant one less."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return (1.0 - counts / max(len(labels), 1)).tolist()


CLASS_WEIGHTS: dict[str, Callable[[np.ndarray, int], list[float]]] = {
    "inverse_frequency": inverse_frequency,
    "sqrt_inverse_frequency": sqrt_inverse_frequency,
    "complement_frequency": complement_frequency,
}


def class_weights(spec: str | list[float] | Mapping[str, float] | None, *, labels: np.ndarray,
                  classes: tuple[str, ...]):
    """Resolve the loss' ``class_weights`` option: a rule name, explicit weights in class
    order, weights by class label (every class named), or None.

    Raises:
        ValueError: an unknown rule, or a label mapping that misses or adds a class.
    """
    n_classes = len(classes)
    if spec is None or isinstance(spec, list):
        return spec
    if isinstance(spec, Mapping):
        if set(spec) != set(classes):
            raise ValueError(f"class_weights {dict(spec)} must name every class of the data set "
                             f"({', '.join(classes)}) and no other")
        return [float(spec[label]) for label in classes]
    if spec not in CLASS_WEIGHTS:
        raise ValueError(f"unknown class_weights {spec!r}; known: {sorted(CLASS_WEIGHTS)}")
    return CLASS_WEIGHTS[spec](labels, n_classes)
