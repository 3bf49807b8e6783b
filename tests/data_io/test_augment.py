"""Tests for data_io.augment: each augmentation's effect, the registry and `Augmenter`."""

from __future__ import annotations

import numpy as np
import pytest

from data_io.augment import AUGMENTATIONS, Augmenter, augmentation_params

FS_HZ = 100.0


@pytest.fixture
def x() -> np.ndarray:
    """10 s at 100 Hz: a 1 Hz sine on a 2 mV offset (no sample is naturally zero)."""
    t_s = np.arange(1000) / FS_HZ
    return (2.0 + np.sin(2 * np.pi * 1.0 * t_s)).astype(np.float32)


FIXED = {"band_pass"}
"""Augmentations that draw nothing (a fixed filter applied with probability p)."""


def _in_registry_order(config: dict) -> tuple[str, ...]:
    return tuple(name for name in AUGMENTATIONS if name in config)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_augmentation_changes_the_record_reproducibly_and_leaves_input(
    name: str, x: np.ndarray
) -> None:
    before = x.copy()
    out = AUGMENTATIONS[name](x, rng=_rng(3), fs_hz=FS_HZ)
    again = AUGMENTATIONS[name](x, rng=_rng(3), fs_hz=FS_HZ)
    other = AUGMENTATIONS[name](x, rng=_rng(4), fs_hz=FS_HZ)
    assert out.dtype == np.float32
    assert out.ndim == 1
    np.testing.assert_array_equal(x, before)
    assert out.shape != x.shape or not np.array_equal(out, x)
    np.testing.assert_array_equal(out, again)
    if name in FIXED:
        np.testing.assert_array_equal(out, other)
    else:
        assert out.shape != other.shape or not np.array_equal(out, other)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_p_zero_leaves_the_record_unchanged(name: str, x: np.ndarray) -> None:
    augmenter = Augmenter.from_config({name: {"p": 0.0}})
    assert augmenter.is_identity
    for seed in range(20):
        np.testing.assert_array_equal(augmenter(x, rng=_rng(seed), fs_hz=FS_HZ), x)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_augmentation_documents_its_parameters(name: str) -> None:
    params = augmentation_params(name)
    assert params  # something to tune
    assert "rng" not in params and "fs_hz" not in params
    assert AUGMENTATIONS[name].__doc__


def test_amplitude_scale_multiplies_by_one_gain_in_range(x: np.ndarray) -> None:
    gains = []
    for seed in range(50):
        out = AUGMENTATIONS["amplitude_scale"](x, rng=_rng(seed), fs_hz=FS_HZ, low=0.5, high=0.7)
        ratio = out / x
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
        gains.append(ratio[0])
    assert 0.5 <= min(gains) < 0.55 and 0.65 < max(gains) <= 0.7


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_noise_std_follows_the_snr_relative_to_the_record(x: np.ndarray, snr_db: float) -> None:
    for scale in (1.0, 10.0):  # the same SNR whatever the gain
        signal = x * scale
        out = AUGMENTATIONS["noise"](signal, rng=_rng(0), fs_hz=FS_HZ, snr_db=snr_db)
        residual = out - signal
        expected = float(signal.std()) / 10 ** (snr_db / 20)
        assert float(residual.std()) == pytest.approx(expected, rel=0.1)
        assert abs(float(residual.mean())) < 0.15 * expected


def test_noise_leaves_a_constant_record_unchanged() -> None:
    flat = np.full(200, 1.5, dtype=np.float32)
    np.testing.assert_array_equal(AUGMENTATIONS["noise"](flat, rng=_rng(0), fs_hz=FS_HZ), flat)


def test_baseline_wander_adds_a_slow_bounded_drift(x: np.ndarray) -> None:
    amplitude_mv, max_freq_hz, n_components = 0.3, 0.5, 3
    for seed in range(10):
        drift = (
            AUGMENTATIONS["baseline_wander"](
                x,
                rng=_rng(seed),
                fs_hz=FS_HZ,
                amplitude_mv=amplitude_mv,
                max_freq_hz=max_freq_hz,
                n_components=n_components,
            )
            - x
        ).astype(np.float64)
        assert np.abs(drift).max() > 1e-3
        assert np.abs(drift).max() <= n_components * amplitude_mv + 1e-5
        # |d/dt sum a_k sin(2 pi f_k t)| <= 2 pi f_max sum a_k: a slow drift, nothing faster.
        max_step = 2 * np.pi * max_freq_hz * n_components * amplitude_mv / FS_HZ
        assert np.abs(np.diff(drift)).max() <= max_step + 1e-5


def test_baseline_wander_rejects_frequencies_at_or_above_nyquist(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match="max_freq_hz"):
        AUGMENTATIONS["baseline_wander"](x, rng=_rng(0), fs_hz=FS_HZ, max_freq_hz=60.0)


def test_time_stretch_changes_length_and_rhythm_by_the_factor(x: np.ndarray) -> None:
    out = AUGMENTATIONS["time_stretch"](x, rng=_rng(0), fs_hz=FS_HZ, low=1.1, high=1.1)
    assert len(out) == 1100
    # A 1 Hz sine stretched by 1.1 becomes a (1 / 1.1) Hz sine over the same span.
    t_s = np.linspace(0.0, 999 / FS_HZ, 1100)
    np.testing.assert_allclose(out, 2.0 + np.sin(2 * np.pi * t_s), atol=1e-3)
    lengths = {len(AUGMENTATIONS["time_stretch"](x, rng=_rng(s), fs_hz=FS_HZ)) for s in range(30)}
    assert min(lengths) >= 900 and max(lengths) <= 1100 and len(lengths) > 5
    unit = AUGMENTATIONS["time_stretch"](x, rng=_rng(0), fs_hz=FS_HZ, low=1.0, high=1.0)
    np.testing.assert_allclose(unit, x, atol=1e-6)


def test_cutout_zeroes_windows_of_bounded_length_and_nothing_else(x: np.ndarray) -> None:
    for seed in range(20):
        out = AUGMENTATIONS["cutout"](x, rng=_rng(seed), fs_hz=FS_HZ, max_window_s=0.5)
        changed = np.flatnonzero(out != x)
        assert 1 <= len(changed) <= 50
        assert (out[changed] == 0).all()
        assert (np.diff(changed) == 1).all()  # one contiguous window
    two = AUGMENTATIONS["cutout"](x, rng=_rng(0), fs_hz=FS_HZ, n_windows=2, max_window_s=0.5)
    assert 1 <= int((two == 0).sum()) <= 100


@pytest.mark.parametrize("circular", [True, False])
def test_shift_moves_the_record_by_at_most_max_shift(x: np.ndarray, circular: bool) -> None:
    x = x + np.arange(len(x), dtype=np.float32) * 1e-3  # make every lag distinguishable
    lags = set()
    for seed in range(20):
        out = AUGMENTATIONS["shift"](
            x, rng=_rng(seed), fs_hz=FS_HZ, max_shift_s=0.5, circular=circular
        )
        assert out.shape == x.shape
        matches = []
        for lag in range(-50, 51):
            if circular:
                want = np.roll(x, lag)
            else:
                want = np.zeros_like(x)
                if lag >= 0:
                    want[lag:] = x[: len(x) - lag]
                else:
                    want[:lag] = x[-lag:]
            if np.array_equal(out, want):
                matches.append(lag)
        assert len(matches) == 1, f"not a shift by at most 50 samples (seed {seed})"
        lags.add(matches[0])
    assert len(lags) > 5 and min(lags) < 0 < max(lags)


def test_empty_or_missing_config_is_the_identity(x: np.ndarray) -> None:
    for config in (None, {}):
        augmenter = Augmenter.from_config(config)
        assert augmenter.is_identity and augmenter.names == ()
        out = augmenter(x, rng=_rng(0), fs_hz=FS_HZ)
        np.testing.assert_array_equal(out, x)
        assert out is not x


def test_config_applies_each_step_with_its_probability(x: np.ndarray) -> None:
    augmenter = Augmenter.from_config({"amplitude_scale": {"p": 0.3, "low": 2.0, "high": 3.0}})
    fired = sum(
        not np.array_equal(augmenter(x, rng=_rng(seed), fs_hz=FS_HZ), x) for seed in range(400)
    )
    assert 0.22 < fired / 400 < 0.38


def test_config_is_reproducible_and_independent_of_key_order(x: np.ndarray) -> None:
    steps = {
        "noise": {"p": 1.0, "snr_db": 15},
        "amplitude_scale": {"p": 1.0, "low": 0.8, "high": 1.2},
        "time_stretch": {"p": 0.5},
        "cutout": {"p": 1.0, "n_windows": 2},
    }
    forward = Augmenter.from_config(steps)
    backward = Augmenter.from_config(dict(reversed(steps.items())))
    assert forward.names == backward.names == _in_registry_order(steps)
    for seed in range(5):
        a = forward(x, rng=_rng(seed), fs_hz=FS_HZ)
        np.testing.assert_array_equal(a, forward(x, rng=_rng(seed), fs_hz=FS_HZ))
        np.testing.assert_array_equal(a, backward(x, rng=_rng(seed), fs_hz=FS_HZ))
    assert not np.array_equal(
        forward(x, rng=_rng(0), fs_hz=FS_HZ), forward(x, rng=_rng(1), fs_hz=FS_HZ)
    )


def test_unknown_augmentation_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'mixup'.*amplitude_scale"):
        Augmenter.from_config({"mixup": {"p": 0.5}})


def test_unknown_parameter_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'noise'.*'snr'.*snr_db"):
        Augmenter.from_config({"noise": {"p": 0.5, "snr": 20}})


@pytest.mark.parametrize(
    "config",
    [
        {"noise": {"p": 1.5}},
        {"amplitude_scale": {"low": 1.2, "high": 0.8}},
        {"shift": {"max_shift_s": -1}},
        {"baseline_wander": {"amplitude_mv": "large"}},
    ],
)
def test_bad_values_fail_when_the_config_is_read(config: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(config))):
        Augmenter.from_config(config)


# ---------------------------------------------------------------------------------------------
# the transforms ECG-DualNet's pipeline adds, and named pipelines


def test_time_warp_keeps_length_and_ends_and_moves_the_middle(x: np.ndarray) -> None:
    ramp = np.linspace(0.0, 1.0, 1001).astype(np.float32)
    out = AUGMENTATIONS["time_warp"](ramp, rng=_rng(0), fs_hz=FS_HZ, max_offset=0.05)
    assert out.shape == ramp.shape
    # On a ramp the output is the warped read position: displaced by at most max_offset
    # half-durations, and still increasing (the warp never folds time back).
    assert np.abs(out - ramp).max() <= 0.05 / 2 + 1e-6
    assert np.abs(out - ramp).max() > 0.001
    assert (np.diff(out) >= 0).all()


def test_low_pass_removes_high_frequencies_and_keeps_low_ones() -> None:
    t_s = np.arange(3000) / 300.0
    slow = np.sin(2 * np.pi * 5.0 * t_s)
    fast = 0.5 * np.sin(2 * np.pi * 100.0 * t_s)
    out = AUGMENTATIONS["low_pass"]((slow + fast).astype(np.float32), rng=_rng(0), fs_hz=300.0,
                                    min_cutoff_hz=20.0, max_cutoff_hz=30.0)
    middle = slice(300, -300)  # away from the edges
    np.testing.assert_allclose(out[middle], slow[middle], atol=0.02)


def test_low_pass_cutoff_is_kept_below_nyquist(x: np.ndarray) -> None:
    # At 100 Hz a 60-80 Hz cutoff would be invalid; it is lowered to 45 Hz instead.
    out = AUGMENTATIONS["low_pass"](x, rng=_rng(0), fs_hz=FS_HZ, min_cutoff_hz=60.0,
                                    max_cutoff_hz=80.0)
    assert np.isfinite(out).all() and out.shape == x.shape


def test_sample_dropout_zeroes_the_rate_of_single_samples(x: np.ndarray) -> None:
    out = AUGMENTATIONS["sample_dropout"](x, rng=_rng(0), fs_hz=FS_HZ, rate=0.05)
    zeroed = out == 0
    assert zeroed.sum() == 50
    np.testing.assert_array_equal(out[~zeroed], x[~zeroed])


# ECG-DualNet's pipeline as published: AUGMENTATION_PIPELINE_CONFIG in ecg_classification/
# config.py (3694a7e) and the order of AugmentationPipeline.forward in augmentation.py. Sample
# counts are at its 300 Hz; the sine's 0.3 is in the raw ADC units its records are in (CinC:
# 1000 per mV), so 0.0003 mV here.
PUBLISHED_DUALNET = [
    ("cutout", {"p": 0.2, "n_windows": 1, "window_fraction": 0.05}),
    ("sample_dropout", {"p": 0.2, "rate": 0.03}),
    ("time_warp", {"p": 0.2, "max_offset": 0.075, "n_knots": 12}),
    ("time_stretch", {"p": 0.2, "low": 0.8, "high": 1.2}),
    ("amplitude_scale", {"p": 0.2, "low": 0.85, "high": 1.15}),
    ("delay", {"p": 0.2, "max_delay_s": 4000 / 300}),
    ("baseline_wander", {"p": 0.2, "amplitude_mv": 0.3 / 1000, "min_freq_hz": 0.2,
                         "max_freq_hz": 1.0, "n_components": 1}),
    ("band_pass", {"p": 0.2, "low_hz": 0.2, "high_hz": 45.0, "order": 10, "zero_phase": False}),
]


def test_the_dualnet_pipeline_has_the_published_values_in_the_published_order() -> None:
    stored = Augmenter.from_config({"pipeline": "ecg_dualnet"})
    assert stored.names == tuple(name for name, _ in PUBLISHED_DUALNET)
    for step, (name, options) in zip(stored.steps, PUBLISHED_DUALNET, strict=True):
        assert step.p == options["p"], name
        expected = {k: v for k, v in options.items() if k != "p"}
        assert step.params == pytest.approx(expected, rel=1e-6), name
    assert "noise" not in stored.names  # the published pipeline adds no Gaussian noise


def test_named_pipeline_expands_and_p_sets_every_step() -> None:
    augmenter = Augmenter.from_config({"pipeline": "ecg_dualnet", "p": 0.35})
    assert {step.p for step in augmenter.steps} == {0.35}
    stored = Augmenter.from_config({"pipeline": "ecg_dualnet"})
    assert stored.names == augmenter.names
    assert [s.params for s in stored.steps] == [s.params for s in augmenter.steps]


def test_a_list_config_applies_its_steps_in_its_own_order(x: np.ndarray) -> None:
    steps = [{"name": "delay", "max_delay_s": 2.0}, {"name": "cutout", "window_fraction": 0.1}]
    listed = Augmenter.from_config(steps)
    assert listed.names == ("delay", "cutout")
    reversed_order = Augmenter.from_config(steps[::-1])
    assert reversed_order.names == ("cutout", "delay")
    # Delay then cut out: the cut window is a fraction of the longer record and may fall on
    # the prepended zeros; cut out then delay: it is a fraction of the record itself.
    for seed in range(5):
        a = listed(x, rng=_rng(seed), fs_hz=FS_HZ)
        b = reversed_order(x, rng=_rng(seed), fs_hz=FS_HZ)
        lag_b = len(b) - len(x)
        assert (b[lag_b:] == 0).sum() == int(len(x) * 0.1)
        assert (a == 0).sum() >= int(len(a) * 0.1) > int(len(x) * 0.1)
    with pytest.raises(ValueError, match="needs 'name'"):
        Augmenter.from_config([{"p": 0.5}])


def test_delay_prepends_zeros_and_keeps_the_record(x: np.ndarray) -> None:
    lags = set()
    for seed in range(40):
        out = AUGMENTATIONS["delay"](x, rng=_rng(seed), fs_hz=FS_HZ, max_delay_s=0.5)
        lag = len(out) - len(x)
        lags.add(lag)
        assert (out[:lag] == 0).all()
        np.testing.assert_array_equal(out[lag:], x)
    assert min(lags) >= 0 and max(lags) <= 49 and len(lags) > 20  # [0, 50) samples


def test_cutout_of_a_fraction_zeroes_exactly_that_many_samples(x: np.ndarray) -> None:
    for seed in range(10):
        out = AUGMENTATIONS["cutout"](x, rng=_rng(seed), fs_hz=FS_HZ, window_fraction=0.05)
        zeroed = np.flatnonzero(out == 0)
        assert len(zeroed) == 50 and (np.diff(zeroed) == 1).all()


def test_band_pass_removes_the_offset_and_high_frequencies_causally() -> None:
    t_s = np.arange(6000) / 300.0
    beat = np.sin(2 * np.pi * 5.0 * t_s)
    record = (3.0 + beat + 0.5 * np.sin(2 * np.pi * 120.0 * t_s)).astype(np.float32)
    out = AUGMENTATIONS["band_pass"](record, rng=_rng(0), fs_hz=300.0, low_hz=0.2,
                                     high_hz=45.0, order=10, zero_phase=False)
    late = slice(3000, None)  # after the filter has settled
    assert abs(float(out[late].mean())) < 0.05  # the 3 mV offset is gone
    spectrum = np.abs(np.fft.rfft(out[late]))
    freqs = np.fft.rfftfreq(len(out[late]), 1 / 300.0)
    assert spectrum[np.argmin(abs(freqs - 120))] < 0.01 * spectrum[np.argmin(abs(freqs - 5))]
    # Causal: an impulse's response starts at the impulse, nothing before it.
    impulse = np.zeros(600, dtype=np.float32)
    impulse[300] = 1.0
    response = AUGMENTATIONS["band_pass"](impulse, rng=_rng(0), fs_hz=300.0, low_hz=0.2,
                                          high_hz=45.0, order=10, zero_phase=False)
    assert (response[:300] == 0).all() and abs(response[300:]).max() > 0


def test_named_pipeline_is_seeded_and_p_zero_is_the_identity(x: np.ndarray) -> None:
    augmenter = Augmenter.from_config({"pipeline": "ecg_dualnet", "p": 1.0})
    first = augmenter(x, rng=_rng(7), fs_hz=FS_HZ)
    np.testing.assert_array_equal(first, augmenter(x, rng=_rng(7), fs_hz=FS_HZ))
    assert first.shape != x.shape or not np.array_equal(first, augmenter(x, rng=_rng(8),
                                                                         fs_hz=FS_HZ))
    assert Augmenter.from_config({"pipeline": "ecg_dualnet", "p": 0.0}).is_identity


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pipeline": "nope"}, "unknown augmentation pipeline 'nope'; known: \\['ecg_dualnet'\\]"),
        ({"pipeline": "ecg_dualnet", "noise": {}}, "takes only 'p' beside it"),
        ({"pipeline": "ecg_dualnet", "p": 1.5}, "p must be in \\[0, 1\\]"),
    ],
)
def test_bad_pipeline_configs_raise(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augmenter.from_config(config)
