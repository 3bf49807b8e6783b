"""The explanation settings: defaults, and the cheaper ones a --smoke study uses."""

from __future__ import annotations

from study.explain.explanation_methods import load_settings, merge_settings, smoke_overrides


def test_smoke_settings_are_known_options_and_cheaper_than_the_defaults():
    defaults = load_settings()
    smoke = merge_settings(smoke_overrides())  # raises on an unknown method or option
    assert smoke_overrides(), "no smoke overrides"
    # Occlusion forward passes per record scale with 1 / stride; its map's blur with the window.
    assert smoke["occlusion"]["stride_s"] > defaults["occlusion"]["stride_s"]
    assert smoke["occlusion"]["window_s"] >= smoke["occlusion"]["stride_s"]
    for method in ("integrated_gradients", "shift_perturbation"):
        assert 0 < smoke[method]["steps"] < defaults[method]["steps"]
    # Options not overridden keep their defaults.
    assert smoke["occlusion"]["baseline"] == defaults["occlusion"]["baseline"]
    assert smoke["shift_perturbation"]["lr"] == defaults["shift_perturbation"]["lr"]
