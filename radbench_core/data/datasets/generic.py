"""The common case with no module to write: a folder of images plus a CSV of labels, or plus masks.

Why: a hospital's dataset is nearly always "images in a folder, a spreadsheet of labels" (or "images
and masks of the same names"). Two functions turn a few lines of config into a ``DatasetSpec``:

    csv_dataset("ward_cxr", "Ward chest X-rays", folder="ward_cxr", label_columns=("effusion", "edema"))
    mask_dataset("ward_liver", "Ward liver CT", folder="ward_liver", class_names=("liver",), modality="ct")

Images: PNG/JPEG (grayscale), DICOM (``.dcm``, displayed as the standard says: see ``dicom.py``) and NIfTI (``.nii``/``.nii.gz``,
a volume: a many-slice item). Labels: a CSV column of class names (multi-class) or several 0/1 columns
(multi-label; blank = unknown, ignored), or a mask folder with the images' file names (class values
0..C). Splits are patient-grouped (``patient_column``; default one patient per image) by the same
systematic 70/10/20 sampling as the built-in datasets, or a user split file. Each spec has a phantom
writer for the demo profile and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from radbench_core.data.datasets.base import DatasetIndex, DatasetSpec, Item, LoadOptions
from radbench_core.data.datasets.csvtools import list_files, read_csv, read_gray, safe_relpath
from radbench_core.data.datasets.dicom import read_dicom, read_dicom_mask, read_mask_of_dicom
from radbench_core.data.datasets.geometry import check_image_mask_pair, read_mask_2d
from radbench_core.data.datasets.splits import keys_by_group, natural_key, patient_split, resolve_splits
from radbench_core.core.errors import ConfigError, DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz")


def _is_volume(name: str) -> bool:
    return name.lower().endswith((".nii", ".nii.gz"))


@dataclass
class GenericIndex(DatasetIndex):
    """Reads each item's file by its suffix; masks are PNG class maps or NIfTI labels."""

    def load_slices(self, item: Item) -> np.ndarray:
        path = self.root / item.images[0]
        if _is_volume(path.name):
            from radbench_core.data.datasets.preprocess import window_ct, window_mri
            from radbench_core.data.datasets.volumes import load_image
            return load_image(path, window_ct if self.spec.modality == "ct" else window_mri)
        if path.suffix.lower() == ".dcm":
            return read_dicom(path, self.spec.modality)[None]
        return read_gray(path)[None]

    def load_mask(self, item: Item) -> np.ndarray:
        path = self.root / item.masks[0]
        if _is_volume(path.name):
            from radbench_core.data.datasets.volumes import load_label
            return load_label(path, self.spec.num_classes)
        if path.suffix.lower() == ".dcm":
            mask = read_dicom_mask(path).astype(np.int64)          # turned by its own orientation
        else:
            mask = read_mask_2d(path).astype(np.int64)
            image = self.root / item.images[0]
            if image.suffix.lower() == ".dcm":                      # drawn on the image's stored pixels
                mask = read_mask_of_dicom(image, mask)
        if mask.max(initial=0) > self.spec.num_classes:
            raise DatasetError(path, f"mask values up to {mask.max()}, expected 0..{self.spec.num_classes}",
                               "store class indices (0 = background) in the mask images")
        return mask[None]

    def voxel_spacing(self, item: Item) -> tuple[float, float, float] | None:
        """A NIfTI label's voxel size in mm (header); None (pixels) for 2D image masks."""
        path = self.root / item.masks[0] if item.masks else None
        if path is None or not _is_volume(path.name):
            return None
        from radbench_core.data.datasets.volumes import axial_spacing
        return axial_spacing(path)


def _splits(root: Path, items: list[Item], options: LoadOptions, spec: DatasetSpec) -> dict[str, list[int]]:
    def make() -> dict[str, list[str]]:
        return keys_by_group(items, patient_split([it.patient for it in items], strata=_strata(items, spec)))
    names = spec.class_names if spec.label_kind != "mask" else ()
    return resolve_splits(root, items, make, options, spec.title, names)


def _strata(items: list[Item], spec: DatasetSpec) -> list | None:
    """The class of each item (multi-class) or its label pattern (multi-label, blank = "?"), so the split
    is stratified as the built-in datasets' are; masks have none."""
    if spec.label_kind == "multiclass":
        return [it.label for it in items]
    if spec.label_kind == "multilabel":
        return ["".join("?" if math.isnan(v) else str(int(v)) for v in it.label) for it in items]
    return None


def _index_csv(root: Path, options: LoadOptions, *, spec_ref: list, csv: str, image_column: str,
               label_column: str | None, label_columns: tuple[str, ...], patient_column: str | None,
               images_dir: str) -> GenericIndex:
    spec: DatasetSpec = spec_ref[0]
    label_text = repr(label_column) if label_column else ", ".join(map(repr, label_columns))
    fix = f"put {csv} in {root} with columns {image_column!r}, {label_text}" + (
        f", {patient_column!r}" if patient_column else "")
    required = [image_column, *([label_column] if label_column else label_columns),
                *([patient_column] if patient_column else [])]
    frame = read_csv(root / csv, required, fix)
    position = {name: i for i, name in enumerate(spec.class_names)}
    items = []
    for row in frame.to_dict("records"):
        rel = safe_relpath(f"{images_dir}/{row[image_column]}" if images_dir else row[image_column], root / csv)
        if label_column:
            if row[label_column] not in position:
                raise DatasetError(root / csv, f"row of {row[image_column]}: label {row[label_column]!r} is not "
                                   f"one of {list(spec.class_names)}", "fix the label or the class_names")
            label: tuple[float, ...] | int = position[row[label_column]]
        else:
            label = tuple(_binary(row[c], root / csv, c) for c in label_columns)
        n = _volume_slices(root / rel) if _is_volume(rel) else 1
        items.append(Item(key=rel, patient=str(row[patient_column]) if patient_column else rel,
                          images=(rel,), n_slices=n, label=label))
    if not items:
        raise DatasetError(root / csv, "the CSV lists no images", fix)
    return GenericIndex(spec=spec, root=root, items=items, splits=_splits(root, items, options, spec))


def _binary(text: str, where: Path, column: str) -> float:
    text = str(text).strip()
    if text == "":
        return math.nan
    if text in ("0", "1", "0.0", "1.0"):
        return float(text)
    raise DatasetError(where, f"column {column!r} holds {text!r}; expected 0, 1 or blank (unknown)",
                       "write multi-label columns as 0/1")


def _volume_slices(path: Path) -> int:
    from radbench_core.data.datasets.volumes import axial_shape
    return int(axial_shape(path)[0])


def _index_masks(root: Path, options: LoadOptions, *, spec_ref: list, images_dir: str, masks_dir: str
                 ) -> GenericIndex:
    spec: DatasetSpec = spec_ref[0]
    names = sorted(list_files(root / images_dir, IMAGE_SUFFIXES), key=natural_key)
    if not names:
        raise DatasetError(root / images_dir, "no images found", f"put the images in {images_dir}/ and "
                           f"masks of the same file names in {masks_dir}/")
    masks = set(list_files(root / masks_dir, IMAGE_SUFFIXES))
    items = []
    for name in names:
        if name not in masks:
            raise DatasetError(root / masks_dir / name, f"the mask of {images_dir}/{name} is missing",
                               f"give every image a mask of the same name in {masks_dir}/")
        rel = f"{images_dir}/{name}"
        n = check_image_mask_pair(root / rel, root / masks_dir / name)    # same grid, or refused
        items.append(Item(key=name, patient=name.split(".")[0], images=(rel,), n_slices=n,
                          masks=(f"{masks_dir}/{name}",)))
    return GenericIndex(spec=spec, root=root, items=items, splits=_splits(root, items, options, spec))


def _spec(spec_ref: list, index, layout: dict, **fields) -> DatasetSpec:
    from radbench_core.data.datasets.generic_phantom import write_generic_phantom
    writer = partial(write_generic_phantom, spec_ref=spec_ref, layout=layout)
    spec = DatasetSpec(index=partial(index, spec_ref=spec_ref, **layout), write_phantom=writer, **fields)
    spec_ref.append(spec)
    return spec


def csv_dataset(id: str, title: str, *, folder: str, classes: Sequence[str] = (),
                label_column: str | None = None, label_columns: Sequence[str] = (), csv: str = "labels.csv",
                image_column: str = "image", patient_column: str | None = None, images_dir: str = "",
                modality: str = "xray", download_hint: str = "") -> DatasetSpec:
    """A classification dataset: ``label_column`` of class names (multi-class, ``classes`` in index
    order) or ``label_columns`` of 0/1 (multi-label, one class per column)."""
    if bool(label_column) == bool(label_columns):
        raise ConfigError(f"csv_dataset {id!r}", "give exactly one of label_column (multi-class) or "
                          "label_columns (multi-label)", "e.g. label_column='diagnosis', classes=('a', 'b')")
    if label_column and len(classes) < 2:
        raise ConfigError(f"csv_dataset {id!r}", "a multi-class label_column needs classes (>= 2 names)",
                          "pass classes=('normal', 'abnormal', ...) in the index order you want")
    layout = dict(csv=csv, image_column=image_column, label_column=label_column,
                  label_columns=tuple(label_columns), patient_column=patient_column, images_dir=images_dir)
    return _spec([], _index_csv, layout, id=id, title=title, modality=modality, task="classification",
                 label_kind="multiclass" if label_column else "multilabel",
                 class_names=tuple(classes) if label_column else tuple(label_columns), folder=folder,
                 download_hint=download_hint or f"put {csv} and the images in <data dir>/{folder}/",
                 volumetric=False)


def mask_dataset(id: str, title: str, *, folder: str, class_names: Sequence[str], images_dir: str = "images",
                 masks_dir: str = "masks", modality: str = "xray", volumetric: bool = False,
                 download_hint: str = "") -> DatasetSpec:
    """A segmentation dataset: ``images_dir/NAME`` with ``masks_dir/NAME`` holding 0..len(class_names)."""
    if not class_names:
        raise ConfigError(f"mask_dataset {id!r}", "class_names is empty",
                          "name the foreground classes (background 0 is implied)")
    layout = dict(images_dir=images_dir, masks_dir=masks_dir)
    return _spec([], _index_masks, layout, id=id, title=title, modality=modality, task="segmentation",
                 label_kind="mask", class_names=tuple(class_names), folder=folder,
                 download_hint=download_hint or f"put {images_dir}/ and {masks_dir}/ in <data dir>/{folder}/",
                 volumetric=volumetric)
