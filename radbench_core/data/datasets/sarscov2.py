"""SARS-CoV-2 CT: COVID-19 vs not, one label per patient volume of 8-bit PNG slices.

Layouts accepted (class folder names are matched case-insensitively):
- the per-patient release: ``Covid/``, ``Healthy/``, ``Others/``, each holding one folder of PNG
  slices per patient (Healthy + Others = negative);
- the flat Kaggle release: ``COVID/`` and ``non-COVID/`` holding slice images directly. Each file is
  then its own item (1 slice); files named with a patient prefix (``Patient12_3.png``, ``P12-3.png``)
  are grouped under that patient for splitting.
A volume's slices are sorted in natural (numeric-aware) order, resized to the first slice's size,
and scaled to [0, 1] together so intensities stay comparable across the volume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.base import DatasetIndex, DatasetSize, DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.data.datasets.csvtools import IMAGE_SUFFIXES, list_dirs, list_files, read_raw
from radbench_core.data.datasets.preprocess import to_unit
from radbench_core.data.datasets import study_splits
from radbench_core.data.datasets.splits import keys_by_group, natural_key, patient_split
from radbench_core.core.errors import DatasetError

CLASSES: tuple[str, ...] = ("negative", "covid")
CLASS_FOLDERS = {"covid": 1, "healthy": 0, "others": 0, "non-covid": 0}
_PATIENT_PREFIX = re.compile(r"^(patient|pat|p)[ _-]?(\d+)[ _-]", re.IGNORECASE)
_FIX = ("download the SARS-CoV-2 CT-scan dataset (Soares et al.) and unpack it unchanged: class "
        "folders Covid/, Healthy/, Others/ of patient folders, or COVID/ and non-COVID/")


def _resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


@dataclass
class SarsCov2Index(DatasetIndex):
    """Serves a patient volume as ``(S, H, W)``: slices in natural order, one shared intensity scale."""

    def load_slices(self, item: Item) -> np.ndarray:
        first = read_raw(self.root / item.images[0])
        shape = first.shape
        vol = np.empty((len(item.images),) + shape, dtype=np.float32)
        vol[0] = first
        for s, rel in enumerate(item.images[1:], start=1):
            arr = read_raw(self.root / rel)
            vol[s] = arr if arr.shape == shape else _resize(arr, shape)
        return to_unit(vol)


def _patient_of_file(folder: str, name: str) -> str:
    match = _PATIENT_PREFIX.match(name)
    if match:
        return f"{folder}/patient{int(match.group(2))}"
    return f"{folder}/{name}"


def index(root: Path, options: LoadOptions) -> SarsCov2Index:
    """Index class folders of patient folders (volumes) and/or loose slice files (1-slice items)."""
    root = Path(root)
    class_dirs = sorted((d for d in list_dirs(root) if d.lower() in CLASS_FOLDERS), key=natural_key)
    if not class_dirs:
        raise DatasetError(root, "no class folder found; expected Covid/, Healthy/, Others/ or "
                                 "COVID/, non-COVID/", _FIX)
    items: list[Item] = []
    for cls in class_dirs:
        label = CLASS_FOLDERS[cls.lower()]
        for patient in sorted(list_dirs(root / cls), key=natural_key):
            slices = sorted(list_files(root / cls / patient, IMAGE_SUFFIXES), key=natural_key)
            if not slices:
                raise DatasetError(root / cls / patient, "the patient folder holds no PNG/JPEG slices",
                                   "remove the empty folder or re-download this patient")
            key = f"{cls}/{patient}"
            items.append(Item(key=key, patient=key, label=label, n_slices=len(slices),
                              images=tuple(f"{key}/{s}" for s in slices)))
        for name in sorted(list_files(root / cls, IMAGE_SUFFIXES), key=natural_key):
            items.append(Item(key=f"{cls}/{name}", patient=_patient_of_file(cls, name), label=label,
                              images=(f"{cls}/{name}",)))
    if not items:
        raise DatasetError(root, f"the class folders {class_dirs} hold no slices", _FIX)
    labels = {it.label for it in items}
    if labels != {0, 1}:
        raise DatasetError(root, f"only class(es) {sorted(labels)} present; expected both COVID "
                                 "and non-COVID cases", _FIX)

    def make() -> dict[str, list[str]]:
        return keys_by_group(items, patient_split([it.patient for it in items],
                                                    strata=[it.label for it in items]))

    def make_study() -> dict[str, list[str]]:
        order = list(dict.fromkeys(it.patient for it in items))     # Covid, Healthy, Others; folder order
        return study_splits.by_patient(items, order, study_splits.systematic_study_split("sarscov2", len(order)))

    splits = study_splits.resolve(root, items, make, make_study, options, SPEC.title, CLASSES)
    return SarsCov2Index(spec=SPEC, root=root, items=items, splits=splits)


SPEC = DatasetSpec(
    id="sarscov2", title="SARS-CoV-2 CT", modality="ct", task="classification",
    label_kind="binary", class_names=CLASSES, folder="sarscov2_ct",
    download_hint=("download the SARS-CoV-2 CT-scan dataset (Soares et al., kaggle.com/"
                   "plameneduardo) and unpack Covid/, Healthy/, Others/ (or COVID/, non-COVID/)"),
    index=index, write_phantom=phantom_writer("radbench_core.data.phantoms.sarscov2"), volumetric=True,
    size=DatasetSize.dealt(210, slices_per_item=60,
                           note="Table 1's 210 patients, dealt 70/10/20; 60 slices each is an ESTIMATE"))
