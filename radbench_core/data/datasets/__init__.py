"""The dataset registry: id -> DatasetSpec, resolved from the module that reads that dataset.

Each built-in dataset module exposes its spec as a module attribute (imported on first lookup);
nothing registers itself by import side effect. A user's dataset is registered from their code
(``pytest_radbench_register``, entry point ``radbench.datasets``); the common case, a folder of
images with a CSV or masks, needs no module at all (``datasets/generic.py``).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.base import DatasetIndex, DatasetSpec, LoadOptions
from radbench_core.data.datasets.inputs import recording_reads
from radbench_core.core.errors import ConfigError, DatasetError, DatasetMissing
from radbench_core.core.registry import Registry, lazy

# id -> (module, attribute holding its DatasetSpec)
_SPECS: dict[str, tuple[str, str]] = {
    "nih": ("radbench_core.data.datasets.nih", "SPEC"),
    "chexpert": ("radbench_core.data.datasets.chexpert", "SPEC"),
    "mc": ("radbench_core.data.datasets.montgomery", "SPEC"),
    "sarscov2": ("radbench_core.data.datasets.sarscov2", "SPEC"),
    "amos": ("radbench_core.data.datasets.amos", "SPEC"),
    "msd_spleen": ("radbench_core.data.datasets.msd", "SPLEEN"),
    "msd_hippocampus": ("radbench_core.data.datasets.msd", "HIPPOCAMPUS"),
    "msd_heart": ("radbench_core.data.datasets.msd", "HEART"),
    "brain_tumor": ("radbench_core.data.datasets.brain_tumor", "SPEC"),
}
SUBSET_SPLITS = ("every", "train")    # switch table8_cap_every_split: which splits max_items caps
DATASET_IDS: tuple[str, ...] = tuple(_SPECS)          # the study's nine, in its order
DATASETS: Registry[DatasetSpec] = Registry.of_builtins(
    "dataset", DatasetSpec, "radbench list datasets",
    [lazy(_id, f"{_module}:{_attr}") for _id, (_module, _attr) in _SPECS.items()])


def get_dataset(dataset_id: str) -> DatasetSpec:
    """The spec of a dataset id (built-in or registered), or a ConfigError listing the valid ids."""
    return DATASETS.get_spec(dataset_id)


def all_datasets() -> list[DatasetSpec]:
    return [get_dataset(d) for d in DATASETS]


def study_systematic(positions: list[int], k: int) -> list[int]:
    """The study's SystemicSamplerWrapper rows (repo dinov2/data/wrappers.py:29):
    ``np.arange(0, n, n / k).round()``, every row when the split has at most k."""
    if k < 1:
        raise ConfigError("LoadOptions.max_items", f"got {k}, expected a positive count",
                          "pass max_items >= 1, or None for every item")
    n = len(positions)
    return list(positions) if n <= k else [positions[int(j)] for j in np.arange(0, n, n / k).round()]


def open_dataset(spec: DatasetSpec, root: str | Path, options: LoadOptions | None = None) -> DatasetIndex:
    """Index a dataset folder; a missing folder is DatasetMissing (the cell skips, saying why)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(root, f"{spec.title} was not found", spec.download_hint)
    options = options or LoadOptions()
    train_only = options.subset_splits == "train" and options.max_items is not None
    if options.subset_splits not in SUBSET_SPLITS:
        raise ConfigError("LoadOptions.subset_splits", f"unknown value {options.subset_splits!r}",
                          f"use one of {', '.join(SUBSET_SPLITS)}")
    with recording_reads(root) as read:          # every file the index and its split read
        index = spec.index(root, dataclasses.replace(options, max_items=None) if train_only else options)
    if train_only:                               # the study's Table 8: only train is subsampled,
        index.splits["train"] = study_systematic(index.splits["train"], options.max_items)
    index.input_files = tuple(sorted(read))
    for split in ("train", "val", "test"):
        if not index.splits.get(split):
            patients = len({it.patient for it in index.items})
            raise DatasetError(root, f"the {split!r} split of {spec.title} is empty ({patients} patients in "
                                     "the folder; at least 3 are needed, one per split)",
                               "check that the folder holds the whole dataset, or pass a split file "
                               "that lists items for train, val and test")
    return index


__all__ = ["DATASETS", "DATASET_IDS", "DatasetIndex", "DatasetSpec", "LoadOptions", "all_datasets",
           "get_dataset", "open_dataset"]
