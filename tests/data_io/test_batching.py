"""Tests for data_io.batching: the three batching modes, determinism and padding accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_io.batching import (
    BATCHING,
    LengthBuckets,
    loader_padding_fraction,
    make_loader,
    padding_fraction,
)
from data_io.datasets import load_dataset
from data_io.preprocess import zscore
from data_io.records import EcgArrays, pack_records

CINC_CLASSES = load_dataset("cinc2017").labels

FS_HZ = 50.0  # low rate keeps the tests fast; lengths in seconds are CinC's
GAIN = 1000.0
FIXED_S, CROP_S = 61.0, 20.0
AUGMENT = {
    "time_stretch": {"p": 0.5},
    "amplitude_scale": {"p": 0.5},
    "noise": {"p": 0.5, "snr_db": 20},
}


def _cinc_like(n: int, *, seed: int = 0) -> EcgArrays:
    """70% of records exactly 30 s, the rest 9-61 s; no sample is zero."""
    rng = np.random.default_rng(seed)
    seconds = np.where(rng.random(n) < 0.7, 30.0, rng.uniform(9.0, 61.0, n))
    signals = []
    for s in seconds:
        samples = round(s * FS_HZ)
        digital = 500 + np.abs(rng.normal(0, 200, samples)) + 1  # offset: padding is visible
        signals.append(digital.astype(np.int16))
    return pack_records(
        digital_signals=signals,
        record_ids=[f"A{i:05d}" for i in range(n)],
        labels=rng.integers(0, len(CINC_CLASSES), n).tolist(),
        classes=CINC_CLASSES,
        fs_hz=FS_HZ,
        adc_gain=GAIN,
    )


@pytest.fixture(scope="module")
def arrays() -> EcgArrays:
    return _cinc_like(80)


@pytest.fixture(scope="module")
def indices() -> np.ndarray:
    return np.array([i for i in range(80) if i % 7 != 3])  # a fold: not every record


def _batches(arrays: EcgArrays, indices: np.ndarray, **options) -> list[dict[str, torch.Tensor]]:
    defaults = {"batch_size": 8, "shuffle": True, "seed": 1, "crop_s": CROP_S}
    loader = make_loader(arrays=arrays, indices=indices, **{**defaults, **options})
    return list(loader)


def _expected_width(batching: str, lengths: torch.Tensor) -> int:
    widths = {
        "pad_fixed": round(FIXED_S * FS_HZ),
        "crop": round(CROP_S * FS_HZ),
        "bucket": int(lengths.max()),
    }
    return widths[batching]


@pytest.mark.parametrize("batching", sorted(BATCHING))
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_have_the_documented_shapes_lengths_and_zero_padding(
    arrays: EcgArrays, indices: np.ndarray, batching: str, shuffle: bool
) -> None:
    limit = {"pad_fixed": round(FIXED_S * FS_HZ), "crop": round(CROP_S * FS_HZ), "bucket": None}
    for batch in _batches(arrays, indices, batching=batching, shuffle=shuffle):
        x, lengths, y, index = batch["x"], batch["lengths"], batch["y"], batch["index"]
        n = len(index)
        assert 1 <= n <= 8
        assert x.dtype == torch.float32 and x.shape == (n, 1, _expected_width(batching, lengths))
        assert lengths.dtype == y.dtype == index.dtype == torch.int64
        assert lengths.shape == y.shape == (n,)
        stored = arrays.lengths[index.numpy()]
        cap = limit[batching]
        want = stored if cap is None else np.minimum(stored, cap)
        np.testing.assert_array_equal(lengths.numpy(), want)
        np.testing.assert_array_equal(y.numpy(), arrays.labels[index.numpy()])
        for row in range(n):
            real = x[row, 0, : lengths[row]]
            assert (real != 0).all()  # the fixture has no zero sample: real data is nonzero
            assert (x[row, 0, lengths[row] :] == 0).all()


@pytest.mark.parametrize("batching", sorted(BATCHING))
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_appears_exactly_once_per_epoch(
    arrays: EcgArrays, indices: np.ndarray, batching: str, shuffle: bool
) -> None:
    for epoch in (0, 1):
        batches = _batches(
            arrays, indices, batching=batching, shuffle=shuffle, epoch=epoch, augment=AUGMENT
        )
        seen = torch.cat([b["index"] for b in batches]).numpy()
        assert sorted(seen.tolist()) == sorted(indices.tolist())
        assert sum(len(b["index"]) < 8 for b in batches) <= 1  # only one short batch


@pytest.mark.parametrize("batching", sorted(BATCHING))
def test_same_seed_and_epoch_give_the_same_batches_and_another_epoch_others(
    arrays: EcgArrays, indices: np.ndarray, batching: str
) -> None:
    def run(*, seed: int, epoch: int) -> list[dict[str, torch.Tensor]]:
        return _batches(arrays, indices, batching=batching, seed=seed, epoch=epoch, augment=AUGMENT)

    first, again = run(seed=5, epoch=2), run(seed=5, epoch=2)
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):
        for key in ("x", "lengths", "y", "index"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)

    def order(batches: list[dict[str, torch.Tensor]]) -> list[int]:
        return torch.cat([b["index"] for b in batches]).tolist()

    assert order(run(seed=5, epoch=3)) != order(first)
    assert order(run(seed=6, epoch=2)) != order(first)


def test_results_do_not_depend_on_the_number_of_workers(
    arrays: EcgArrays, indices: np.ndarray
) -> None:
    options = {"batching": "crop", "augment": AUGMENT, "epoch": 1}
    alone = _batches(arrays, indices, num_workers=0, **options)
    workers = _batches(arrays, indices, num_workers=2, **options)
    for a, b in zip(alone, workers, strict=True):
        torch.testing.assert_close(a["x"], b["x"], rtol=0, atol=0)
        torch.testing.assert_close(a["index"], b["index"], rtol=0, atol=0)


def test_bucket_rows_are_the_normalized_records(arrays: EcgArrays, indices: np.ndarray) -> None:
    for batch in _batches(arrays, indices, batching="bucket"):
        for row, index in enumerate(batch["index"].tolist()):
            want = zscore(arrays.signal(index))
            np.testing.assert_allclose(batch["x"][row, 0, : len(want)].numpy(), want, atol=1e-6)


def test_pad_fixed_without_normalization_keeps_millivolts(
    arrays: EcgArrays, indices: np.ndarray
) -> None:
    batches = _batches(arrays, indices, batching="pad_fixed", shuffle=False, normalization="none")
    assert torch.cat([b["index"] for b in batches]).tolist() == indices.tolist()
    for batch in batches:
        for row, index in enumerate(batch["index"].tolist()):
            want = arrays.signal(index)
            np.testing.assert_array_equal(batch["x"][row, 0, : len(want)].numpy(), want)


def test_crop_is_centred_without_shuffle_and_random_with_it(
    arrays: EcgArrays, indices: np.ndarray
) -> None:
    width = round(CROP_S * FS_HZ)
    long = [i for i in indices.tolist() if arrays.lengths[i] > width + 100]
    assert long

    def starts(*, shuffle: bool, epoch: int) -> dict[int, int]:
        found = {}
        batches = _batches(
            arrays, indices, batching="crop", shuffle=shuffle, epoch=epoch, normalization="none"
        )
        for batch in batches:
            for row, index in enumerate(batch["index"].tolist()):
                if index in long:
                    window = batch["x"][row, 0].numpy()
                    signal = arrays.signal(index)
                    hits = [
                        s
                        for s in range(len(signal) - width + 1)
                        if np.array_equal(signal[s : s + width], window)
                    ]
                    assert hits, f"row of record {index} is not a window of it"
                    found[index] = hits[0]
        return found

    centred = starts(shuffle=False, epoch=0)
    assert centred == {i: (arrays.lengths[i] - width) // 2 for i in long}
    assert starts(shuffle=False, epoch=1) == centred
    random0, random1 = starts(shuffle=True, epoch=0), starts(shuffle=True, epoch=1)
    assert random0 != centred and random0 != random1


def test_bucket_padding_is_far_below_pad_fixed_on_a_cinc_like_mix() -> None:
    arrays = _cinc_like(400, seed=1)
    common = {
        "arrays": arrays,
        "indices": np.arange(len(arrays)),
        "batch_size": 8,
        "shuffle": True,
        "seed": 0,
    }
    fixed = make_loader(batching="pad_fixed", **common)
    small_buckets = make_loader(batching="bucket", bucket_size=16, **common)
    auto_buckets = make_loader(batching="bucket", **common)
    fixed_fraction = loader_padding_fraction(fixed)
    # 70% of records are 30 s of a 61 s row: about half of pad_fixed's samples are padding.
    assert 0.4 < fixed_fraction < 0.6
    assert loader_padding_fraction(small_buckets) < 0.1 * fixed_fraction
    assert loader_padding_fraction(auto_buckets) < 0.25 * fixed_fraction
    # The plan's figure is what the batches really hold.
    for loader in (fixed, small_buckets, auto_buckets):
        batches = list(loader)
        real = sum(int(b["lengths"].sum()) for b in batches)
        total = sum(b["x"].numel() for b in batches)
        assert 1 - real / total == pytest.approx(loader_padding_fraction(loader))


def test_bucket_order_without_shuffle_runs_from_short_to_long(
    arrays: EcgArrays, indices: np.ndarray
) -> None:
    batches = _batches(arrays, indices, batching="bucket", shuffle=False)
    lengths = torch.cat([b["lengths"] for b in batches]).numpy()
    assert (np.diff(lengths) >= 0).all()


def test_length_buckets_shuffle_within_buckets_only() -> None:
    lengths = np.repeat([100, 200, 300, 400], 16)
    sampler = LengthBuckets(lengths, batch_size=4, bucket_size=16, shuffle=True, seed=0, epoch=0)
    batches = sampler.batches()
    assert len(batches) == len(sampler) == 16
    assert all(len(set(lengths[b])) == 1 for b in batches)  # buckets never mix here
    # The batches of all buckets are shuffled together: not shortest first.
    assert [lengths[b[0]] for b in batches] != sorted(lengths[b[0]] for b in batches)
    assert sampler.batches() == batches
    other = LengthBuckets(lengths, batch_size=4, bucket_size=16, shuffle=True, seed=0, epoch=1)
    assert other.batches() != batches


def test_padding_fraction_counts_padded_samples() -> None:
    lengths = [10, 5, 8, 8]
    assert padding_fraction(lengths, [[0, 1], [2, 3]]) == pytest.approx(1 - 31 / 36)
    assert padding_fraction(lengths, [[0, 1, 2, 3]], pad_to=8) == pytest.approx(1 - 29 / 32)
    assert padding_fraction(lengths, []) == 0.0


def test_unknown_batching_lists_the_known_modes(arrays: EcgArrays) -> None:
    with pytest.raises(ValueError, match=r"'sorted'.*bucket, crop, pad_fixed"):
        make_loader(
            arrays=arrays, indices=[0], batching="sorted", batch_size=2, shuffle=False, seed=0
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batching": "bucket", "bucket_size": 12}, "bucket_size"),
        ({"batching": "crop", "indices": [0, 80]}, "indices"),
        ({"batching": "crop", "normalization": "minmax"}, "minmax"),
        ({"batching": "crop", "augment": {"mixup": {}}}, "mixup"),
        ({"batching": "crop", "batch_size": 0}, "batch_size"),
        ({"batching": "crop", "seed": -1}, "seed"),
        ({"batching": "crop", "crop_s": 0.001}, "crop_s"),
    ],
)
def test_bad_options_fail_with_a_clear_message(
    arrays: EcgArrays, options: dict, message: str
) -> None:
    arguments = {"arrays": arrays, "indices": [0, 1], "batch_size": 8, "shuffle": True, "seed": 0}
    with pytest.raises(ValueError, match=message):
        make_loader(**{**arguments, **options})
