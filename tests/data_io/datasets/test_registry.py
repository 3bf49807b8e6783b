"""The data-set registry: every data set's facts load, are consistent and drive no branch."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from data_io.datasets import dataset_names, load_dataset
from data_io.errors import DatasetError

NAMES = dataset_names()
MITDB_RECORDS = {
    *(str(n) for n in range(100, 125) if n not in (110, 120)),
    *(str(n) for n in (200, 201, 202, 203, 205, 207, 208, 209, 210, 212, 213, 214, 215, 217,
                       219, 220, 221, 222, 223, 228, 230, 231, 232, 233, 234)),
}


def test_the_real_and_synthetic_sets_are_registered():
    assert {"cinc2017", "mitdb-beats", "mitdb-pvc-apb", "synthetic", "synthetic-mitdb-beats",
            "synthetic-mitdb-pvc-apb"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_facts_are_consistent(name):
    dataset = load_dataset(name)
    assert json.loads(json.dumps(dataset.describe()))["name"] == name
    assert len(set(dataset.labels)) == dataset.n_classes >= 2
    assert len({c.key for c in dataset.classes}) == dataset.n_classes
    metric = dataset.metric
    assert metric.key.startswith("val/") and metric.mode in ("max", "min")
    assert set(metric.classes) <= set(dataset.labels)
    assert dataset.n_leads is None or dataset.n_leads >= 1  # None: the folder decides
    assert dataset.fs_hz > 0 and dataset.n_folds >= 2
    assert dataset.resolve_options({}) == {k: v["default"]
                                           for k, v in dataset.facts.get("options", {}).items()}
    if dataset.synthetic is not None:
        twin = load_dataset(dataset.synthetic)
        assert twin.generates and twin.labels == dataset.labels
        assert twin.metric == dataset.metric


def test_synthetic_sets_inherit_their_base_facts():
    base, twin = load_dataset("mitdb-beats"), load_dataset("synthetic-mitdb-beats")
    assert twin.facts["splits"] == base.facts["splits"]
    # the published table too, so a synthetic study shows the published rows beside its own;
    # the table's protocol is only ever met on the real data sets it names
    assert twin.facts["published"] == base.facts["published"]
    assert twin.name not in base.facts["published"][0]["datasets"]
    cinc = load_dataset("cinc2017").facts["published"]
    assert cinc and load_dataset("synthetic").facts["published"] == cinc


def test_published_protocols_name_real_options_of_their_data_sets():
    # a published table's protocol as data: every option it names is one its data sets take
    for name in ("mitdb-beats", "mitdb-pvc-apb"):
        for entry in load_dataset(name).facts["published"]:
            for dataset in entry["datasets"]:
                declared = load_dataset(dataset).facts.get("options", {})
                for option, value in entry["data_options"].items():
                    assert option not in declared or value in declared[option]["choices"]
            assert name in entry["datasets"]


def test_unknown_names_and_options_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"known data sets: .*cinc2017"):
        load_dataset("mitdb")
    beats = load_dataset("mitdb-beats")
    with pytest.raises(DatasetError, match=r"no option 'windw'.*paced, split, window"):
        beats.resolve_options({"windw": "centred"})
    with pytest.raises(DatasetError, match="window='middle' is not one of rpeak, centred"):
        beats.resolve_options({"window": "middle"})


def test_inter_patient_split_lists_match_de_chazal():
    """DS1 and DS2 of de Chazal et al. 2004: 22 records each, disjoint, together every
    non-paced record of the MIT-BIH Arrhythmia Database."""
    facts = load_dataset("mitdb-beats").facts
    ds1, ds2 = set(facts["splits"]["DS1"]), set(facts["splits"]["DS2"])
    paced = set(facts["paced_records"])
    assert len(ds1) == len(ds2) == 22 and not ds1 & ds2
    assert ds1 | ds2 == MITDB_RECORDS - paced
    assert paced == {"102", "104", "107", "217"}
    # Table I of de Chazal, O'Dwyer and Reilly, IEEE TBME 51(7) 2004, record by record.
    assert facts["splits"]["DS1"] == ["101", "106", "108", "109", "112", "114", "115", "116",
                                      "118", "119", "122", "124", "201", "203", "205", "207",
                                      "208", "209", "215", "220", "223", "230"]
    assert facts["splits"]["DS2"] == ["100", "103", "105", "111", "113", "117", "121", "123",
                                      "200", "202", "210", "212", "213", "214", "219", "221",
                                      "222", "228", "231", "232", "233", "234"]
    assert "de Chazal" in facts["splits"]["source"] and "51(7)" in facts["splits"]["source"]


def test_aami_mapping_is_the_ec57_grouping():
    mapping = load_dataset("mitdb-beats").facts["aami_classes"]
    assert mapping == {"N": ["N", "L", "R", "e", "j"], "S": ["A", "a", "J", "S"],
                       "V": ["V", "E"], "F": ["F"], "Q": ["/", "f", "Q"]}
    symbols = [s for group in mapping.values() for s in group]
    assert len(symbols) == len(set(symbols))


def test_group_of_reads_the_record_from_an_item_id():
    assert load_dataset("mitdb-beats").group_of("208_000017") == "208"
    assert load_dataset("cinc2017").group_of("A00001") == "A00001"


def test_the_dualnet_split_validates_on_the_published_share_of_each_class():
    cinc = load_dataset("cinc2017")
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=3000, p=[0.59, 0.09, 0.28, 0.04])
    arrays = types.SimpleNamespace(record_ids=[f"A{i + 1:05d}" for i in range(3000)],
                                   labels=labels)
    plan = cinc.fold_plan(arrays, n_folds=8, seed=0, options=cinc.resolve_options(
        {"split": "dualnet"}))
    folds = np.array([plan.table.as_dict()[r] for r in arrays.record_ids])
    share = 1528 / 8528
    assert abs((folds == 0).mean() - share) < 0.002
    for k in range(4):  # stratified: every class in the same proportion
        assert abs((folds[labels == k] == 0).mean() - share) < 0.01
    assert set(folds) == set(range(8)) and "fold 0 validates" in plan.notes[0]
    again = cinc.fold_plan(arrays, n_folds=8, seed=0, options={"split": "dualnet"})
    assert again.table == plan.table
    default = cinc.fold_plan(arrays, n_folds=8, seed=0, options=cinc.resolve_options({}))
    assert default.table != plan.table and not default.notes
