"""Medical Segmentation Decathlon tasks (Spleen CT, Hippocampus MRI, Heart MRI), read natively.

A task folder (``Task09_Spleen/`` ...) holds ``dataset.json`` listing ``training: [{image, label}]``
under ``imagesTr/`` / ``labelsTr/``; ``imagesTs/`` has no labels and is unused. macOS ``._*``
resource forks shipped in the tarballs are ignored. Each labelled case is a patient, split
train/val/test by systematic patient sampling. AMOS uses the same dataset.json format, so the
helpers for it live here too.
"""

from __future__ import annotations

import json
import posixpath
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from radbench_core.data.datasets.base import DatasetSize, DatasetSpec, Item, LoadOptions
from radbench_core.data.datasets.preprocess import window_percentile_per_slice
from radbench_core.data.datasets import study_splits
from radbench_core.data.datasets.splits import (cap_splits, keys_by_group, load_or_create_splits,
                                           patient_split)
from radbench_core.data.datasets.geometry import check_image_mask_pair
from radbench_core.data.datasets.volumes import NiftiIndex
from radbench_core.core.errors import DatasetError
from radbench_core.data.phantoms.nifti import write_msd_phantom


def read_dataset_json(root: Path, num_classes: int) -> dict[str, Any]:
    """Parse ``root/dataset.json`` and check it declares background + ``num_classes`` labels."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(path, "dataset.json is missing (the task's index of cases)",
                           "extract the whole task archive so dataset.json sits in the task folder")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"cannot parse dataset.json ({exc})",
                           "restore dataset.json from the original archive") from exc
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or set(map(str, labels)) != {str(i) for i in range(num_classes + 1)}:
        found = sorted(labels) if isinstance(labels, dict) else labels
        raise DatasetError(path, f"expected \"labels\" with keys 0..{num_classes} (0 = background), "
                                 f"found {found!r}",
                           "use the dataset.json of this task's official release")
    return meta


def confined(root: Path, entry: Any, json_path: Path, what: str) -> str:
    """A dataset.json path made relative to ``root``; absolute paths and ``../`` escapes are refused."""
    if not isinstance(entry, str) or not entry:
        raise DatasetError(json_path, f"{what}: expected a relative file path, found {entry!r}",
                           "restore dataset.json from the original archive")
    norm = posixpath.normpath(entry.replace("\\", "/"))
    if posixpath.isabs(norm) or Path(entry).is_absolute() or norm == ".." or norm.startswith("../") \
            or (len(norm) > 1 and norm[1] == ":"):
        raise DatasetError(json_path, f"{what}: the path {entry!r} points outside the dataset folder",
                           "paths in dataset.json must stay inside the dataset folder, "
                           "e.g. \"./imagesTr/case_1.nii.gz\"")
    return norm


def is_resource_fork(rel: str) -> bool:
    """macOS ``._name`` files that some archives carry next to every real file."""
    return posixpath.basename(rel).startswith("._")


def case_id(rel: str) -> str:
    """``./imagesTr/spleen_2.nii.gz`` -> ``spleen_2``."""
    name = posixpath.basename(rel)
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def labelled_cases(root: Path, meta: dict[str, Any], section: str,
                   keep: Callable[[str], bool] | None = None) -> list[Item]:
    """Items for the ``[{image, label}]`` entries of one dataset.json section (headers read only).

    ``keep(case_id)`` filters cases before any file is opened (AMOS: CT ids only).
    """
    json_path = root / "dataset.json"
    entries = meta.get(section)
    if not isinstance(entries, list):
        raise DatasetError(json_path, f"expected a list \"{section}\" of {{image, label}} entries",
                           "restore dataset.json from the original archive")
    items: list[Item] = []
    for n, entry in enumerate(entries):
        where = f"{section}[{n}]"
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise DatasetError(json_path, f"{where}: expected {{\"image\": ..., \"label\": ...}}, "
                                          f"found {entry!r}", "restore dataset.json from the archive")
        image = confined(root, entry["image"], json_path, f"{where}.image")
        label = confined(root, entry["label"], json_path, f"{where}.label")
        if is_resource_fork(image) or is_resource_fork(label):
            continue
        key = case_id(image)
        if keep is not None and not keep(key):
            continue
        for rel in (image, label):
            if not (root / rel).is_file():
                raise DatasetError(root / rel, f"listed in {json_path} ({where}) but missing",
                                   "extract the whole archive, or restore this file")
        if any(it.key == key for it in items):
            raise DatasetError(json_path, f"{where}: case {key!r} is listed twice",
                               "restore dataset.json from the original archive")
        items.append(Item(key=key, patient=key, images=(image,), masks=(label,),
                          n_slices=check_image_mask_pair(root / image, root / label)))
    return items


def _index_msd(root: Path, options: LoadOptions, spec_id: str) -> NiftiIndex:
    spec = _SPECS[spec_id]
    meta = read_dataset_json(root, spec.num_classes)
    items = labelled_cases(root, meta, "training")
    if not items:
        raise DatasetError(root / "dataset.json", "lists no labelled training cases",
                           "restore dataset.json from the original archive")

    def make() -> dict[str, list[str]]:
        return keys_by_group(items, patient_split([it.patient for it in items]))

    def make_study() -> dict[str, list[str]]:
        # volumes in file-name order: the study's os.listdir of imagesTr on NTFS
        order = [it.patient for it in sorted(items, key=lambda it: Path(it.images[0]).name.lower())]
        return study_splits.by_patient(items, order, study_splits.systematic_study_split(spec_id, len(order)))

    if study_splits.check_rule(options.split_rule) == "study":
        splits = study_splits.resolve(root, items, make, make_study, options, spec.title)
    else:
        splits = cap_splits(load_or_create_splits(root, items, make, options.split_file,
                                                  options.splits_dir),
                            options.max_items)
    # the study's code clips every MSD slice (Heart, Hippocampus MRI and Spleen CT alike) to its own
    # 5th-95th percentile (fidelity: msd_percentile_per_slice)
    window: Callable[[np.ndarray], np.ndarray] = window_percentile_per_slice
    return NiftiIndex(spec=spec, root=root, items=items, splits=splits, window=window)


def _msd_spec(spec_id: str, task: str, title: str, modality: str, classes: tuple[str, ...],
              size: DatasetSize) -> DatasetSpec:
    return DatasetSpec(
        id=spec_id, title=title, modality=modality, task="segmentation", label_kind="mask",
        class_names=classes, folder=task, volumetric=True,
        download_hint=(f"download {task}.tar from the Medical Segmentation Decathlon "
                       f"(http://medicaldecathlon.com) and extract it so that <data dir>/{task}/ "
                       "holds dataset.json, imagesTr/ and labelsTr/"),
        index=partial(_index_msd, spec_id=spec_id),
        write_phantom=partial(write_msd_phantom, task=task), size=size)


_SLICES = "Table 1's labelled cases, dealt 70/10/20; the slices per case are an ESTIMATE"
SPLEEN = _msd_spec("msd_spleen", "Task09_Spleen", "MSD Spleen (CT)", "ct", ("spleen",),
                   DatasetSize.dealt(40, slices_per_item=90, note=_SLICES))
HIPPOCAMPUS = _msd_spec("msd_hippocampus", "Task04_Hippocampus", "MSD Hippocampus (MRI)", "mri",
                        ("anterior", "posterior"), DatasetSize.dealt(260, slices_per_item=36, note=_SLICES))
HEART = _msd_spec("msd_heart", "Task02_Heart", "MSD Heart (MRI)", "mri", ("left_atrium",),
                  DatasetSize.dealt(20, slices_per_item=110, note=_SLICES))
_SPECS = {s.id: s for s in (SPLEEN, HIPPOCAMPUS, HEART)}
