"""The study's own split rules (switch ``patient_split_70_10_20``, value ``"study"`` in ``paper``).

Where a dataset has no official split, the study's ``make_splits`` functions deal fixed counts by
systematic sampling over the folder order; radbench's sound rule is a 70/10/20 patient split
(``splits.patient_split``). These reproduce the study's sizes from its code, on our natural file
order (the study used ``os.listdir`` order, which the file system decides). Its published split
files, when a user has them, are read as they are with ``--radbench-splits`` and win over both.

- Montgomery (repo dinov2/data/datasets/mc.py ``make_splits``): test = every 3rd image
  (``range(0, 138, ceil(138 / 46))``), val = every 4th of the remaining 92 (``ceil(92 / 23)``):
  69 / 23 / 46 on the 138 images.
- Brain tumour (repo dinov2/data/datasets/brain_tumor.py ``make_splits``): patients in file order;
  test = ``np.arange(0, n, n / 70).round()`` (70 patients), val = ``np.arange(0, n - 70, (n - 70) / 50)
  .round()`` of the rest (50 patients); on another patient count the same shares of 233.
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


def brain_tumor_study_split(n_patients: int) -> dict[str, list[int]]:
    """Patient positions (order of first appearance in the numbered files) per split, by
    brain_tumor.py's rule."""
    n_test = BT_TEST if n_patients == BT_PATIENTS else max(1, round(n_patients * BT_TEST / BT_PATIENTS))
    n_val = BT_VAL if n_patients == BT_PATIENTS else max(1, round(n_patients * BT_VAL / BT_PATIENTS))
    test = np.arange(0, n_patients, n_patients / n_test).round().astype(int)
    rest = n_patients - len(test)
    return _deal(n_patients, test, np.arange(0, rest, rest / n_val).round().astype(int))


def resolve(root: Path, items: list[Item], ours: Callable[[], dict[str, list[str]]],
            study: Callable[[], dict[str, list[str]]], options: LoadOptions, title: str,
            class_names: Sequence[str] = ()) -> dict[str, list[int]]:
    """``resolve_splits`` with the rule ``options.split_rule`` picks; a study split is recomputed in
    memory (it is deterministic), so it never shares the saved file of our split."""
    if check_rule(options.split_rule) == "study":
        return resolve_splits(root, items, study, dataclasses.replace(options, splits_dir=None), title,
                              class_names)
    return resolve_splits(root, items, ours, options, title, class_names)
