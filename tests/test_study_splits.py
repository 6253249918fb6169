"""The study's split rule on MSD, SARS-CoV-2 and NIH (switch ``patient_split_70_10_20``, ``paper``).

Each test writes a folder of the dataset's real size in its native layout (tiny files) and reads it
through the loader with ``split_rule="study"``; the expected splits are computed here with the
study's own lines (msd_spleen.py / msd_hipp.py ``data_split``, sars_cov_2_ct.py ``make_splits``,
nih_chest_xray.py ``make_val_set``), written out as the study wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from radbench_core.config.switches import STUDY, switch_values, switches
from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets import msd, nih, sarscov2
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.study_splits import systematic_study_split

STUDY_RULE, OURS = LoadOptions(split_rule="study"), LoadOptions()


def _sizes(index) -> tuple[int, int, int]:
    return tuple(len(index.splits[s]) for s in ("train", "val", "test"))


def _msd_folder(root: Path, prefix: str, numbers: list[int], classes: int = 1) -> list[str]:
    """An MSD task folder: dataset.json listing the cases in number order, 4x4x2 volumes."""
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    training = []
    for n in numbers:
        name = f"{prefix}_{n}.nii.gz"
        for sub, data in (("imagesTr", np.zeros((4, 4, 2), np.float32)), ("labelsTr", np.zeros((4, 4, 2), np.uint8))):
            nib.save(nib.Nifti1Image(data, np.eye(4)), str(root / sub / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"labels": {str(c): f"c{c}" for c in range(classes + 1)},
                                                   "training": training, "test": []}))
    return [f"{prefix}_{n}.nii.gz" for n in numbers]


def _study_data_split(images: list[str], n_test: int, n_val: int) -> dict[str, list[str]]:
    """msd_spleen.py / msd_hipp.py data_split, its lines (os.listdir on NTFS = name order)."""
    images = sorted(images, key=str.lower)
    n_volumes = len(images)
    test_list = np.arange(0, n_volumes, n_volumes / n_test).round().astype("int")
    val_list = np.arange(0, n_volumes - n_test, (n_volumes - n_test) / n_val).round().astype("int")
    test = [images[i] for i in test_list]
    for volume in test:
        images.remove(volume)
    val = [images[i] for i in val_list]
    for volume in val:
        images.remove(volume)
    return {"train": images, "val": val, "test": test}


def _keys(index, split: str) -> set[str]:
    return {index.items[i].key for i in index.splits[split]}


def _case(name: str) -> str:
    return name.replace(".nii.gz", "")


# the real case numbers of Task09_Spleen's 41 training cases are 2..63 with gaps; any 41 distinct
# numbers whose name order differs from number order exercise the same rule
SPLEEN = [2, 3, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 31, 32, 33,
          38, 40, 41, 44, 45, 46, 47, 49, 52, 53, 56, 59, 60, 61, 62, 63]


def test_msd_spleen_41_volumes_are_split_16_10_15_as_data_split(tmp_path: Path) -> None:
    assert len(SPLEEN) == 41
    names = _msd_folder(tmp_path, "spleen", SPLEEN)
    index = msd.SPLEEN.index(tmp_path, STUDY_RULE)
    assert _sizes(index) == (16, 10, 15)
    want = _study_data_split(names, 15, 10)
    for split in ("train", "val", "test"):
        assert _keys(index, split) == {_case(n) for n in want[split]}, split
    ours = msd.SPLEEN.index(tmp_path, OURS)
    assert _sizes(ours) != (16, 10, 15) and sum(_sizes(ours)) == 41


def test_msd_hippocampus_rule_gives_120_60_80_of_260_and_the_loader_follows_it(tmp_path: Path) -> None:
    names = [f"hippocampus_{n:03d}.nii.gz" for n in range(1, 261)]
    want = _study_data_split(names, 80, 60)
    got = systematic_study_split("msd_hippocampus", 260)
    for split in ("train", "val", "test"):
        assert [names[i] for i in got[split]] == sorted(want[split]), split
    assert [len(got[s]) for s in ("train", "val", "test")] == [120, 60, 80]
    # the loader on a 26-volume folder: the same shares (8 test, 6 val), same rule
    small = _msd_folder(tmp_path, "hippocampus", list(range(1, 27)), classes=2)
    index = msd.HIPPOCAMPUS.index(tmp_path, STUDY_RULE)
    want = _study_data_split(small, 8, 6)
    assert _sizes(index) == (12, 6, 8)
    assert _keys(index, "test") == {_case(n) for n in want["test"]}


def test_msd_heart_20_volumes_are_split_12_4_4(tmp_path: Path) -> None:
    numbers = [3, 4, 5, 7, 9, 10, 11, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 29, 30]   # la_NNN
    names = _msd_folder(tmp_path, "la", numbers)
    index = msd.HEART.index(tmp_path, STUDY_RULE)
    assert _sizes(index) == (12, 4, 4)
    want = _study_data_split(names, 4, 4)
    assert _keys(index, "val") == {_case(n) for n in want["val"]}


def _sars_folder(root: Path, counts: dict[str, int]) -> list[str]:
    patients = []
    for cls, n in counts.items():
        for p in range(1, n + 1):
            folder = root / cls / f"patient{p}"
            folder.mkdir(parents=True)
            Image.fromarray(np.full((8, 8), p % 255, np.uint8)).save(folder / "1.png")
            patients.append(f"{cls}/patient{p}")
    return patients


def test_sarscov2_210_patients_are_split_90_50_70_as_make_splits(tmp_path: Path) -> None:
    patients = _sars_folder(tmp_path, {"Covid": 80, "Healthy": 50, "Others": 80})
    index = sarscov2.index(tmp_path, STUDY_RULE)
    assert _sizes(index) == (90, 50, 70)
    # make_splits: patients renamed 0..209 (Covid, Healthy, Others), sorted as integers
    all_images = np.arange(210)
    test_list = np.arange(0, 210, 210 / 70).round().astype("int")
    val_list = np.arange(0, 140, 140 / 50).round().astype("int")
    test_images = all_images[test_list]
    train_val_images = np.delete(all_images, test_list)
    val_images = train_val_images[val_list]
    assert _keys(index, "test") == {patients[i] for i in test_images}
    assert _keys(index, "val") == {patients[i] for i in val_images}
    ours = sarscov2.index(tmp_path, OURS)
    assert _sizes(ours) == (147, 21, 42)                # 70 / 10 / 20 % of 210 patients


def _nih_folder(root: Path, n_train_val: int, n_test: int, per_patient: int = 4) -> list[str]:
    names = [f"{i:08d}_000.png" for i in range(n_train_val + n_test)]
    rows = ["Image Index,Finding Labels,Patient ID"]
    rows += [f"{n},No Finding,{i // per_patient + 1}" for i, n in enumerate(names)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text("\n".join(rows) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(names[:n_train_val]) + "\n")
    (root / "test_list.txt").write_text("\n".join(names[n_train_val:]) + "\n")
    return names


def test_nih_val_is_the_last_10002_rows_of_train_val_list_as_make_val_set(tmp_path: Path) -> None:
    names = _nih_folder(tmp_path, nih.OFFICIAL_TRAIN_VAL, nih.OFFICIAL_TEST)
    index = nih.index(tmp_path, STUDY_RULE)
    assert _sizes(index) == (76_522, 10_002, 25_596)       # the study's split lengths
    train_val = names[:nih.OFFICIAL_TRAIN_VAL]              # make_val_set's lines:
    val_list = [i for i in range(len(train_val) - 10_002, len(train_val))]
    assert _keys(index, "val") == {train_val[i] for i in val_list}
    # the cut is by row: the patient of rows 76,520-76,523 has images in train and in val, as in the study
    patient = {it.key: it.patient for it in index.items}
    assert {patient[n] for n in train_val[76_520:76_524]} == {"19131"}
    assert patient[train_val[76_521]] == patient[train_val[76_522]] == "19131"
    ours = nih.index(tmp_path, OURS)
    assert len(ours.splits["test"]) == 25_596 and len(ours.splits["val"]) != 10_002


def test_nih_study_list_files_are_read_as_they_are(tmp_path: Path) -> None:
    names = _nih_folder(tmp_path, 90, 30, per_patient=3)
    val = names[5:15]                                       # not the last rows: the file decides
    (tmp_path / "val_list.txt").write_text("\n".join(val) + "\n")
    (tmp_path / "train_list.txt").write_text("\n".join(n for n in names[:90] if n not in val) + "\n")
    index = nih.index(tmp_path, STUDY_RULE)
    assert _keys(index, "val") == set(val) and _sizes(index) == (80, 10, 30)
    (tmp_path / "train_list.txt").write_text("\n".join(names[20:90]) + "\n")      # 5 images lost
    with pytest.raises(DatasetError, match=r"val_list\.txt.*train_list\.txt \+ val_list\.txt are not"):
        nih.index(tmp_path, STUDY_RULE)


def test_the_switch_covers_every_dataset_with_a_study_rule() -> None:
    sw = switches()["patient_split_70_10_20"]
    assert set(sw.datasets) == {"mc", "brain_tumor", "msd_spleen", "msd_hippocampus", "msd_heart", "sarscov2", "nih"}
    assert switch_values(STUDY)["patient_split_70_10_20"] == "study" and sw.load_option == "split_rule"
