"""Figshare Brain Tumor (Cheng et al.): meningioma / glioma / pituitary on T1-CE MRI slices.

Layout: ``1.mat`` ... ``3064.mat``, possibly spread over ``brainTumorDataPublic_*`` subfolders, plus an
optional ``cvind.mat`` (the authors' 5-fold indices; not used: we split by patient like every other
dataset). Each file is MATLAB v7.3, i.e. HDF5 behind a 512-byte header, holding the struct
``cjdata`` with ``image`` (int16), ``label`` (1..3 -> 0..2), ``PID`` (uint16 character codes),
``tumorBorder`` and ``tumorMask``. MATLAB stores arrays column-major, so h5py returns them
transposed; we transpose back so images keep their orientation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.base import DatasetIndex, DatasetSize, DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.data.datasets.csvtools import check_not_degenerate
from radbench_core.data.datasets.preprocess import check_finite, window_mri
from radbench_core.data.datasets import study_splits
from radbench_core.data.datasets.splits import keys_by_group, patient_split
from radbench_core.data.datasets.study_splits import brain_tumor_study_split
from radbench_core.core.errors import DatasetError

CLASSES: tuple[str, ...] = ("meningioma", "glioma", "pituitary")
_MAT_NAME = re.compile(r"^(\d+)\.mat$")
_FIX = ("download the figshare brain tumor dataset (doi 10.6084/m9.figshare.1512427) and unzip the "
        "four brainTumorDataPublic_*.zip archives unchanged")


def _open(path: Path):
    """Open a v7.3 .mat read-only; anything that is not HDF5 (e.g. a v5 .mat) is a DatasetError."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            raise DatasetError(path, "not a MATLAB v7.3 (HDF5) file; the figshare release is v7.3",
                               f"re-save it in MATLAB with save(..., '-v7.3') or {_FIX}")
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(path, f"cannot open the HDF5 file ({exc})", _FIX) from exc


def _field(handle, path: Path, name: str):
    if f"cjdata/{name}" not in handle:
        raise DatasetError(path, f"no 'cjdata/{name}' in the file; expected the struct cjdata with "
                                 "image, label, PID, tumorBorder, tumorMask", _FIX)
    return handle[f"cjdata/{name}"]


def _decode_pid(dataset, path: Path) -> str:
    """MATLAB char arrays are uint16 code units; an empty char array carries MATLAB_empty."""
    if int(np.asarray(dataset.attrs.get("MATLAB_empty", 0)).ravel()[0]) == 1:
        return ""
    codes = np.asarray(dataset[()]).ravel()
    try:
        return "".join(chr(int(c)) for c in codes).strip()
    except (ValueError, OverflowError) as exc:
        raise DatasetError(path, f"cjdata/PID is not a character array ({exc})", _FIX) from exc


def read_mat(path: Path) -> dict[str, object]:
    """Read one file's label (0..2), patient id and image (H, W) in MATLAB orientation."""
    with _open(path) as handle:
        image = np.asarray(_field(handle, path, "image")[()]).T
        check_not_degenerate(image.shape, f"{path} (cjdata/image)")
        return {"label": _label(path, _field(handle, path, "label")),
                "pid": _decode_pid(_field(handle, path, "PID"), path), "image": image}


def _label(path: Path, dataset) -> int:
    values = np.asarray(dataset[()]).ravel()
    if values.size != 1 or values[0] not in (1, 2, 3):
        raise DatasetError(path, f"cjdata/label is {values.tolist()}; expected one value in 1, 2, 3 "
                                 f"({', '.join(CLASSES)})", _FIX)
    return int(values[0]) - 1


@dataclass
class BrainTumorIndex(DatasetIndex):
    """Serves one MRI slice ``(1, H, W)``, clipped to its 5th-95th percentile and scaled to [0, 1]."""

    def load_slices(self, item: Item) -> np.ndarray:
        path = self.root / item.images[0]
        with _open(path) as handle:
            image = np.asarray(_field(handle, path, "image")[()]).T
        check_not_degenerate(image.shape, f"{path} (cjdata/image)")
        check_finite(image, path)
        return window_mri(image)[None]


def _mat_files(root: Path) -> list[tuple[int, str]]:
    found: dict[int, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        for name in files:
            match = _MAT_NAME.match(name)
            if not match:
                continue
            number, rel_path = int(match.group(1)), (rel / name).as_posix()
            if number in found:
                raise DatasetError(root / rel_path, f"{name} also exists as {found[number]}",
                                   "keep one copy of each numbered .mat file")
            found[number] = rel_path
    return sorted(found.items())


def index(root: Path, options: LoadOptions) -> BrainTumorIndex:
    """Index every numbered .mat (label and PID read from each file; images read lazily)."""
    root = Path(root)
    files = _mat_files(root)
    if not files:
        raise DatasetError(root, "no numbered .mat files (1.mat ... 3064.mat) found", _FIX)
    items = []
    for number, rel in files:
        path = root / rel
        with _open(path) as handle:
            check_not_degenerate(_field(handle, path, "image").shape, f"{path} (cjdata/image)")
            label = _label(path, _field(handle, path, "label"))
            pid = _decode_pid(_field(handle, path, "PID"), path) or f"mat{number}"
        items.append(Item(key=str(number), patient=pid, images=(rel,), label=label))

    def make() -> dict[str, list[str]]:
        return keys_by_group(items, patient_split([it.patient for it in items],
                                                    strata=[it.label for it in items]))

    def make_study() -> dict[str, list[str]]:
        patients = list(dict.fromkeys(it.patient for it in items))      # first appearance, file order
        group = {patients[p]: name for name, pos in brain_tumor_study_split(len(patients)).items()
                 for p in pos}
        return {name: [it.key for it in items if group[it.patient] == name]
                for name in ("train", "val", "test")}

    splits = study_splits.resolve(root, items, make, make_study, options, SPEC.title, CLASSES)
    return BrainTumorIndex(spec=SPEC, root=root, items=items, splits=splits)


SPEC = DatasetSpec(
    id="brain_tumor", title="Figshare Brain Tumor", modality="mri", task="classification",
    label_kind="multiclass", class_names=CLASSES, folder="brain_tumor",
    download_hint=("download https://figshare.com/articles/dataset/brain_tumor_dataset/1512427 and "
                   "unzip the brainTumorDataPublic_*.zip archives (1.mat ... 3064.mat) here"),
    index=index, write_phantom=phantom_writer("radbench_core.data.phantoms.brain_tumor"),
    size=DatasetSize.dealt(3_064, note="Table 1's 3,064 images (1.mat ... 3064.mat), dealt 70/10/20"))
