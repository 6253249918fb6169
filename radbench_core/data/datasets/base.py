"""The contract every dataset module fulfils: a spec, an index of items, and readers.

An **item** is one unit that is labelled and scored: a 2D image (NIH, CheXpert, Montgomery,
Figshare) or a volume (SARS-CoV-2 CT patient, AMOS/MSD NIfTI case). Everything is served as a stack
of 2D slices ``(S, H, W)`` so one code path handles 2D and 3D: classification averages the slice
features of a volume, segmentation predicts slice by slice and scores the reassembled volume.
"""

from __future__ import annotations

import importlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

Modality = Literal["xray", "ct", "mri"]
Task = Literal["classification", "segmentation"]
LabelKind = Literal["multilabel", "multiclass", "binary", "mask"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    key: str                       # unique within the dataset, e.g. "00000001_000.png", "amos_0001"
    patient: str                   # grouping key for splits: no patient in two splits
    images: tuple[str, ...]        # files (relative to the dataset root) that make up this item
    n_slices: int = 1
    label: tuple[float, ...] | int | None = None   # multilabel: 0/1 (NaN = ignore); else class index
    masks: tuple[str, ...] = ()    # segmentation label files (relative to root)


def phantom_writer(module: str) -> Callable[..., None]:
    """A ``write_phantom`` that imports its phantom module only when a phantom is written.

    The function carries ``phantom_module`` so the phantom cache can fingerprint the writer's source.
    """
    def write_phantom(root: Path, size: str = "tiny", seed: int = 0, **kwargs: object) -> None:
        importlib.import_module(module).write_phantom(root, size=size, seed=seed, **kwargs)

    write_phantom.phantom_module = module
    return write_phantom


@dataclass(frozen=True)
class LoadOptions:
    """User-facing knobs that change what is loaded (part of every cache key)."""
    uncertainty: str = "zeros"      # CheXpert: "zeros" | "ones" | "ignore"
    subset: int | None = None       # AMOS: number of cases (the study used 150)
    split_file: str | None = None   # a published split JSON to use instead of ours
    max_items: int | None = None    # cap per split (profiles use it for Table 8's fixed subset)
    # where radbench keeps the splits it computes (the run's cache folder; None: memory only).
    # Not compared nor in repr: a cache location never changes what is loaded, nor the config hash.
    splits_dir: str | None = field(default=None, compare=False, repr=False)
    # "ours" (70/10/20 patients) or "study" (the study's make_splits rule, study_splits.py); in repr
    # (the config hash) only when not "ours", so hashes of runs before the option existed stay valid
    split_rule: str = field(default="ours", repr=False)
    # which splits max_items caps: "every" (ours) or "train" (the study's Table 8 subset); in repr
    # only when not "every", as split_rule
    subset_splits: str = field(default="every", repr=False)

    def __repr__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr]
        if self.split_rule != "ours":
            shown.append(f"split_rule={self.split_rule!r}")
        if self.subset_splits != "every":
            shown.append(f"subset_splits={self.subset_splits!r}")
        return f"LoadOptions({', '.join(shown)})"


@dataclass(frozen=True)
class DatasetSize:
    """The real dataset as its loader splits it: items per split and slices per item.

    Why in the spec: the planner multiplies these, and the module whose loader makes the splits is
    the one place that knows them (CheXpert's 191,027 frontal training images, not Table 1's
    161,792). ``note`` says which numbers are exact counts and which are estimates.
    """
    train: int
    val: int
    test: int
    slices_per_item: int = 1
    note: str = ""

    @classmethod
    def dealt(cls, items: int, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
              slices_per_item: int = 1, note: str = "") -> "DatasetSize":
        """``items`` dealt to (train, val, test) in ``fractions`` (what ``patient_split`` does)."""
        train, val = round(items * fractions[0]), round(items * fractions[1])
        return cls(train, val, items - train - val, slices_per_item, note)

    def of(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


@dataclass(frozen=True)
class DatasetSpec:
    id: str                          # "nih", "amos", ... (used in cell ids and -k)
    title: str                       # "NIH ChestX-ray14"
    modality: Modality
    task: Task
    label_kind: LabelKind
    class_names: tuple[str, ...]     # segmentation: foreground classes only
    folder: str                      # expected folder name under the data dir
    download_hint: str               # where to get it and what to put where
    index: Callable[[Path, LoadOptions], "DatasetIndex"]
    write_phantom: Callable[..., None]   # (root: Path, size: str = "tiny", seed: int = 0) -> None
    volumetric: bool = False
    size: DatasetSize | None = None      # the real dataset's split sizes (the planner's); None: unknown

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class DatasetIndex:
    """What a loader returns: the items, the patient-grouped splits, and slice readers."""
    spec: DatasetSpec
    root: Path
    items: list[Item]
    splits: dict[str, list[int]] = field(default_factory=dict)   # "train"/"val"/"test" -> item idx
    input_files: tuple[str, ...] = ()    # every file indexing read (CSVs, lists, dataset.json): cache keys

    # -- readers: dataset modules override these ------------------------------------------------
    def load_slices(self, item: Item) -> np.ndarray:
        """``(S, H, W)`` float32 in [0, 1], modality windowing applied (CT HU clip, MRI percentile)."""
        raise NotImplementedError

    def load_mask(self, item: Item) -> np.ndarray:
        """``(S, H, W)`` int64 class map, 0 = background, values in 0..num_classes."""
        raise NotImplementedError

    def voxel_spacing(self, item: Item) -> tuple[float, float, float] | None:
        """Voxel size in mm along ``(S, H, W)`` of ``load_mask(item)``; None when unknown (distances
        are then in voxels). NIfTI datasets read it from the header."""
        return None

    # -- conveniences shared by all datasets ------------------------------------------------------
    def split_items(self, split: str) -> list[Item]:
        return [self.items[i] for i in self.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        """multilabel: (N, C) float with NaN = ignore; multiclass/binary: (N,) int64."""
        items = self.split_items(split)
        if self.spec.label_kind == "multilabel":
            return np.asarray([it.label for it in items], dtype=np.float32).reshape(len(items), -1)
        return np.asarray([it.label for it in items], dtype=np.int64)

    def patients(self, split: str) -> list[str]:
        return [it.patient for it in self.split_items(split)]
