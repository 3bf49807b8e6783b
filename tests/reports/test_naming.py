"""Parameters read as words in every report: each space's parameters have a name."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.naming import parameter_name, parameter_names, with_parameter_words
from search_spaces import describe_space, space_names


@pytest.mark.parametrize("space", space_names())
def test_every_parameter_of_every_space_has_words(space):
    sampled = describe_space(space, n_samples=100)["parameters"]
    missing = sorted(set(sampled) - set(parameter_names()))
    assert missing == [], f"add {missing} to reports/parameter_names.json"


def test_names_are_words_and_unknown_ones_fall_back_to_their_last_part():
    assert parameter_name("model/depth") == "CNN depth"
    assert parameter_name("model/new_knob") == "new knob"
    framed = with_parameter_words(pd.DataFrame({"parameter": ["optim/lr"], "x": [1]}))
    assert framed.columns.tolist() == ["parameter", "name", "x"]
    assert framed["name"].tolist() == ["learning rate"]
