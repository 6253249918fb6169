"""CheXpert: five observations on frontal chest X-rays, split as the study split it.

Layout: ``CheXpert-v1.0-small/train.csv`` and ``valid.csv`` (the root may also be that folder
itself), plus the official test labels the study scored on (518 frontal images of 500 studies):
``test.csv`` or ``test_labels.csv`` beside them, its ``Path`` values ``test/patientNNNNN/...``
(images under ``CheXpert-v1.0-small/test/``). A leading release-folder name in ``Path`` is dropped.
Observations are 1.0 / 0.0 / -1.0 (uncertain) / blank (not mentioned = 0). The uncertainty policy
(LoadOptions.uncertainty) maps -1 to 0 ("zeros", the study's), 1 ("ones") or NaN ("ignore").

Splits (repo dinov2/data/datasets/chexpert.py: train 191,027 / val 202 / test 518 frontal images):
train = train.csv, val = valid.csv, test = the test labels, frontal views only. Without the test
labels, a declared fallback (deviation ``chexpert_test_from_train``) keeps valid.csv as val and
deals every tenth train patient to test; the index says so in ``index.deviations``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from radbench_core.data.datasets.base import DatasetSize, DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.data.datasets.csvtools import ImageFileIndex, read_csv, safe_relpath
from radbench_core.data.datasets.splits import cap_splits, patient_split, resolve_splits
from radbench_core.core.errors import ConfigError, DatasetError

# the study's outputs, in its order (repo chexpert.py); its later "Uncertain" 6th output is left out
CLASSES: tuple[str, ...] = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis",
                            "Pleural Effusion")
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices")
RELEASE_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
SMALL_RELEASE = "chexpert_small_release"       # deviation id (config/fidelity.py), reported when read
REQUIRED = ("Path", "Frontal/Lateral") + CLASSES
TEST_LABEL_FILES = ("test.csv", "test_labels.csv")    # the study's name first, then CheXlocalize's
TEST_FROM_TRAIN = "chexpert_test_from_train"           # the fallback's deviation id
TEST_FALLBACK_FRACTION = 0.1                           # of the train patients, when no test labels
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


def _frontal_mask(csv_path: Path, frame: pd.DataFrame, paths: pd.Series) -> np.ndarray:
    """Frontal rows: by the Frontal/Lateral column, or (test labels have none) by the file name."""
    if "Frontal/Lateral" not in frame.columns:
        return ~paths.str.contains("lateral", case=False).to_numpy()
    view = frame["Frontal/Lateral"].str.strip()
    if not view.isin(["Frontal", "Lateral"]).all():
        other = view[~view.isin(["Frontal", "Lateral"])].iloc[0]
        raise DatasetError(csv_path, f"column 'Frontal/Lateral' holds {other!r}; expected Frontal "
                                     "or Lateral", _FIX)
    return (view == "Frontal").to_numpy()


def _rows(csv_path: Path, prefix: str, policy: float,
          required: tuple[str, ...] = REQUIRED) -> list[Item]:
    """Frontal items of one CSV, paths made relative to the dataset root and checked."""
    frame = read_csv(csv_path, required, _FIX)
    paths = frame["Path"].str.strip().str.replace("\\", "/", regex=False)
    keep = _frontal_mask(csv_path, frame, paths)
    frame, paths = frame[keep], paths[keep]             # keeps the CSV row numbers as index
    escapes = (paths.str.startswith("/") | paths.str.match(r"^[A-Za-z]:")
               | paths.str.contains(r"(?:^|/)\.\.(?:/|$)") | (paths == ""))
    if escapes.any():
        safe_relpath(paths[escapes].iloc[0], csv_path)   # raises with the offending path
    patients = paths.str.extract(r"(?:^|/)(patient\d+)(?:/|$)", expand=False)
    if patients.isna().any():
        bad = paths[patients.isna()].iloc[0]
        raise DatasetError(csv_path, f"column 'Path' value {bad!r} has no patientNNNNN folder",
                           _FIX)
    first = paths.str.split("/", n=1).str[0]
    rest = paths.where(~first.isin(RELEASE_FOLDERS), paths.str.split("/", n=1).str[1].fillna(""))
    rel = (prefix + "/" + rest) if prefix else rest
    labels = _label_matrix(csv_path, frame, policy)
    return [Item(key=k, patient=p, images=(r,), label=tuple(lab))
            for k, p, r, lab in zip(paths, patients, rel, labels.tolist())]


def test_labels_file(folder: Path) -> Path | None:
    """The official test labels beside train.csv, if the user added them."""
    return next((folder / n for n in TEST_LABEL_FILES if (folder / n).is_file()), None)


def _study_splits(root: Path, items: list[Item], groups: dict[str, list[Item]],
                  options: LoadOptions) -> dict[str, list[int]]:
    """train/valid/test files as the three splits: fixed by the release, so nothing is saved."""
    position = {it.key: i for i, it in enumerate(items)}
    splits = cap_splits({s: [position[it.key] for it in g] for s, g in groups.items()},
                        options.max_items)
    for name, idx in splits.items():
        if not idx:
            raise DatasetError(root, f"the {name!r} split of {SPEC.title} is empty (no frontal "
                                     "rows)", "restore the release's CSV files unchanged")
    return splits


def index(root: Path, options: LoadOptions) -> ImageFileIndex:
    """Index the frontal views of train.csv, valid.csv and (if present) the official test labels."""
    if options.uncertainty not in POLICIES:
        raise ConfigError("LoadOptions.uncertainty", f"unknown CheXpert uncertainty policy "
                                                     f"{options.uncertainty!r}",
                          f"use one of {sorted(POLICIES)}")
    root = Path(root)
    folder, prefix = release_folder(root)
    policy = POLICIES[options.uncertainty]
    train = _rows(folder / "train.csv", prefix, policy)
    valid = _rows(folder / "valid.csv", prefix, policy)
    test_file = test_labels_file(folder)
    test = _rows(test_file, prefix, policy, ("Path",) + CLASSES) if test_file else []
    items = train + valid + test
    if len({it.key for it in items}) != len(items):
        raise DatasetError(folder, "the same image Path appears twice in train.csv, valid.csv and "
                                   "the test labels", _FIX)
    deviations: tuple[str, ...] = ()
    if test_file is not None and options.split_file is None:
        splits = _study_splits(root, items, {"train": train, "val": valid, "test": test}, options)
    else:
        def make() -> dict[str, list[str]]:
            if test_file is not None:
                return {"train": [it.key for it in train], "val": [it.key for it in valid],
                        "test": [it.key for it in test]}
            groups = patient_split([it.patient for it in train],
                                   (1 - TEST_FALLBACK_FRACTION, TEST_FALLBACK_FRACTION),
                                   ("train", "test"))
            return {"train": [train[i].key for i in groups["train"]],
                    "val": [it.key for it in valid],
                    "test": [train[i].key for i in groups["test"]]}

        splits = resolve_splits(root, items, make, options, SPEC.title, SPEC.class_names)
        if test_file is None and options.split_file is None:
            deviations = (TEST_FROM_TRAIN,)
            warnings.warn(f"{folder}: no official CheXpert test labels ({' or '.join(TEST_LABEL_FILES)}"
                          f"); test = every tenth train patient, not the study's 518 frontal test "
                          f"images (deviation {TEST_FROM_TRAIN}). Add the test labels CSV and the "
                          f"test/ images beside train.csv to get the study's split.", stacklevel=2)
    if folder.name == RELEASE_FOLDERS[0]:          # the downsampled release (about 320-390 px)
        deviations += (SMALL_RELEASE,)
    out = ImageFileIndex(spec=SPEC, root=root, items=items, splits=splits)
    out.deviations = deviations            # read by the runner into the cell's record
    return out


SPEC = DatasetSpec(
    id="chexpert", title="CheXpert", modality="xray", task="classification",
    label_kind="multilabel", class_names=CLASSES, folder="chexpert",
    download_hint=("download CheXpert-v1.0-small from https://stanfordaimi.azurewebsites.net/ and "
                   "unpack it so the folder holds CheXpert-v1.0-small/train.csv and valid.csv; "
                   "for the study's test split add the official test labels as "
                   "CheXpert-v1.0-small/test.csv (Path column test/patientNNNNN/...) and the "
                   "test/ images"),
    index=index, write_phantom=phantom_writer("radbench_core.data.phantoms.chexpert"),
    size=DatasetSize(train=191_027, val=202, test=518,
                     note="frontal images of train.csv / valid.csv / the test labels (repo chexpert.py)"))
