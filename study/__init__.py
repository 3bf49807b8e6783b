"""ecg-study's composer: everything that trains, searches and explains.

Entry points (``python -m study.X``): `run` (a study), `train` (one configuration without
Ray), `dashboard`, `check_cluster`, `wandb_report`, `explain_benchmark`. Below them, by
concern: `study.engine` (one configuration on one split, no Ray), `study.explain` (the
explanations of trained models), `study.tune` (the Ray Tune + Optuna driver); shared by all:
`study.folder_format` (the study folder's names, read by `reports` too),
`study.library_internals` (the private Ray / Optuna / W&B members used, checked at start-up)
and `study.cli_choices`. docs/architecture.md has the map.
"""
