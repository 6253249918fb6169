"""CheXpert loader: the study's labels and split (official test labels), the declared fallback
without them, frontal-only filter, uncertainty policies on hand-written rows, errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.chexpert import CLASSES, OBSERVATIONS, TEST_FROM_TRAIN, index
from radbench_core.core.errors import ConfigError, DatasetError
from radbench_core.data.phantoms.chexpert import FOLDER, HEADER, TEST_HEADER, write_phantom

SPEC = get_dataset("chexpert")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chexpert")
    write_phantom(root, "tiny", seed=0)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_label_set_is_the_studys():
    # repo dinov2/data/datasets/chexpert.py: these five columns in this order, U-Zeros, blank = 0
    assert CLASSES == ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
    assert SPEC.class_names == CLASSES and LoadOptions().uncertainty == "zeros"


def test_phantom_split_is_the_studys(phantom):
    ix = open_dataset(SPEC, phantom)
    assert ix.deviations == ("chexpert_small_release",)      # the phantom is laid out as the small release
    rows = {s: _rows(phantom / FOLDER / f"{s}.csv") for s in ("train", "valid", "test")}
    laterals = [r["Path"] for r in rows["train"] + rows["valid"] if r["Frontal/Lateral"] == "Lateral"]
    laterals += [r["Path"] for r in rows["test"] if "lateral" in r["Path"]]
    assert len(laterals) > 3 and not {it.key for it in ix.items} & set(laterals)
    frontal = {s: [r["Path"] for r in rows[s] if "frontal" in r["Path"]] for s in rows}
    assert [it.key for it in ix.split_items("train")] == frontal["train"]      # all of train.csv
    assert [it.key for it in ix.split_items("val")] == frontal["valid"]        # official valid
    assert [it.key for it in ix.split_items("test")] == frontal["test"]        # official test
    assert {k: len(v) for k, v in ix.splits.items()} == {"train": 36, "val": 12, "test": 8}
    owners = {}
    for split in ("train", "val", "test"):
        for patient in ix.patients(split):
            assert patient.startswith("patient") and owners.setdefault(patient, split) == split
    by_path = {r["Path"]: r for r in rows["test"]}
    for it in ix.split_items("test"):
        assert list(it.label) == [float(by_path[it.key][c]) for c in CLASSES]
        assert it.images[0] == f"{FOLDER}/{it.key}"
    img = ix.load_slices(ix.split_items("test")[0])
    assert img.shape == (1, 64, 64) and img.dtype == np.float32 and 0 <= img.min() <= img.max() <= 1


def test_without_test_labels_the_declared_fallback_takes_test_from_train(tmp_path):
    write_phantom(tmp_path, "tiny", seed=0, test_labels=False)
    assert not (tmp_path / FOLDER / "test.csv").exists()
    with pytest.warns(UserWarning, match=r"no official CheXpert test labels.*chexpert_test_from_train"
                                         r".*Add the test labels CSV"):
        ix = index(tmp_path, LoadOptions())
    assert ix.deviations == (TEST_FROM_TRAIN, "chexpert_small_release")
    assert TEST_FROM_TRAIN == "chexpert_test_from_train"
    train_rows = [r for r in _rows(tmp_path / FOLDER / "train.csv") if r["Frontal/Lateral"] == "Frontal"]
    valid_rows = [r for r in _rows(tmp_path / FOLDER / "valid.csv") if r["Frontal/Lateral"] == "Frontal"]
    assert [it.key for it in ix.split_items("val")] == [r["Path"] for r in valid_rows]
    test_patients, train_patients = set(ix.patients("test")), set(ix.patients("train"))
    assert not test_patients & train_patients
    # 12 train patients dealt 90/10 by largest deficit: patients 1-5 train (5th: tie 0.5/0.5 -> the
    # earlier group), the 6th has deficits 0.4 (train) vs 0.6 (test) -> test; 7-12 train again
    assert test_patients == {"patient00006"}
    assert len(ix.splits["train"]) + len(ix.splits["test"]) == len(train_rows)
    # a CheXlocalize-named test file (test_labels.csv, release prefix in Path) brings the study's split
    lines = [",".join(TEST_HEADER)]
    for p in (64741, 64742):
        lines.append(",".join([f"{FOLDER}/test/patient{p}/study1/view1_frontal.jpg"]
                              + ["1" if o == "Edema" else "0" for o in OBSERVATIONS]))
    lines.append(",".join([f"{FOLDER}/test/patient64742/study1/view2_lateral.jpg"] + ["0"] * 14))
    (tmp_path / FOLDER / "test_labels.csv").write_text("\n".join(lines) + "\n")
    study = index(tmp_path, LoadOptions())
    assert study.deviations == ("chexpert_small_release",)
    assert study.patients("test") == ["patient64741", "patient64742"]
    np.testing.assert_array_equal(study.labels("test"), [[0, 1, 0, 0, 0]] * 2)
    assert len(study.splits["train"]) == len(train_rows)


def test_labels_match_csv_under_default_policy(phantom):
    ix = index(phantom, LoadOptions())
    by_path = {r["Path"]: r for r in _rows(phantom / FOLDER / "train.csv")}
    for it in ix.split_items("train"):
        row = by_path[it.key]
        expected = [1.0 if row[c] == "1.0" else 0.0 for c in CLASSES]
        assert list(it.label) == expected
    assert ix.labels("train").shape == (36, 5)


def test_root_may_be_the_release_folder(phantom):
    inner = index(phantom / FOLDER, LoadOptions())
    outer = index(phantom, LoadOptions())
    assert [i.key for i in inner.items] == [i.key for i in outer.items]
    assert inner.items[0].images[0] == outer.items[0].images[0][len(FOLDER) + 1:]
    np.testing.assert_array_equal(inner.load_slices(inner.items[0]), outer.load_slices(outer.items[0]))


def _hand_written(root: Path, special: list[str]) -> Path:
    """train.csv with 10 patients; patient00001's row has the given 5 competition-label cells."""
    folder = root / FOLDER
    folder.mkdir(parents=True)
    for split, first, n in (("train", 1, 10), ("valid", 64541, 3)):
        lines = [",".join(HEADER)]
        for p in range(first, first + n):
            cells = {o: "0.0" for o in OBSERVATIONS}
            if p == 1:
                cells.update(dict(zip(CLASSES, special)))
            path = f"{FOLDER}/{split}/patient{p:05d}/study1/view1_frontal.jpg"
            lines.append(",".join([path, "Female", "60", "Frontal", "AP"] + [cells[o] for o in OBSERVATIONS]))
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("policy, expected", [
    ("zeros", [1.0, 0.0, 0.0, 0.0, 0.0]),
    ("ones", [1.0, 1.0, 0.0, 0.0, 1.0]),
    ("ignore", [1.0, math.nan, 0.0, 0.0, math.nan]),
])
def test_uncertainty_policies_on_a_hand_written_row(tmp_path, policy, expected):
    root = _hand_written(tmp_path, ["1.0", "-1.0", "", "0.0", "-1"])
    ix = index(root, LoadOptions(uncertainty=policy))
    item = next(it for it in ix.items if it.patient == "patient00001")
    np.testing.assert_array_equal(np.array(item.label), np.array(expected))
    others = [it for it in ix.items if it.patient != "patient00001"]
    assert all(it.label == (0.0,) * 5 for it in others)


def test_unknown_policy_is_a_config_error(tmp_path):
    root = _hand_written(tmp_path, ["1.0"] * 5)
    with pytest.raises(ConfigError, match=r"LoadOptions.uncertainty.*'maybe'.*Fix: use one of"):
        index(root, LoadOptions(uncertainty="maybe"))


def test_value_outside_declared_set_is_refused(tmp_path):
    root = _hand_written(tmp_path, ["1.0", "2.0", "", "0.0", "0.0"])
    with pytest.raises(DatasetError, match=r"train.csv: column 'Edema' line 2 holds '2.0'"):
        index(root, LoadOptions())


@pytest.mark.parametrize("bad", ["../outside/patient00001/study1/view1_frontal.jpg",
                                 "/etc/patient00001/study1/view1_frontal.jpg"])
def test_paths_escaping_the_root_are_refused(tmp_path, bad):
    root = _hand_written(tmp_path, ["1.0"] * 5)
    path = root / FOLDER / "train.csv"
    path.write_text(path.read_text().replace(f"{FOLDER}/train/patient00002/study1/view1_frontal.jpg", bad))
    with pytest.raises(DatasetError, match="absolute or escapes the dataset folder"):
        index(root, LoadOptions())


def test_missing_csv_and_missing_column(tmp_path):
    with pytest.raises(DatasetError,
                       match=r"CheXpert-v1.0-small/train.csv: the CheXpert train.csv is missing"):
        index(tmp_path, LoadOptions())
    root = _hand_written(tmp_path, ["1.0"] * 5)
    path = root / FOLDER / "valid.csv"
    path.write_text(path.read_text().replace("Frontal/Lateral", "View", 1))
    with pytest.raises(DatasetError, match=r"valid.csv: required column\(s\) \['Frontal/Lateral'\]"):
        index(root, LoadOptions())


def test_corrupt_jpeg_is_a_dataset_error(tmp_path):
    write_phantom(tmp_path, "tiny", seed=2)
    ix = index(tmp_path, LoadOptions())
    victim = tmp_path / ix.items[0].images[0]
    victim.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DatasetError, match=r"view1_frontal.jpg: cannot decode the image.*Fix: re-download"):
        ix.load_slices(ix.items[0])


def test_a_patient_in_train_and_valid_names_the_csv_files(tmp_path):
    """Issue 26: the error named a split cache file "(newly made)" instead of the CSVs."""
    write_phantom(tmp_path, "tiny", seed=0, test_labels=False)
    valid = tmp_path / FOLDER / "valid.csv"
    lines = valid.read_text().splitlines()
    lines[1] = lines[1].replace("valid/patient64541/study1", "valid/patient00001/study9")
    valid.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        open_dataset(get_dataset("chexpert"), tmp_path, LoadOptions(splits_dir=str(tmp_path / "cache")))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / FOLDER / 'train.csv'} and {valid}: patient 'patient00001' is in both")
    assert "newly made" not in text and "cache" not in text
