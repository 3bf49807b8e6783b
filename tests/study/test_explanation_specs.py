"""The explanation method specs: the shipped ones load and resolve, bad ones are named."""

from __future__ import annotations

import json
import re

import pytest

from study.explain.explanation_methods import computation
from study.explanation_specs import (
    SPECS_ENV,
    SpecError,
    map_specs,
    method_specs,
    producer,
    read_spec,
)
from study.tune.explanation_cost import cost_rule

SHIPPED = ("family", "shift_perturbation", "occlusion", "integrated_gradients")


def test_the_shipped_specs_load_in_gallery_order_and_their_computations_resolve():
    specs = method_specs()
    assert tuple(specs) == SHIPPED
    for spec in specs.values():
        assert callable(computation(spec)) and callable(cost_rule(spec))
        assert set(spec.smoke) <= set(spec.settings)
    assert producer("cam_registered") == "family" and producer("shift_mask") == SHIPPED[1]
    assert map_specs()["decision_over_time"].score is None  # shown, not scored


def _spec(**changes):
    spec = json.loads((method_specs()["occlusion"].path).read_text())
    return {**spec, "name": "toy", **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"order": "first"}, "order (str)"),
    ({"smoke": {"window": 1.0}}, "smoke overrides ['window']"),
    ({"compute": "no_colon"}, "not 'module:function'"),
    ({"runs_on": "some"}, "runs_on 'some'"),
    ({"colour": "red"}, "unknown fields ['colour']"),
    ({"maps": [{"name": "m", "keys": ["map/("], "panel": "line", "title": "m", "note": "",
                "score": None}]}, "not a regular expression"),
])
def test_a_bad_spec_is_refused_naming_its_file(tmp_path, changes, message):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(_spec(**changes)))
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        read_spec(path)
    assert str(path) in str(caught.value)


def test_an_extra_folder_adds_methods_and_may_not_redefine_one(tmp_path, monkeypatch):
    (tmp_path / "toy.json").write_text(json.dumps(_spec(order=99)))
    monkeypatch.setenv(SPECS_ENV, str(tmp_path))
    assert tuple(method_specs()) == (*SHIPPED, "toy")
    (tmp_path / "again.json").write_text(json.dumps(_spec(name="occlusion")))
    with pytest.raises(SpecError, match=r"already defined by .*occlusion\.json"):
        method_specs()
    monkeypatch.setenv(SPECS_ENV, str(tmp_path / "missing"))
    with pytest.raises(SpecError, match="no such folder"):
        method_specs()


def test_a_computation_that_cannot_be_imported_names_the_spec(tmp_path):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(_spec(compute="no_such_module:maps")))
    with pytest.raises(SpecError, match=r"toy\.json: cannot load compute"):
        computation(read_spec(path))
