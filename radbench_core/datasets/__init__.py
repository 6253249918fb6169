"""The dataset registry: id -> DatasetSpec, resolved from the module that reads that dataset.

Each dataset module exposes its spec as a module attribute; nothing registers itself by import
side effect. Adding a dataset = one loader module + one line here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from radbench_core.datasets.base import DatasetIndex, DatasetSpec, LoadOptions
from radbench_core.errors import ConfigError, DatasetError, DatasetMissing

# id -> (module, attribute holding its DatasetSpec)
_SPECS: dict[str, tuple[str, str]] = {
    "nih": ("radbench_core.datasets.nih", "SPEC"),
    "chexpert": ("radbench_core.datasets.chexpert", "SPEC"),
    "mc": ("radbench_core.datasets.montgomery", "SPEC"),
    "sarscov2": ("radbench_core.datasets.sarscov2", "SPEC"),
    "amos": ("radbench_core.datasets.amos", "SPEC"),
    "msd_spleen": ("radbench_core.datasets.msd", "SPLEEN"),
    "msd_hippocampus": ("radbench_core.datasets.msd", "HIPPOCAMPUS"),
    "msd_heart": ("radbench_core.datasets.msd", "HEART"),
    "brain_tumor": ("radbench_core.datasets.brain_tumor", "SPEC"),
}
DATASET_IDS: tuple[str, ...] = tuple(_SPECS)


def get_dataset(dataset_id: str) -> DatasetSpec:
    if dataset_id not in _SPECS:
        raise ConfigError(f"dataset {dataset_id!r}", "unknown dataset id",
                          f"use one of: {', '.join(DATASET_IDS)} (see `radbench list`)")
    module, attr = _SPECS[dataset_id]
    return getattr(importlib.import_module(module), attr)


def all_datasets() -> list[DatasetSpec]:
    return [get_dataset(d) for d in DATASET_IDS]


def open_dataset(spec: DatasetSpec, root: str | Path, options: LoadOptions | None = None) -> DatasetIndex:
    """Index a dataset folder; a missing folder is DatasetMissing (the cell skips, saying why)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(root, f"{spec.title} was not found", spec.download_hint)
    index = spec.index(root, options or LoadOptions())
    for split in ("train", "val", "test"):
        if not index.splits.get(split):
            raise DatasetError(root, f"the {split!r} split of {spec.title} is empty",
                               "check that the folder holds the whole dataset, or pass a split file "
                               "that lists items for train, val and test")
    return index


__all__ = ["DATASET_IDS", "DatasetIndex", "DatasetSpec", "LoadOptions", "all_datasets",
           "get_dataset", "open_dataset"]
