"""The study's own split rules (switch ``patient_split_70_10_20``, value ``"study"`` in ``paper``).

Where a dataset has no official split, the study's ``make_splits`` functions deal fixed counts by
systematic sampling over the folder order; radbench's sound rule is a 70/10/20 patient split
(``splits.patient_split``). These reproduce the study's sizes from its code, on our natural file
order (the study used ``os.listdir`` order, which the file system decides). Its published split
folders (``train/ val/ test/`` as its make_splits left them), when a user has them, are read as they
are with ``--radbench-splits DATASET=FOLDER`` (study_folders.py) and win over both.

- Montgomery (repo dinov2/data/datasets/mc.py ``make_splits``): test = every 3rd image
  (``range(0, 138, ceil(138 / 46))``), val = every 4th of the remaining 92 (``ceil(92 / 23)``):
  69 / 23 / 46 on the 138 images.
- Brain tumour (repo dinov2/data/datasets/brain_tumor.py ``make_splits``): patients in file order;
  test = ``np.arange(0, n, n / 70).round()`` (70 patients), val = ``np.arange(0, n - 70, (n - 70) / 50)
  .round()`` of the rest (50 patients); on another patient count the same shares of 233.
- MSD (repo dinov2/data/datasets/msd_spleen.py, msd_hipp.py ``data_split``): volumes in file-name
  order (the study's ``os.listdir`` on Windows, where NTFS lists by name), the same two ``np.arange``
  draws: Spleen 15 test and 10 val of 41 (16 train), Hippocampus 80 test and 60 val of 260 (120
  train). msd_heart.py has no ``data_split``; its split lengths (1339 / 450 / 482 slices of about
  113 per volume) are 12 / 4 / 4 of the 20 volumes, dealt by the same rule (inferred, not in code).
- SARS-CoV-2 CT (repo dinov2/data/datasets/sars_cov_2_ct.py ``make_splits``): patients numbered
  Covid, Healthy, Others in folder order; test = ``np.arange(0, 210, 210 / 70).round()`` (70),
  val = ``np.arange(0, 140, 140 / 50).round()`` of the rest (50): 90 / 50 / 70.
- NIH (repo dinov2/data/datasets/nih_chest_xray.py ``make_val_set``): val = the last 10,002 rows of
  ``train_val_list.txt`` in file order, train = the others (76,522; patients are not kept apart),
  test = the official ``test_list.txt``; on a list of another length the same share of 86,524.

Every count above is the study's on the full release; on another size (a phantom, a subset) the
same shares, rounded, at least one.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from radbench_core.core.errors import ConfigError
from radbench_core.data.datasets.base import Item, LoadOptions
from radbench_core.data.datasets.splits import resolve_splits

SPLIT_RULES = ("ours", "study")
MC_TEST_STEP, MC_VAL_STEP = math.ceil(138 / 46), math.ceil(92 / 23)       # 3, 4 (mc.py)
BT_PATIENTS, BT_TEST, BT_VAL = 233, 70, 50                                # brain_tumor.py
# dataset id -> (items in the release, test, val): each make_splits / data_split's counts
SYSTEMATIC_COUNTS = {"brain_tumor": (BT_PATIENTS, BT_TEST, BT_VAL),
                     "msd_spleen": (41, 15, 10),            # msd_spleen.py data_split
                     "msd_hippocampus": (260, 80, 60),      # msd_hipp.py data_split
                     "msd_heart": (20, 4, 4),               # inferred from msd_heart.py's split lengths
                     "sarscov2": (210, 70, 50)}             # sars_cov_2_ct.py make_splits
NIH_TRAIN_VAL, NIH_VAL = 86_524, 10_002                                     # nih_chest_xray.py


def check_rule(rule: str) -> str:
    if rule not in SPLIT_RULES:
        raise ConfigError("LoadOptions.split_rule", f"unknown split rule {rule!r}",
                          f"use one of {', '.join(SPLIT_RULES)}")
    return rule


def _deal(n: int, test_pos: Sequence[int], val_pos_of_rest: Sequence[int]) -> dict[str, list[int]]:
    """Positions 0..n-1 into train / val / test: test first, then val among the rest (re-indexed)."""
    test = sorted({int(i) for i in test_pos})
    rest = [i for i in range(n) if i not in set(test)]
    val = sorted({rest[int(j)] for j in val_pos_of_rest})
    train = [i for i in rest if i not in set(val)]
    return {"train": train, "val": val, "test": test}


def mc_study_split(n_images: int) -> dict[str, list[int]]:
    """Image positions (natural file order) per split, by mc.py's rule."""
    test = range(0, n_images, MC_TEST_STEP)
    return _deal(n_images, test, range(0, n_images - len(test), MC_VAL_STEP))


def _share(n: int, full: int, count: int) -> int:
    """The study's count on its release; on ``n`` items the same share, rounded, at least 1."""
    return count if n == full else max(1, round(n * count / full))


def systematic_study_split(dataset: str, n: int) -> dict[str, list[int]]:
    """Positions 0..n-1 (patients or volumes, in the study's order) per split, by the rule the
    study wrote for ``dataset``: test = ``np.arange(0, n, n / n_test).round()``, then val =
    ``np.arange(0, rest, rest / n_val).round()`` among the rest, train = what remains."""
    full, n_test, n_val = SYSTEMATIC_COUNTS[dataset]
    n_test, n_val = _share(n, full, n_test), _share(n, full, n_val)
    test = np.arange(0, n, n / n_test).round().astype(int)
    rest = n - len(test)
    return _deal(n, test, np.arange(0, rest, rest / n_val).round().astype(int))


def brain_tumor_study_split(n_patients: int) -> dict[str, list[int]]:
    """Patient positions (order of first appearance in the numbered files) per split, by
    brain_tumor.py's rule."""
    return systematic_study_split("brain_tumor", n_patients)


def nih_study_val(train_val: Sequence[str]) -> dict[str, list[str]]:
    """``train_val_list.txt`` (file order) into train and val by make_val_set: the last 10,002
    rows are val (on another length the same share)."""
    n_val = _share(len(train_val), NIH_TRAIN_VAL, NIH_VAL)
    cut = len(train_val) - n_val
    return {"train": list(train_val[:cut]), "val": list(train_val[cut:])}


def by_patient(items: Sequence[Item], order: Sequence[str], positions: dict[str, list[int]]
               ) -> dict[str, list[str]]:
    """Item keys per split from positions into ``order`` (the patients in the study's order)."""
    group = {order[p]: name for name, pos in positions.items() for p in pos}
    return {name: [it.key for it in items if group[it.patient] == name] for name in ("train", "val", "test")}


def study_split_sizes(dataset: str, train: int, val: int, test: int) -> dict[str, int] | None:
    """Items per split under the study's rule for a dataset whose own split deals ``train + val +
    test`` items (the planner's sizes under ``split_rule="study"``); None where the study has no rule."""
    if dataset == "mc":
        positions = mc_study_split(train + val + test)
    elif dataset == "nih":                   # the official test list; val cut from train_val by row
        n_val = _share(train + val, NIH_TRAIN_VAL, NIH_VAL)
        return {"train": train + val - n_val, "val": n_val, "test": test}
    elif dataset in SYSTEMATIC_COUNTS:
        positions = systematic_study_split(dataset, train + val + test)
    else:
        return None
    return {name: len(pos) for name, pos in positions.items()}


def resolve(root: Path, items: list[Item], ours: Callable[[], dict[str, list[str]]],
            study: Callable[[], dict[str, list[str]]], options: LoadOptions, title: str,
            class_names: Sequence[str] = (), *, shared_patients: bool = False) -> dict[str, list[int]]:
    """``resolve_splits`` with the rule ``options.split_rule`` picks; a study split is recomputed in
    memory (it is deterministic), so it never shares the saved file of our split. ``shared_patients``:
    the study's rule cuts by row and may put one patient in two splits (NIH)."""
    if check_rule(options.split_rule) == "study":
        return resolve_splits(root, items, study, dataclasses.replace(options, splits_dir=None), title,
                              class_names, shared_patients=shared_patients)
    return resolve_splits(root, items, ours, options, title, class_names)
