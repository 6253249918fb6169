"""The study's published splits read as they are: a dataset folder in the study's split layout.

The study's ``make_splits`` / ``data_split`` / ``make_val_set`` (repo dinov2/data/datasets/*.py)
MOVE each dataset's files into ``train/``, ``val/`` and ``test/`` under the dataset root, and
``slice_it`` then cuts MSD and AMOS volumes into one ``<volume>_<NNN>.npy`` per slice. A copy of
those folders (the study's drive) is its split as it ran. ``--radbench-splits DATASET=FOLDER``
pointing at such a folder reads which files each split holds and applies that membership to the
release radbench reads: radbench keeps its own loader (NIfTI, PNG, .mat) and takes only the split.

A name in a split folder is matched to the item whose first image file has the same stem
(``MCUCXR_0001_0.png`` -> ``CXR_png/MCUCXR_0001_0.png``; ``123.mat`` -> ``.../123.mat``;
``spleen_2.nii.gz`` or the slices ``spleen_2_000.npy``, ``spleen_2_001.npy``, ... ->
``imagesTr/spleen_2.nii.gz``). Items of the release in no split folder are left out, with one
warning (the study's AMOS folders hold its 150 cases of the release's 300 CT). A release whose
items share a first file name (SARS-CoV-2: ``<patient>/1.png``; the study's ``make_splits`` also
renamed each patient folder to a number in ``os.listdir`` order) cannot be matched and is refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets.base import Item

SPLIT_FOLDERS = ("train", "val", "test")
_SUFFIXES = (".nii.gz", ".nii", ".npy", ".png", ".jpg", ".jpeg", ".mat", ".dcm")
_SLICE = re.compile(r"^(?P<volume>.+)_\d{3}$")          # slice_it: f"{scan_name}_{i:03d}.npy"


def is_study_split_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding the study's ``train/``, ``val/`` and ``test/``."""
    return path.is_dir() and all((path / name).is_dir() for name in SPLIT_FOLDERS)


def stem(name: str) -> str:
    """A file name without its image suffix (``.nii.gz`` counts as one)."""
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_study_split_folder(folder: Path, items: Sequence[Item], dataset_title: str
                            ) -> dict[str, list[str]]:
    """Item keys per split from the names in ``folder/{train,val,test}``; every name must match
    an item of the release, and no item may sit in two splits."""
    folder = Path(folder)
    if not is_study_split_folder(folder):
        raise DatasetError(folder, "is not a folder in the study's split layout (train/, val/ and "
                                   "test/ beside each other)",
                           "point --radbench-splits DATASET=... at the dataset folder the study's "
                           "make_splits left, or at a JSON split file")
    by_stem: dict[str, str] = {}
    for it in items:
        name = stem(Path(it.images[0]).name)
        if by_stem.setdefault(name, it.key) != it.key:
            raise DatasetError(folder, f"the {dataset_title} release has several items whose first image "
                                       f"is named {name!r} ({by_stem[name]!r}, {it.key!r}), so a file "
                                       "name in a split folder cannot say which item it is (the study's "
                                       "SARS-CoV-2 make_splits also renamed each patient folder to a "
                                       "number in os.listdir order)",
                               "use the study's split rule (the paper profile, split_rule 'study') or "
                               "a JSON split file listing item keys")
    splits: dict[str, list[str]] = {}
    for split in SPLIT_FOLDERS:
        keys: list[str] = []
        seen: set[str] = set()
        for name in sorted(p.name for p in (folder / split).iterdir() if not p.name.startswith(".")):
            key = _match(name, by_stem)
            if key is None:
                raise DatasetError(folder / split / name,
                                   f"matches no item of the {dataset_title} release radbench reads "
                                   f"({len(items)} items, e.g. "
                                   f"{', '.join(repr(Path(it.images[0]).name) for it in items[:2])})",
                                   "point the dataset folder at the release the study split (the same "
                                   "file names), or remove files that are not part of it")
            if key not in seen:
                seen.add(key)
                keys.append(key)
        splits[split] = keys
    return splits


def _match(name: str, by_stem: dict[str, str]) -> str | None:
    base = stem(name)
    if base in by_stem:
        return by_stem[base]
    sliced = _SLICE.match(base)
    return by_stem.get(sliced.group("volume")) if sliced else None
