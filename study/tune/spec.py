"""What every trial of a study needs besides its sampled configuration.

A `StudySpec` is built once by the driver and shipped to every trial (through
`tune.with_parameters`), so all trials on all nodes read the same data directory at the same
rate, use the same fold table and the same budget. It holds plain data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from search_spaces import flatten_options, training_config
from study.engine.config import merge_sections


@dataclass(frozen=True)
class StudySpec:
    """Study-wide settings of a trial.

    Attributes:
        data_dir: the data set's directory, present at this path on every node.
        cache_dir: data cache location on each node (None: the user's cache directory).
        fs_hz: rate the records are resampled to.
        folds: group (record, patient) -> fold number, or item id -> fold with
            ``fold_unit="item"``; built once by the driver.
        fold: the validation fold of search trials (a config's ``fold`` key overrides it).
        max_epochs: the full budget of a trial.
        seed: training seed of every trial.
        overrides: training-config sections merged over every sampled config: the data set's
            training settings, with ``--smoke`` the space's and the data set's smoke settings,
            then ``--set``'s options (`study.tune.prepare`); the budget (``fs_hz``,
            ``max_epochs``, ``seed``) goes over them.
        dataset: the data set's name (`data_io.datasets`).
        dataset_options: its options, defaults filled in.
        fold_unit: what ``folds`` is keyed by: ``group`` or ``item``.
        held_out: groups in no fold (kept out of training and validation).
        test_fold: the fold held out as the test set (kept out of the search and the
            cross-validation; `study.tune.data.final_split`), or None.
        test_dir: a directory of separate records of the same data set scored as the test
            set instead, or None.
    """

    data_dir: str
    cache_dir: str | None
    fs_hz: float
    folds: dict[str, int]
    fold: int
    max_epochs: int
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    # Defaults keep specs built before data sets were an axis loadable.
    dataset: str = "cinc2017"
    dataset_options: dict[str, str] = field(default_factory=dict)
    fold_unit: str = "group"
    held_out: tuple[str, ...] = ()
    test_fold: int | None = None
    test_dir: str | None = None

    @property
    def budget(self) -> dict[str, Any]:
        """The budget sections every trial trains with: rate, epochs, seed."""
        return {"data": {"fs_hz": self.fs_hz}, "epochs": self.max_epochs, "seed": self.seed}

    @property
    def fixed_options(self) -> dict[str, Any]:
        """Every option the study fixes in all its trials, flattened (``optim/lr``,
        ``epochs``): `overrides` then the `budget`. A search never samples them
        (`search_spaces.define_fixed`), and they are what `trial_config` puts over a
        trial's values."""
        return flatten_options(merge_sections(self.overrides, self.budget))

    def trial_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The training config of a trial whose (unflattened) values are ``config``: its
        values, then `overrides` and the `budget` over them; without the ``space``
        coordinates and a cross-validation trial's ``fold``."""
        values = {k: v for k, v in config.items() if k != "fold"}
        return training_config(merge_sections(values, self.overrides, self.budget))
