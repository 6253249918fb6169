"""NIH ChestX-ray14 loader on its phantom and on hand-made native files (incl. 112,120 rows)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.nih import CLASSES, STUDY_LABELS, index
from radbench_core.core.errors import ConfigError, DatasetError
from radbench_core.data.phantoms.nih import HEADER_2017, finding_centers, write_phantom
from radbench_core.protocols.fewshot import study_fewshot

SPEC = get_dataset("nih")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nih") / "nih"
    write_phantom(root, "tiny", seed=0)
    return root


def _csv_labels(path: Path) -> dict[str, np.ndarray]:
    """Independent reader: the stdlib csv module + sklearn's MultiLabelBinarizer, as the study's
    repo encoded the labels (one column per name seen, "No Finding" included, sorted)."""
    from sklearn.preprocessing import MultiLabelBinarizer
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    mlb = MultiLabelBinarizer(classes=None)
    matrix = mlb.fit_transform([row[1].split("|") for row in rows])
    assert tuple(mlb.classes_) == STUDY_LABELS, "the phantom shows every label; columns as the repo"
    return {row[0]: matrix[i].astype(float) for i, row in enumerate(rows)}


def test_label_set_is_the_studys_fifteen_outputs():
    assert SPEC.class_names == STUDY_LABELS and len(STUDY_LABELS) == 15
    assert STUDY_LABELS == (
        "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
        "Fibrosis", "Hernia", "Infiltration", "Mass", "No Finding", "Nodule",
        "Pleural_Thickening", "Pneumonia", "Pneumothorax")
    assert set(STUDY_LABELS) == set(CLASSES) | {"No Finding"}


def test_phantom_counts_labels_and_shapes(phantom):
    ix = open_dataset(SPEC, phantom)
    truth = _csv_labels(phantom / "Data_Entry_2017.csv")
    assert len(ix.items) == 56 == len(truth)
    assert {k: len(v) for k, v in ix.splits.items()} == {"train": 40, "val": 4, "test": 12}
    for split in ("train", "val", "test"):
        expected = np.stack([truth[it.key] for it in ix.split_items(split)])
        np.testing.assert_array_equal(ix.labels(split), expected)
    assert ix.labels("train").shape == (40, 15)
    per_class = sum(ix.labels(s).sum(0) for s in ("train", "val", "test"))
    assert (per_class > 0).all()                       # every label occurs, No Finding included
    all_rows = np.concatenate([ix.labels(s) for s in ("train", "val", "test")])
    no_finding = all_rows[:, STUDY_LABELS.index("No Finding")]
    assert (all_rows.sum(1) >= 1).all()                # "No Finding" is a positive of its own
    assert (all_rows[no_finding == 1].sum(1) == 1).all() and (all_rows.sum(1) > 1).any()


def test_study_fewshot_sampler_finds_patients_on_the_phantom(phantom):
    """The phantom's patients keep their findings on every film, as the study's rule needs."""
    ix = open_dataset(SPEC, phantom)
    y, patients = ix.labels("train"), ix.patients("train")
    idx = study_fewshot(y, patients, "multilabel", 1)
    chosen = {patients[i] for i in idx}
    assert sorted(idx) == [i for i, p in enumerate(patients) if p in chosen]   # all their films
    covered = [c for c in range(15) if any(
        all(y[i, c] == 1 for i in range(len(patients)) if patients[i] == p) for p in chosen)]
    assert STUDY_LABELS.index("No Finding") in covered and len(covered) >= 8
    img = ix.load_slices(ix.items[0])
    assert img.shape == (1, 64, 64) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_official_test_list_and_patient_grouping(phantom):
    ix = open_dataset(SPEC, phantom)
    test_names = (phantom / "test_list.txt").read_text().split()
    assert [it.key for it in ix.split_items("test")] == test_names
    owners = {}
    for split in ("train", "val", "test"):
        for patient in ix.patients(split):
            assert owners.setdefault(patient, split) == split
    assert len(set(ix.patients("train"))) > 1 and set(ix.patients("val"))


def test_splits_are_saved_and_reused(phantom):
    first = index(phantom, LoadOptions())
    assert sorted(first.splits) == ["test", "train", "val"]
    assert index(phantom, LoadOptions()).splits == first.splits
    capped = index(phantom, LoadOptions(max_items=5))
    assert {k: len(v) for k, v in capped.splits.items()} == {"train": 5, "val": 4, "test": 5}
    assert set(capped.splits["train"]) <= set(first.splits["train"])


def test_findings_are_visible_in_pixels(phantom):
    ix = open_dataset(SPEC, phantom)
    centers = finding_centers(64)
    pos, neg = [], []
    for it in ix.items[:40]:
        img = ix.load_slices(it)[0]
        for c, (cy, cx) in enumerate(centers):
            # a finding is a grating under a Gaussian envelope: average over a window of it
            value = img[int(cy) - 4:int(cy) + 5, int(cx) - 4:int(cx) + 5].mean()
            (pos if it.label[STUDY_LABELS.index(CLASSES[c])] else neg).append(value)
    assert np.mean(pos) > np.mean(neg) + 0.1


def test_v2020_csv_and_flat_layout_match_original(tmp_path):
    write_phantom(tmp_path / "a", "tiny", seed=3, layout="archives", csv="2017")
    write_phantom(tmp_path / "b", "tiny", seed=3, layout="flat", csv="v2020")
    assert (tmp_path / "a" / "images_001" / "images").is_dir()
    assert (tmp_path / "b" / "Data_Entry_2017_v2020.csv").is_file()
    assert (tmp_path / "a" / "Data_Entry_2017.csv").read_text().splitlines()[1].endswith(",")
    a, b = index(tmp_path / "a", LoadOptions()), index(tmp_path / "b", LoadOptions())
    assert [(i.key, i.patient, i.label) for i in a.items] == [(i.key, i.patient, i.label) for i in b.items]
    assert a.splits == b.splits
    assert a.items[0].images[0].startswith("images_001/images/")
    assert b.items[0].images[0] == f"images/{b.items[0].key}"
    np.testing.assert_array_equal(a.load_slices(a.items[-1]), b.load_slices(b.items[-1]))


def test_112120_rows_index_without_touching_images(tmp_path):
    rng = np.random.default_rng(0)
    n, lines, test = 112_120, [HEADER_2017], []
    combos = ["No Finding", "Effusion", "Atelectasis|Effusion", "Hernia", "Mass|Nodule|Edema"]
    picks = rng.integers(0, len(combos), size=n)
    patients = np.sort(rng.integers(1, 30_806, size=n))
    for i in range(n):
        name = f"{patients[i]:08d}_{i:06d}.png"
        lines.append(f"{name},{combos[picks[i]]},0,{patients[i]},0{40 + i % 50}Y,M,PA,2500,2048,0.14,0.14,")
        if patients[i] % 4 == 0:
            test.append(name)
    (tmp_path / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    names = [ln.split(",", 1)[0] for ln in lines[1:]]
    test_set = set(test)
    (tmp_path / "test_list.txt").write_text("\n".join(test))
    (tmp_path / "train_val_list.txt").write_text("\n".join(x for x in names if x not in test_set))
    (tmp_path / "images_003" / "images").mkdir(parents=True)
    (tmp_path / "images_003" / "images" / names[7]).write_bytes(b"not decoded at index time")

    ix = index(tmp_path, LoadOptions())
    assert len(ix.items) == n
    assert len(ix.splits["test"]) == len(test)
    assert sum(len(v) for v in ix.splits.values()) == n
    expected = np.zeros(len(STUDY_LABELS))
    for k in range(len(combos)):
        for name in combos[k].split("|"):
            expected[STUDY_LABELS.index(name)] += np.sum(picks == k)
    got = sum(ix.labels(s).sum(0) for s in ("train", "val", "test"))
    np.testing.assert_array_equal(got, expected)
    assert ix.items[7].images == (f"images_003/images/{names[7]}",)
    assert ix.items[8].images == (f"images/{names[8]}",)
    train_p, val_p = set(ix.patients("train")), set(ix.patients("val"))
    assert not train_p & val_p and not (train_p | val_p) & set(ix.patients("test"))
    with pytest.raises(DatasetError, match="image file is missing"):
        ix.load_slices(ix.items[8])
    with pytest.raises(DatasetError, match="cannot decode"):
        ix.load_slices(ix.items[7])


def _mini(tmp_path: Path) -> Path:
    root = tmp_path / "nih"
    write_phantom(root, "tiny", seed=1, layout="flat")
    return root


def test_missing_csv_names_the_file(tmp_path):
    root = _mini(tmp_path)
    (root / "Data_Entry_2017.csv").unlink()
    with pytest.raises(DatasetError) as err:
        index(root, LoadOptions())
    assert "Data_Entry_2017.csv" in str(err.value) and "Fix:" in str(err.value)


def test_missing_column_is_named(tmp_path):
    root = _mini(tmp_path)
    path = root / "Data_Entry_2017.csv"
    path.write_text(path.read_text().replace("Patient ID", "PatientIdentifier", 1))
    with pytest.raises(DatasetError, match=r"Patient ID.*Fix:"):
        index(root, LoadOptions())


def test_unknown_finding_is_refused(tmp_path):
    root = _mini(tmp_path)
    path = root / "Data_Entry_2017.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "Covid19", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="'Covid19', outside the declared set"):
        index(root, LoadOptions())


def test_path_escaping_root_is_refused(tmp_path):
    root = _mini(tmp_path)
    path = root / "Data_Entry_2017.csv"
    lines = path.read_text().splitlines()
    lines[2] = "../../etc/passwd" + lines[2][lines[2].index(","):]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="expected bare PNG file names"):
        index(root, LoadOptions())


def test_corrupt_png_is_a_dataset_error(tmp_path):
    root = _mini(tmp_path)
    ix = index(root, LoadOptions())
    victim = root / ix.items[0].images[0]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DatasetError) as err:
        ix.load_slices(ix.items[0])
    assert str(victim) in str(err.value) and "re-download" in str(err.value)


def test_missing_official_list_and_empty_split(tmp_path):
    root = _mini(tmp_path)
    shutil.copy(root / "test_list.txt", tmp_path / "keep.txt")
    (root / "test_list.txt").unlink()
    with pytest.raises(DatasetError, match="test_list.txt: the official split list is missing"):
        index(root, LoadOptions())
    (root / "test_list.txt").write_text("")
    with pytest.raises(DatasetError, match="'test' split of NIH ChestX-ray14 is empty"):
        index(root, LoadOptions())


def test_unknown_phantom_size_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown phantom size 'huge'"):
        write_phantom(tmp_path / "x", "huge")
