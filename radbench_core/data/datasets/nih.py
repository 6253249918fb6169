"""NIH ChestX-ray14: 14-label chest X-ray classification read from the NIH release as downloaded.

Layout: ``Data_Entry_2017.csv`` (original: trailing comma on every row, ages like ``058Y``) or
``Data_Entry_2017_v2020.csv``; PNGs in ``images/`` or ``images_001/images/`` ... ``images_012/images/``;
``train_val_list.txt`` / ``test_list.txt`` (the official test set).
Labels are the study's 15 outputs (repo dinov2/data/datasets/nih_chest_xray.py: a MultiLabelBinarizer
over the "Finding Labels" strings, so "No Finding" is a column of its own and the columns are in
sorted order); the macro AUROC averages all 15, as the study's MultilabelAUROC did.
Indexing reads the CSV once and lists each image folder once; images are never opened or stat-ed
until a slice is requested, so 112,120 rows index in well under a second or two.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.base import DatasetSize, DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.data.datasets.csvtools import ImageFileIndex, list_dirs, list_files, read_csv
from radbench_core.data.datasets import study_splits
from radbench_core.data.datasets.splits import patient_split
from radbench_core.core.errors import DatasetError

# the 14 findings in the release's order (what a film can show; the phantom draws these)
CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
NO_FINDING = "No Finding"
# the study's outputs: the 14 findings + "No Finding", sorted as sklearn's MultiLabelBinarizer sorts
STUDY_LABELS: tuple[str, ...] = tuple(sorted(CLASSES + (NO_FINDING,)))
CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")   # v2020 (corrected) wins if both
REQUIRED = ("Image Index", "Finding Labels", "Patient ID")
TRAIN_VAL_LIST, TEST_LIST = "train_val_list.txt", "test_list.txt"
VAL_FRACTION = 0.1            # of the official train_val patients; the test set is official
OFFICIAL_TRAIN_VAL, OFFICIAL_TEST = 86_524, 25_596      # lines of train_val_list.txt / test_list.txt
# written by the study's make_val_set (nih_chest_xray.py) beside the official lists: read as they are
# under the study's split rule
STUDY_LISTS = ("train_list.txt", "val_list.txt")
_ARCHIVE_DIR = re.compile(r"^images_\d{3}$")
_FIX = ("download Data_Entry_2017_v2020.csv (or Data_Entry_2017.csv) from the NIH ChestX-ray14 "
        "release (https://nihcc.app.box.com/v/ChestXray-NIHCC) into this folder")


def image_locations(root: Path) -> dict[str, str]:
    """Image file name -> path relative to root, from one directory listing per image folder."""
    folders = ["images"]
    for name in sorted(list_dirs(root)):
        if _ARCHIVE_DIR.match(name):
            folders += [f"{name}/images", name]
    found: dict[str, str] = {}
    for folder in folders:
        for name in list_files(root / folder, (".png",)):
            found.setdefault(name, f"{folder}/{name}")
    return found


def _parse_labels(csv_path: Path, column: "np.ndarray") -> list[tuple[float, ...]]:
    """``A|B`` strings -> 0/1 tuples over STUDY_LABELS; an unknown name is a DatasetError."""
    position = {name: i for i, name in enumerate(STUDY_LABELS)}
    cache: dict[str, tuple[float, ...]] = {}
    for text in set(column):
        row = [0.0] * len(STUDY_LABELS)
        for name in (t.strip() for t in text.split("|")):
            if name not in position:
                raise DatasetError(csv_path, f"column 'Finding Labels' holds {name!r}, outside the "
                                             f"declared set {STUDY_LABELS}",
                                   "restore the original CSV from the NIH release")
            row[position[name]] = 1.0
        cache[text] = tuple(row)
    return [cache[t] for t in column]


def _read_list(path: Path, known: set[str]) -> list[str]:
    if not path.is_file():
        raise DatasetError(path, "the official split list is missing",
                           "download train_val_list.txt and test_list.txt from the NIH release, "
                           "or pass a split file (LoadOptions.split_file)")
    names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DatasetError(path, f"{len(unknown)} listed image(s) are not in the CSV, e.g. "
                                 f"{unknown[:3]}", "use the list files and CSV of the same release")
    return names


def _check_lists_partition(root: Path, known: set[str], test: set[str], train_val: list[str]) -> None:
    """The release puts every image in exactly one list: an overlap or a cut list is a wrong split."""
    lists = f"{root / TRAIN_VAL_LIST} and {root / TEST_LIST}"
    both = sorted(test.intersection(train_val))
    if both:
        raise DatasetError(lists, f"{len(both)} image(s) are in both lists, e.g. {both[:3]}",
                           "list every image in exactly one of them (restore the release's list files)")
    unlisted = sorted(known - test - set(train_val))
    if unlisted and test and train_val:          # an empty list is the empty-split error instead
        raise DatasetError(lists, f"{len(unlisted)} of the {len(known)} images of the CSV are in neither "
                                  f"list, e.g. {unlisted[:3]} (a list file cut short?)",
                           "restore the release's train_val_list.txt and test_list.txt, or pass a "
                           "split file (--radbench-splits nih=FILE)")


def index(root: Path, options: LoadOptions) -> ImageFileIndex:
    """Index the NIH release in ``root`` (CSV + folder listings only; images are read lazily)."""
    root = Path(root)
    csv_path = next((root / n for n in CSV_NAMES if (root / n).is_file()), root / CSV_NAMES[1])
    frame = read_csv(csv_path, REQUIRED, _FIX)
    names = frame["Image Index"].str.strip().to_numpy()
    bad = [n for n in names if "/" in n or "\\" in n or n.startswith("..")]
    if bad:
        raise DatasetError(csv_path, f"column 'Image Index' holds paths such as {bad[0]!r}; "
                                     "expected bare PNG file names", "restore the original CSV")
    patients = frame["Patient ID"].str.strip().str.lstrip("0").replace("", "0").to_numpy()
    labels = _parse_labels(csv_path, frame["Finding Labels"].to_numpy())
    where = image_locations(root)
    items = [Item(key=n, patient=p, images=(where.get(n, f"images/{n}"),), label=lab)
             for n, p, lab in zip(names, patients, labels)]
    if len({it.key for it in items}) != len(items):
        raise DatasetError(csv_path, "column 'Image Index' repeats image names",
                           "restore the original CSV from the NIH release")

    def make() -> dict[str, list[str]]:
        known = {it.key for it in items}
        test = set(_read_list(root / TEST_LIST, known))
        train_val = _read_list(root / TRAIN_VAL_LIST, known)
        _check_lists_partition(root, known, test, train_val)
        pos = {it.key: it for it in items}
        groups = patient_split([pos[k].patient for k in train_val], (1 - VAL_FRACTION, VAL_FRACTION),
                               ("train", "val"))
        return {"train": [train_val[i] for i in groups["train"]],
                "val": [train_val[i] for i in groups["val"]],
                "test": [it.key for it in items if it.key in test]}

    def make_study() -> dict[str, list[str]]:
        known = {it.key for it in items}
        test = set(_read_list(root / TEST_LIST, known))
        train_val = _read_list(root / TRAIN_VAL_LIST, known)
        _check_lists_partition(root, known, test, train_val)
        tests = [it.key for it in items if it.key in test]
        if all((root / name).is_file() for name in STUDY_LISTS):     # the study's own files, as they are
            train, val = (_read_list(root / name, known) for name in STUDY_LISTS)
            if sorted(train + val) != sorted(train_val):
                raise DatasetError(root / STUDY_LISTS[1], f"{STUDY_LISTS[0]} + {STUDY_LISTS[1]} are not "
                                   f"the images of {TRAIN_VAL_LIST}", "use the two files the study's "
                                   "make_val_set wrote from this release's list, or remove both")
            return {"train": train, "val": val, "test": tests}
        return {**study_splits.nih_study_val(train_val), "test": tests}

    # the study's val is the last rows of train_val_list.txt: the patient at the cut is in both
    splits = study_splits.resolve(root, items, make, make_study, options, SPEC.title, SPEC.class_names,
                                  shared_patients=True)
    return ImageFileIndex(spec=SPEC, root=root, items=items, splits=splits)


SPEC = DatasetSpec(
    id="nih", title="NIH ChestX-ray14", modality="xray", task="classification",
    label_kind="multilabel", class_names=STUDY_LABELS, folder="nih_chestxray14",
    download_hint=("download ChestX-ray14 from https://nihcc.app.box.com/v/ChestXray-NIHCC: "
                   "Data_Entry_2017_v2020.csv, train_val_list.txt, test_list.txt and the "
                   "images_001..012 archives (extracted to images/ or images_0NN/images/)"),
    index=index, write_phantom=phantom_writer("radbench_core.data.phantoms.nih"),
    size=DatasetSize(train=OFFICIAL_TRAIN_VAL - round(OFFICIAL_TRAIN_VAL * VAL_FRACTION),
                     val=round(OFFICIAL_TRAIN_VAL * VAL_FRACTION), test=OFFICIAL_TEST,
                     note="official train_val_list / test_list counts (112,120 images); val is "
                          "VAL_FRACTION of the train_val patients, estimated in images"))
