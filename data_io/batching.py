"""Torch `Dataset`, batch samplers and collation for variable-length ECG records.

CinC 2017 records last 9-61 s, 70% of them exactly 30 s. Three ways to batch them are
registered in `BATCHING` and chosen by name in `make_loader`:

- ``pad_fixed``: every record zero-padded (or cropped) to ``fixed_length_s`` (the reference
  thesis' 61 s protocol); about half of all computed samples are padding.
- ``bucket``: records sorted by length into buckets, batches drawn within a bucket and padded
  only to their own longest record; nearly halves the compute on CinC.
- ``crop``: fixed windows of ``crop_s`` (random when shuffling, centred otherwise).

Every batch is a dict ``{"x": (B, leads, T) float32, "lengths": (B,) int64, "y": (B,) int64,
"index": (B,) int64}`` whose padding is zeros after each row's ``lengths[b]`` real samples, so a
model can mask the tail. All randomness (order, crops, augmentation) derives from
``(seed, epoch)`` and, per record, its index: a loader is reproducible whatever the number of
workers, and each epoch differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data_io.augment import Augmenter
from data_io.preprocess import Normalizer, normalizer
from data_io.records import EcgArrays

# First words of the seed sequences, so order, crops and augmentations draw independent streams.
_ORDER_STREAM = 0
_ITEM_STREAM = 1

_AUTO_BUCKET_BATCHES = 8
"""``bucket_size=0`` means buckets of this many batches."""


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(list(words))


def _check_seed(seed: int, epoch: int) -> None:
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")


class EcgDataset(Dataset):
    """Records ``indices`` of an `EcgArrays` as float32 millivolts, augmented and normalized.

    Item ``k`` is record ``indices[k]``: augmented (when an augmenter is given), cropped to
    ``crop_samples`` when longer, then normalized, so normalization sees exactly the samples
    the model gets. Its random generator is seeded by ``(seed, epoch, record index)``.

    Args:
        arrays: the data set.
        indices: records of ``arrays`` this data set serves, in item order.
        normalization: a name in `data_io.preprocess.NORMALIZERS`, or a normalizer (e.g.
            one fitted on the training records, `data_io.preprocess.fit_normalizer`).
        augmenter: random augmentations; None or an identity augmenter leaves records as read.
        crop_samples: records longer than this are cropped to it; None keeps every sample.
        random_crop: crop at a random offset; otherwise take the centre.
        seed: base seed of every random draw.
        epoch: mixed into every seed so that each epoch draws anew.
    """

    def __init__(
        self,
        arrays: EcgArrays,
        indices: Sequence[int] | np.ndarray,
        *,
        normalization: str | Normalizer = "zscore",
        augmenter: Augmenter | None = None,
        crop_samples: int | None = None,
        random_crop: bool = False,
        seed: int = 0,
        epoch: int = 0,
    ) -> None:
        _check_seed(seed, epoch)
        if crop_samples is not None and crop_samples < 1:
            raise ValueError(f"crop_samples must be >= 1, got {crop_samples}")
        self.arrays = arrays
        self.indices = _as_indices(indices, n_records=len(arrays))
        self.normalize = normalization if callable(normalization) else normalizer(normalization)
        self.augmenter = augmenter if augmenter is not None and not augmenter.is_identity else None
        self.crop_samples = crop_samples
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def record_lengths(self) -> np.ndarray:
        """Stored samples of each item's record, shape (len(self),) (before any augmentation)."""
        return self.arrays.lengths[self.indices]

    def __getitem__(self, item: int) -> dict[str, Any]:
        index = int(self.indices[item])
        x = self.arrays.signal(index)
        needs_rng = self.augmenter is not None or (
            self.random_crop and self.crop_samples is not None
        )
        rng = _rng(self.seed, self.epoch, _ITEM_STREAM, index) if needs_rng else None
        if self.augmenter is not None and x.ndim == 1:
            x = self.augmenter(x, rng=rng, fs_hz=self.arrays.fs_hz)
        elif self.augmenter is not None:
            # (n_leads, T): every lead gets the same draws, so the record is transformed as
            # one (same stretch, same shifts); the crop then continues the last lead's stream.
            leads = []
            for lead in x:
                rng = _rng(self.seed, self.epoch, _ITEM_STREAM, index)
                leads.append(self.augmenter(lead, rng=rng, fs_hz=self.arrays.fs_hz))
            x = np.stack(leads)
        if self.crop_samples is not None and x.shape[-1] > self.crop_samples:
            spare = x.shape[-1] - self.crop_samples
            start = int(rng.integers(0, spare + 1)) if self.random_crop else spare // 2
            x = x[..., start : start + self.crop_samples]
        return {"x": self.normalize(x), "y": int(self.arrays.labels[index]), "index": index}


def _as_indices(indices: Sequence[int] | np.ndarray, *, n_records: int) -> np.ndarray:
    out = np.asarray(indices, dtype=np.int64).reshape(-1)
    if out.size and (out.min() < 0 or out.max() >= n_records):
        raise ValueError(f"indices must lie in [0, {n_records}), got {out.min()}..{out.max()}")
    return out


@dataclass(frozen=True)
class PadCollate:
    """Stacks items into a batch dict, zero-padding each row after its real samples.

    Attributes:
        length: every batch is padded to this many samples (items must not be longer);
            None pads each batch to its longest item.
    """

    length: int | None = None

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = np.array([item["x"].shape[-1] for item in items], dtype=np.int64)
        width = self.length if self.length is not None else int(lengths.max(initial=0))
        n_leads = max((1 if item["x"].ndim == 1 else item["x"].shape[0]) for item in items)
        x = np.zeros((len(items), n_leads, width), dtype=np.float32)  # (B, leads, T)
        for row, item in enumerate(items):
            x[row, :, : lengths[row]] = item["x"]  # (T,) broadcasts over the one lead
        return {
            "x": torch.from_numpy(x),
            "lengths": torch.from_numpy(lengths),
            "y": torch.tensor([item["y"] for item in items], dtype=torch.int64),
            "index": torch.tensor([item["index"] for item in items], dtype=torch.int64),
        }


def _chunks(order: np.ndarray, size: int) -> list[list[int]]:
    return [order[i : i + size].tolist() for i in range(0, len(order), size)]


class ShuffledBatches(Sampler[list[int]]):
    """Batches of item positions in a seeded random order (or in order when not shuffling).

    Every position appears once; only the last batch may be short.
    """

    def __init__(self, n_items: int, *, batch_size: int, shuffle: bool, seed: int, epoch: int):
        _check_seed(seed, epoch)
        self.n_items = n_items
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches, recomputed identically on every call."""
        if self.shuffle:
            order = _rng(self.seed, self.epoch, _ORDER_STREAM).permutation(self.n_items)
        else:
            order = np.arange(self.n_items)
        return _chunks(order, self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)


class LengthBuckets(Sampler[list[int]]):
    """Batches of item positions with similar record lengths.

    Positions are sorted by length (ties broken at random when shuffling) and cut into buckets
    of ``bucket_size``; when shuffling, each bucket is shuffled before being cut into batches
    and the batches of all buckets are then shuffled together. Without shuffling the batches
    run from shortest to longest. Every position appears once; only the batch holding the
    longest records may be short.

    Args:
        lengths: samples per item.
        batch_size: items per batch.
        bucket_size: items per bucket, a multiple of ``batch_size``; larger buckets mix more
            lengths per batch (more randomness, more padding).
        shuffle: randomize (seeded by ``seed`` and ``epoch``).
        seed: base seed.
        epoch: mixed into the seed so that each epoch has its own order.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        *,
        batch_size: int,
        bucket_size: int,
        shuffle: bool,
        seed: int,
        epoch: int,
    ):
        _check_seed(seed, epoch)
        if bucket_size < batch_size or bucket_size % batch_size:
            raise ValueError(
                f"bucket_size must be a positive multiple of batch_size={batch_size}, "
                f"got {bucket_size}"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.bucket_size = bucket_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches, recomputed identically on every call."""
        if not self.shuffle:
            return _chunks(np.argsort(self.lengths, kind="stable"), self.batch_size)
        rng = _rng(self.seed, self.epoch, _ORDER_STREAM)
        order = np.lexsort((rng.random(len(self.lengths)), self.lengths))
        batches: list[list[int]] = []
        for start in range(0, len(order), self.bucket_size):
            members = rng.permutation(order[start : start + self.bucket_size])
            batches.extend(_chunks(members, self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


@dataclass(frozen=True)
class BatchingOptions:
    """What a batching mode may use to plan an epoch (each mode reads the fields it needs)."""

    lengths: np.ndarray
    fs_hz: float
    batch_size: int
    shuffle: bool
    seed: int
    epoch: int
    fixed_length_s: float
    crop_s: float
    bucket_size: int


@dataclass(frozen=True)
class BatchingPlan:
    """How one epoch is batched: which items go together, and how rows are cut and padded.

    Attributes:
        batch_sampler: yields lists of item positions.
        crop_samples: the `EcgDataset` crops longer records to this; None keeps them whole.
        random_crop: crop at random offsets (else centred).
        pad_to: batch width in samples; None pads each batch to its longest row.
    """

    batch_sampler: Sampler[list[int]]
    crop_samples: int | None
    random_crop: bool
    pad_to: int | None


def _samples(seconds: float, fs_hz: float, name: str) -> int:
    n = round(seconds * fs_hz)
    if n < 1:
        raise ValueError(f"{name} must span at least one sample, got {seconds} s at {fs_hz} Hz")
    return n


def pad_fixed(options: BatchingOptions) -> BatchingPlan:
    """Every row padded to ``fixed_length_s`` (longer records centre-cropped)."""
    width = _samples(options.fixed_length_s, options.fs_hz, "fixed_length_s")
    sampler = ShuffledBatches(
        len(options.lengths),
        batch_size=options.batch_size,
        shuffle=options.shuffle,
        seed=options.seed,
        epoch=options.epoch,
    )
    return BatchingPlan(batch_sampler=sampler, crop_samples=width, random_crop=False, pad_to=width)


def bucket(options: BatchingOptions) -> BatchingPlan:
    """Length-bucketed batches, each padded to its own longest record; nothing is cropped."""
    size = options.bucket_size or _AUTO_BUCKET_BATCHES * options.batch_size
    sampler = LengthBuckets(
        options.lengths,
        batch_size=options.batch_size,
        bucket_size=size,
        shuffle=options.shuffle,
        seed=options.seed,
        epoch=options.epoch,
    )
    return BatchingPlan(batch_sampler=sampler, crop_samples=None, random_crop=False, pad_to=None)


def crop(options: BatchingOptions) -> BatchingPlan:
    """Windows of ``crop_s``: random when shuffling, centred otherwise; short records padded."""
    width = _samples(options.crop_s, options.fs_hz, "crop_s")
    sampler = ShuffledBatches(
        len(options.lengths),
        batch_size=options.batch_size,
        shuffle=options.shuffle,
        seed=options.seed,
        epoch=options.epoch,
    )
    return BatchingPlan(
        batch_sampler=sampler, crop_samples=width, random_crop=options.shuffle, pad_to=width
    )


BATCHING: Mapping[str, Callable[[BatchingOptions], BatchingPlan]] = MappingProxyType(
    {"pad_fixed": pad_fixed, "bucket": bucket, "crop": crop}
)
"""Batching mode name (as written in configs) -> planner. Read-only."""


def batching_mode(name: str) -> Callable[[BatchingOptions], BatchingPlan]:
    """The planner registered as ``name``; raises ValueError listing the known names."""
    try:
        return BATCHING[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown batching {name!r}; known: {', '.join(sorted(BATCHING))}"
        ) from None


def make_loader(
    *,
    arrays: EcgArrays,
    indices: Sequence[int] | np.ndarray,
    batching: str,
    batch_size: int,
    shuffle: bool,
    seed: int,
    normalization: str | Normalizer = "zscore",
    augment: Mapping[str, Mapping[str, Any]] | None = None,
    fixed_length_s: float = 61.0,
    crop_s: float = 30.0,
    bucket_size: int = 0,
    num_workers: int = 0,
    epoch: int = 0,
) -> DataLoader:
    """A `DataLoader` over records ``indices`` of ``arrays`` for one epoch.

    Build one loader per epoch (cheap): order, crops and augmentations are fixed by
    ``(seed, epoch)``, so the same arguments always give the same batches and another epoch
    gives others. Every index appears exactly once per epoch (no batch is dropped).

    Args:
        arrays: the data set (already resampled to the model's rate).
        indices: records to serve, e.g. one fold's training indices.
        batching: a name in `BATCHING` (``pad_fixed``, ``bucket``, ``crop``).
        batch_size: records per batch.
        shuffle: random order (training); False gives a fixed order and centred crops.
        seed: base seed of order, crops and augmentations (>= 0).
        normalization: a name in `data_io.preprocess.NORMALIZERS`, or a normalizer.
        augment: JSON config for `Augmenter.from_config`; None means no augmentation.
        fixed_length_s: row length for ``pad_fixed``.
        crop_s: window length for ``crop``.
        bucket_size: records per bucket for ``bucket`` (a multiple of ``batch_size``);
            0 means 8 batches.
        num_workers: loader worker processes (results do not depend on it).
        epoch: epoch number (>= 0), mixed into every seed.

    Raises:
        ValueError: unknown batching, normalization or augmentation names, or bad sizes.
    """
    planner = batching_mode(batching)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    augmenter = Augmenter.from_config(augment)
    index_array = _as_indices(indices, n_records=len(arrays))
    plan = planner(
        BatchingOptions(
            lengths=arrays.lengths[index_array],
            fs_hz=arrays.fs_hz,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            fixed_length_s=fixed_length_s,
            crop_s=crop_s,
            bucket_size=bucket_size,
        )
    )
    dataset = EcgDataset(
        arrays,
        index_array,
        normalization=normalization,
        augmenter=augmenter,
        crop_samples=plan.crop_samples,
        random_crop=plan.random_crop,
        seed=seed,
        epoch=epoch,
    )
    return DataLoader(
        dataset,
        batch_sampler=plan.batch_sampler,
        collate_fn=PadCollate(length=plan.pad_to),
        num_workers=num_workers,
    )


def padding_fraction(
    lengths: np.ndarray | Sequence[int],
    batches: Iterable[Sequence[int]],
    *,
    pad_to: int | None = None,
) -> float:
    """Fraction of computed samples that are padding when ``batches`` are built.

    Args:
        lengths: real samples per item; ``batches`` hold positions into it.
        batches: lists of item positions, e.g. ``sampler.batches()``.
        pad_to: fixed batch width (longer items count as cropped to it); None pads each batch
            to its longest item.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    real = padded = 0
    for batch in batches:
        rows = lengths[np.asarray(batch, dtype=np.int64)]
        if pad_to is not None:
            rows = np.minimum(rows, pad_to)
        real += int(rows.sum())
        padded += len(rows) * (pad_to if pad_to is not None else int(rows.max(initial=0)))
    return 1.0 - real / padded if padded else 0.0


def loader_padding_fraction(loader: DataLoader) -> float:
    """`padding_fraction` of a `make_loader` loader, from its plan alone (no data is read).

    Uses stored record lengths, so length-changing augmentation (``time_stretch``) is ignored.
    """
    return padding_fraction(
        loader.dataset.record_lengths,
        loader.batch_sampler.batches(),
        pad_to=loader.collate_fn.length,
    )
