"""Training configurations: one typed schema with their defaults, types and ranges.

A configuration holds everything one trial needs besides its data: the model config (for
`models.build_model`, checked by the model's constructor), the loss, the optimiser, the data
pipeline, the runtime and the budget. Search spaces, presets, protocols and ``--set`` give
partial configurations as plain JSON data; `merge_sections` layers them and `resolve_config`
fills in the defaults and checks every value, so a misspelled option or a value out of range
fails, with one line naming the option, the value and what is allowed, before anything trains.
Names that must be one of a registry's (schedules, optimisers, batchings, normalizations,
class-weight rules) are checked against that registry, so a new entry is allowed at once.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic.fields import FieldInfo

from data_io.augment import Augmenter
from data_io.batching import BATCHING
from data_io.preprocess import NORMALIZATION_NAMES
from study.engine.class_weights import CLASS_WEIGHTS
from study.engine.optimizers import OPTIMIZERS
from study.engine.schedules import LR_SCHEDULES


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checked(check: Callable[[Any], bool], allowed: str) -> PlainValidator:
    """A validator that keeps a value ``check`` accepts and otherwise says what is allowed."""

    def validate(value: Any) -> Any:
        if not check(value):
            raise ValueError(allowed)
        return value

    return PlainValidator(validate)


def _one_of(registry: Collection[str]) -> PlainValidator:
    return _checked(lambda v: isinstance(v, str) and v in registry,
                    f"one of {', '.join(sorted(registry))}")


def _weights(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value in CLASS_WEIGHTS):
        return True
    weights = list(value.values()) if isinstance(value, dict) else value
    return isinstance(weights, list) and bool(weights) and all(
        _is_number(w) and w >= 0 for w in weights)


def _augment(value: Any) -> Any:
    if value is not None and not isinstance(value, dict | list):
        raise ValueError("null, an object {augmentation: {p: ..., parameter: ...}} or a list "
                         "[{name: augmentation, p: ..., parameter: ...}]")
    try:
        Augmenter.from_config(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"a valid augmentation config ({exc})") from None
    return value


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")

ClassWeights = Annotated[Any, _checked(
    _weights, f"null, one of {', '.join(sorted(CLASS_WEIGHTS))}, or non-negative weights: a "
              "list, one per class, or an object {class label: weight}")]
Fractions = Annotated[list, _checked(
    lambda v: isinstance(v, list) and all(_is_number(f) and 0 < f < 1 for f in v),
    "a list of fractions, each > 0 and < 1")]
NormalizationStats = Annotated[Any, _checked(
    lambda v: v is None or (isinstance(v, dict) and set(v) == {"mean", "std"}
                            and all(isinstance(s, list) for s in v.values())),
    "null or {mean: [[...]], std: [[...]]} (the trainer writes it)")]
Augment = Annotated[Any, PlainValidator(_augment)]
Device = Annotated[str, _checked(lambda v: isinstance(v, str) and bool(DEVICE_PATTERN.fullmatch(v)),
                                 "auto, cpu, cuda, cuda:N or mps")]


class Section(BaseModel):
    """A configuration section: strict types (no ``"1"`` for 1, no ``true`` for 1), finite
    numbers, no unknown keys, checked again on assignment."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              validate_assignment=True)


class Loss(Section):
    focal_gamma: float = Field(0.0, ge=0, description="0 is plain cross-entropy")
    class_weights: ClassWeights = Field(
        None, description="a list is in the data set's class order; an object names every "
                          "class")


class Optim(Section):
    optimizer: Annotated[str, _one_of(OPTIMIZERS)] = Field(
        "adam", description="radam is rectified Adam, ECG-DualNet's")
    lr: float = Field(0.001, gt=0)
    lr_schedule: Annotated[str, _one_of(LR_SCHEDULES)] = "cosine"
    lr_decay: float = Field(0.95, gt=0, le=1, description="the factor per epoch (exponential) "
                                                          "or per milestone (multistep)")
    lr_final_ratio: float = Field(0.02, ge=0, le=1)
    lr_milestones: Fractions = Field(
        [0.25, 0.5, 0.75], description="multistep: the rate is multiplied by lr_decay after "
                                       "these fractions of the epochs (epoch int(f x epochs))")
    lr_plateau_factor: float = Field(
        0.5, gt=0, lt=1, description="lr_schedule plateau: every rate x this when the "
                                     "validation loss stalls")
    lr_plateau_patience: int = Field(
        5, ge=0, description="lr_schedule plateau: epochs without a new best validation loss "
                             "before the rate drops")
    batch_size: int = Field(16, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    cnn_lr_scale: float = Field(1.0, gt=0)
    warmup_epochs: float = Field(1.0, ge=0, description="linear warm-up over the first "
                                                        "batches; 0 is none")
    conv_lr_fan_in: float = Field(
        2688.0, ge=0, description="a convolution of larger fan-in (input channels x taps) "
                                  "learns at lr x this / fan-in; 0 gives every layer lr")
    lr_depth: int = Field(7, ge=0, description="a model whose CNN trunk has more layers learns "
                                               "at lr x this / its depth; 0 keeps lr at every "
                                               "depth")
    pool_mean_fraction: float = Field(
        0.5, ge=0, lt=1, description="global max (or LSE) pooling starts as the average over "
                                     "time and turns into itself linearly over this fraction "
                                     "of the training; 0 is none")


class Data(Section):
    fs_hz: float = Field(150.0, gt=0)
    normalization: Annotated[str, _one_of(NORMALIZATION_NAMES)] = "zscore"
    normalization_stats: NormalizationStats = Field(
        None, description="written by the trainer for a data-set-wide normalization (the "
                          "training split's mean and std); null otherwise")
    train_batching: Annotated[str, _one_of(BATCHING)] = "crop"
    eval_batching: Annotated[str, _one_of(BATCHING)] = "bucket"
    crop_s: float = Field(30.0, gt=0)
    fixed_length_s: float = Field(61.0, gt=0)
    augment: Augment = None


class Runtime(Section):
    device: Device = "auto"
    amp: bool = True
    num_threads: int = Field(0, ge=0, description="0 keeps torch's default")


class TrainConfig(Section):
    """A whole training configuration (``cfg.loss.focal_gamma``, ``cfg.optim.lr``, ...)."""

    model: dict[str, Any] = Field(default_factory=lambda: {"name": "cnn"})
    loss: Loss = Field(default_factory=Loss)
    optim: Optim = Field(default_factory=Optim)
    data: Data = Field(default_factory=Data)
    runtime: Runtime = Field(default_factory=Runtime)
    epochs: int = Field(12, ge=1)
    pretrain_epochs: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON data (what a study records and a checkpoint holds)."""
        return self.model_dump(mode="json")


def default_config() -> dict[str, Any]:
    """Every option's default, as plain JSON data."""
    return TrainConfig().as_dict()


def merge_sections(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers over earlier ones, key by key at every depth (``{"optim": {"lr": ..}}``
    changes the rate and keeps the other optimiser options); a value that is not a dict on
    either side is replaced. Nothing is shared with the inputs.

    The one merge of partial configurations: a trial's sampled values, the data set's training
    settings, ``--smoke``'s, ``--set``'s and the budget (`study.tune.spec.StudySpec.trial_config`),
    a preset's published protocol, and `study.train`'s command line.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = merge_sections(merged[key], value)
            else:
                merged[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping)
                                            else value)
    return merged


def resolve_config(partial: Mapping[str, Any]) -> TrainConfig:
    """``partial`` over the defaults, checked. The ``model`` section is taken whole (a model
    config is one unit); every other section keeps the defaults of the keys it does not give.

    Raises:
        ValueError: one line per problem: an unknown section or option (naming the known
            ones), or a value that is not allowed (naming the option, the value and what is
            allowed).
    """
    try:
        return TrainConfig.model_validate(dict(partial))
    except ValidationError as exc:
        raise ValueError("; ".join(_problems(exc))) from None


def _problems(exc: ValidationError) -> list[str]:
    unknown: dict[tuple[str, ...], list[str]] = {}
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(loc[-1])
            continue
        field = _field(loc)
        if field is None:  # an error inside a nested value: name the option that holds it
            loc = loc[:2]
            field = _field(loc)
        name = "/".join(loc)
        problem = (f"{name}={json.dumps(error['input'], default=str)} is not allowed: must be "
                   f"{_allowed(field, error)}")
        note = f" ({field.description})" if field is not None and field.description else ""
        problems.append(problem + note)
    for parent, keys in unknown.items():
        if not parent:
            problems.insert(0, f"unknown configuration section {keys[0]!r}; known: "
                               f"{sorted(TrainConfig.model_fields)}")
        else:
            section = TrainConfig.model_fields[parent[0]].annotation
            problems.insert(0, f"unknown option(s) {sorted(keys)} in section {parent[0]!r}; "
                               f"known: {sorted(section.model_fields)}")
    if not problems:  # a section given as something other than an object
        problems = [str(exc)]
    return problems


def _field(loc: tuple[str, ...]) -> FieldInfo | None:
    """The schema's field at ``loc`` (``("optim", "lr")``), None where there is none."""
    fields: Mapping[str, FieldInfo] = TrainConfig.model_fields
    field = None
    for part in loc:
        if part not in fields:
            return None
        field = fields[part]
        annotation = field.annotation
        fields = annotation.model_fields if isinstance(annotation, type) and issubclass(
            annotation, BaseModel) else {}
    return field


KIND_TEXT = {float: "a finite number", int: "an integer", bool: "true or false"}
BOUND_TEXT = ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<"))


def _allowed(field: FieldInfo | None, error: Mapping[str, Any]) -> str:
    """What ``field`` allows: a validator's own words, or its type and range."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if field is None:
        return error["msg"].lower()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return "an object"
    bounds = [f"{symbol} {getattr(meta, attr):g}" for meta in field.metadata
              for kind, attr, symbol in BOUND_TEXT if isinstance(meta, kind)]
    words = [KIND_TEXT.get(field.annotation, error["msg"].lower())]
    return " ".join([*words, " and ".join(bounds)]) if bounds else words[0]
