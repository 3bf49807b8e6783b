"""Sanity-check numbers: deletion order and AUC, rank similarity, the per-method summary."""

from __future__ import annotations

import numpy as np
import pytest

from reports.explanation_sanity import (
    RANDOMISATION_FLAG,
    curve_auc,
    deletion_masks,
    rank_similarity,
    sanity_summary,
)


def test_deletion_blanks_the_most_relevant_real_samples_first():
    maps = np.array([[0.0, 5.0, 1.0, 3.0, 9.0, 9.0]])
    masks = deletion_masks(maps, np.array([4]), fractions=np.array([0.0, 0.5, 1.0]))
    assert masks.shape == (1, 3, 6)
    assert not masks[0, 0].any()
    assert masks[0, 1].tolist() == [False, True, False, True, False, False]  # 5 and 3
    assert masks[0, 2, :4].all() and not masks[0, 2, 4:].any()  # padding never blanked


def test_random_deletion_order_is_seeded_and_differs_from_the_map():
    maps = np.arange(100.0)[None]
    fractions = np.array([0.1])
    first = deletion_masks(maps, np.array([100]), fractions=fractions, seed=3)
    again = deletion_masks(maps, np.array([100]), fractions=fractions, seed=3)
    ordered = deletion_masks(maps, np.array([100]), fractions=fractions)
    assert np.array_equal(first, again) and first.sum() == ordered.sum() == 10
    assert not np.array_equal(first, ordered)
    assert ordered[0, 0, 90:].all()


def test_curve_auc_is_the_trapezoid_area():
    fractions = np.array([0.0, 0.5, 1.0])
    curves = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert curve_auc(curves, fractions) == pytest.approx([1.0, 0.25])


def test_rank_similarity_is_one_for_monotone_maps_and_nan_for_flat_ones():
    first = np.array([[1.0, 2.0, 3.0, 4.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    second = np.array([[10.0, 20.0, 30.0, 40.0, 99.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    similarity = rank_similarity(first, second, np.array([4, 5]))
    assert similarity[0] == pytest.approx(1.0)  # the padded 5th sample is ignored
    assert np.isnan(similarity[1])
    assert rank_similarity(first[:1], -first[:1], np.array([4]))[0] == pytest.approx(-1.0)


def test_summary_flags_a_method_whose_maps_survive_randomisation():
    fractions = np.array([0.0, 1.0])
    arrays = {
        "randomisation_stages": np.array(["head", "trunk.blocks.0"]),
        "deletion_fractions": fractions,
        "deletion_random": np.array([[1.0, 0.0], [1.0, 0.0]]),
        "randomisation/edge": np.array([[0.9, 0.95], [0.9, 0.9]]),
        "randomisation/cam": np.array([[0.2, 0.0], [0.1, 0.1]]),
        "deletion/edge": np.array([[1.0, 0.0], [1.0, 0.0]]),
        "deletion/cam": np.array([[0.2, 0.0], [0.0, 0.0]]),
    }
    summary = sanity_summary(arrays).set_index("method")
    assert bool(summary.loc["edge", "flagged"]) and not bool(summary.loc["cam", "flagged"])
    assert summary.loc["edge", "randomisation_similarity"] == pytest.approx(0.925)
    assert summary.loc["cam", "randomisation_similarity_top"] == pytest.approx(0.15)
    assert summary.loc["cam", "deletion_auc"] == pytest.approx(0.05)
    assert summary.loc["cam", "deletion_auc_random"] == pytest.approx(0.5)
    assert summary.loc["cam", "stages"] == "head > trunk.blocks.0"
    assert RANDOMISATION_FLAG < 0.925
