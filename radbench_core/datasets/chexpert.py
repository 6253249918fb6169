"""CheXpert: the five competition labels on frontal chest X-rays, read from the Stanford release.

Layout: ``CheXpert-v1.0-small/train.csv`` and ``valid.csv`` (the root may also be that folder
itself); ``Path`` values start with the release folder name. Observations are 1.0 / 0.0 / -1.0
(uncertain) / blank (not mentioned = 0). The uncertainty policy (LoadOptions.uncertainty) maps -1
to 0 ("zeros", the default), 1 ("ones") or NaN ("ignore": left out of loss and metrics).
The official validation set is our test split; train.csv is split into train/val by patient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radbench_core.datasets.base import DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.datasets.csvtools import ImageFileIndex, read_csv, safe_relpath
from radbench_core.datasets.splits import patient_split, resolve_splits
from radbench_core.errors import ConfigError, DatasetError

CLASSES: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                            "Pleural Effusion")
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices")
RELEASE_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
REQUIRED = ("Path", "Frontal/Lateral") + CLASSES
POLICIES = {"zeros": 0.0, "ones": 1.0, "ignore": float("nan")}
VALUES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "-1.0": -1.0, "-1": -1.0, "": 0.0}
VAL_FRACTION = 0.1
_FIX = "download CheXpert-v1.0-small from Stanford AIMI and unpack it unchanged into the data folder"


def release_folder(root: Path) -> tuple[Path, str]:
    """(folder holding train.csv, its name as the CSV paths' first component should map to).

    The returned prefix is "" when ``root`` is the release folder itself.
    """
    if (root / "train.csv").is_file():
        return root, ""
    for name in RELEASE_FOLDERS:
        if (root / name / "train.csv").is_file():
            return root / name, name
    raise DatasetError(root / RELEASE_FOLDERS[0] / "train.csv", "the CheXpert train.csv is missing",
                       _FIX)


def _label_matrix(csv_path: Path, frame: pd.DataFrame, policy: float) -> np.ndarray:
    out = np.zeros((len(frame), len(CLASSES)), dtype=np.float64)
    for j, col in enumerate(CLASSES):
        text = frame[col].str.strip()
        bad = ~text.isin(list(VALUES))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            line = int(frame.index[row]) + 2          # 1-based, after the header line
            raise DatasetError(csv_path, f"column {col!r} line {line} holds {text.iloc[row]!r}; "
                                         "expected 1.0, 0.0, -1.0 or blank", _FIX)
        values = text.map(VALUES).to_numpy(dtype=np.float64)
        out[:, j] = np.where(values == -1.0, policy, values)
    return out


def _rows(csv_path: Path, prefix: str, policy: float) -> list[Item]:
    """Frontal items of one CSV, paths made relative to the dataset root and checked."""
    frame = read_csv(csv_path, REQUIRED, _FIX)
    view = frame["Frontal/Lateral"].str.strip()
    if not view.isin(["Frontal", "Lateral"]).all():
        other = view[~view.isin(["Frontal", "Lateral"])].iloc[0]
        raise DatasetError(csv_path, f"column 'Frontal/Lateral' holds {other!r}; expected Frontal "
                                     "or Lateral", _FIX)
    frame = frame[(view == "Frontal").to_numpy()]       # keeps the CSV row numbers as index
    paths = frame["Path"].str.strip().str.replace("\\", "/", regex=False)
    escapes = (paths.str.startswith("/") | paths.str.match(r"^[A-Za-z]:")
               | paths.str.contains(r"(?:^|/)\.\.(?:/|$)") | (paths == ""))
    if escapes.any():
        safe_relpath(paths[escapes].iloc[0], csv_path)   # raises with the offending path
    patients = paths.str.extract(r"(?:^|/)(patient\d+)(?:/|$)", expand=False)
    if patients.isna().any():
        bad = paths[patients.isna()].iloc[0]
        raise DatasetError(csv_path, f"column 'Path' value {bad!r} has no patientNNNNN folder",
                           _FIX)
    rest = paths.str.split("/", n=1).str[1].fillna("")
    rel = (prefix + "/" + rest) if prefix else rest
    labels = _label_matrix(csv_path, frame, policy)
    return [Item(key=k, patient=p, images=(r,), label=tuple(lab))
            for k, p, r, lab in zip(paths, patients, rel, labels.tolist())]


def index(root: Path, options: LoadOptions) -> ImageFileIndex:
    """Index the frontal views of train.csv + valid.csv under the chosen uncertainty policy."""
    if options.uncertainty not in POLICIES:
        raise ConfigError("LoadOptions.uncertainty", f"unknown CheXpert uncertainty policy "
                                                     f"{options.uncertainty!r}",
                          f"use one of {sorted(POLICIES)}")
    root = Path(root)
    folder, prefix = release_folder(root)
    policy = POLICIES[options.uncertainty]
    train = _rows(folder / "train.csv", prefix, policy)
    valid = _rows(folder / "valid.csv", prefix, policy)
    items = train + valid
    if len({it.key for it in items}) != len(items):
        raise DatasetError(folder, "the same image Path appears twice in train.csv/valid.csv", _FIX)

    def make() -> dict[str, list[str]]:
        groups = patient_split([it.patient for it in train], (1 - VAL_FRACTION, VAL_FRACTION),
                               ("train", "val"))
        return {"train": [train[i].key for i in groups["train"]],
                "val": [train[i].key for i in groups["val"]],
                "test": [it.key for it in valid]}

    splits = resolve_splits(root, items, make, options, SPEC.title)
    return ImageFileIndex(spec=SPEC, root=root, items=items, splits=splits)


SPEC = DatasetSpec(
    id="chexpert", title="CheXpert", modality="xray", task="classification",
    label_kind="multilabel", class_names=CLASSES, folder="chexpert",
    download_hint=("download CheXpert-v1.0-small from https://stanfordaimi.azurewebsites.net/ and "
                   "unpack it so the folder holds CheXpert-v1.0-small/train.csv and valid.csv"),
    index=index, write_phantom=phantom_writer("radbench_core.phantoms.chexpert"))
