"""The generic dataset: a folder of images + a CSV (multi-class / multi-label) or + masks, no module."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from radbench_core.data.datasets import open_dataset
from radbench_core.data.datasets.generic import csv_dataset, mask_dataset
from radbench_core.core.errors import ConfigError, DatasetError


def png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def test_multiclass_csv_reads_labels_and_keeps_patients_in_one_split(tmp_path: Path) -> None:
    spec = csv_dataset("ward", "Ward", folder="ward", label_column="dx", classes=("normal", "effusion"),
                       patient_column="pid", images_dir="img")
    rows = ["file,dx,pid"]
    for i in range(40):
        png(tmp_path / "img" / f"{i}.png", np.full((8, 8), i))
        rows.append(f"{i}.png,{('normal', 'effusion')[i % 2]},P{i // 4}")
    (tmp_path / "labels.csv").write_text("\n".join(rows).replace("file,", "image,"))
    index = open_dataset(spec, tmp_path)
    by_key = {it.key: it for it in index.items}
    assert by_key["img/7.png"].label == 1 and by_key["img/8.png"].label == 0 and by_key["img/8.png"].patient == "P2"
    seen = {}
    for split in ("train", "val", "test"):
        for patient in index.patients(split):
            assert seen.setdefault(patient, split) == split           # no patient in two splits
    assert sum(len(index.splits[s]) for s in ("train", "val", "test")) == 40
    slices = index.load_slices(by_key["img/7.png"])
    assert slices.shape == (1, 8, 8) and slices.dtype == np.float32 and 0.0 <= slices.min() <= slices.max() <= 1.0


def test_multilabel_blanks_are_unknown_and_bad_values_name_the_column(tmp_path: Path) -> None:
    spec = csv_dataset("ml", "ML", folder="ml", label_columns=("a", "b"))
    lines = ["image,a,b"] + [f"{i}.png,{i % 2},{'' if i == 3 else (i // 2) % 2}" for i in range(30)]
    for i in range(30):
        png(tmp_path / f"{i}.png", np.random.default_rng(i).integers(0, 255, (6, 6)))
    (tmp_path / "labels.csv").write_text("\n".join(lines))
    index = open_dataset(spec, tmp_path)
    item3 = next(it for it in index.items if it.key == "3.png")
    assert item3.label[0] == 1.0 and math.isnan(item3.label[1])
    assert spec.label_kind == "multilabel" and spec.class_names == ("a", "b")
    (tmp_path / "labels.csv").write_text("image,a,b\n0.png,yes,0\n")
    with pytest.raises(DatasetError, match="column 'a' holds 'yes'"):
        spec.index(tmp_path, __import__("radbench_core.data.datasets", fromlist=["LoadOptions"]).LoadOptions())


def test_unknown_class_and_bad_config_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of label_column"):
        csv_dataset("x", "X", folder="x")
    with pytest.raises(ConfigError, match="needs classes"):
        csv_dataset("x", "X", folder="x", label_column="dx")
    spec = csv_dataset("x", "X", folder="x", label_column="dx", classes=("a", "b"))
    png(tmp_path / "0.png", np.zeros((4, 4)))
    (tmp_path / "labels.csv").write_text("image,dx\n0.png,c\n")
    with pytest.raises(DatasetError, match="label 'c' is not one of"):
        open_dataset(spec, tmp_path)
    (tmp_path / "labels.csv").write_text("image,dx\n../escape.png,a\n")
    with pytest.raises(DatasetError, match="escapes the dataset folder"):
        open_dataset(spec, tmp_path)


def test_png_masks_and_nifti_volumes(tmp_path: Path) -> None:
    spec = mask_dataset("organs", "Organs", folder="organs", class_names=("liver", "spleen"), modality="ct")
    for i in range(20):
        if i % 2:
            vol = np.full((6, 5, 3), -1000.0 + i, dtype=np.float32)        # RAS (x, y, z): 3 slices
            lab = np.zeros((6, 5, 3), dtype=np.uint8)
            lab[1:3, 1:3, 1] = 2
            for path, arr in ((tmp_path / "images" / f"c{i}.nii.gz", vol), (tmp_path / "masks" / f"c{i}.nii.gz", lab)):
                path.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
        else:
            png(tmp_path / "images" / f"c{i}.png", np.full((8, 8), 100))
            mask = np.zeros((8, 8))
            mask[2:4, 2:4] = 1
            png(tmp_path / "masks" / f"c{i}.png", mask)
    index = open_dataset(spec, tmp_path)
    items = {it.key: it for it in index.items}
    assert items["c1.nii.gz"].n_slices == 3 and items["c0.png"].n_slices == 1
    assert index.load_mask(items["c0.png"]).sum() == 4
    volume_mask = index.load_mask(items["c1.nii.gz"])
    assert volume_mask.shape[0] == 3 and (volume_mask == 2).sum() == 4
    assert index.load_slices(items["c1.nii.gz"]).shape == volume_mask.shape
    (tmp_path / "masks" / "c0.png").unlink()
    with pytest.raises(DatasetError, match="the mask of images/c0.png is missing"):
        open_dataset(spec, tmp_path)


@pytest.mark.parametrize("kind", ["multiclass", "mask"])
def test_phantom_writer_is_learnable_in_the_declared_layout(kind: str, tmp_path: Path) -> None:
    spec = (csv_dataset("p", "P", folder="p", label_column="dx", classes=("a", "b", "c"), patient_column="pid")
            if kind == "multiclass" else mask_dataset("p", "P", folder="p", class_names=("x",)))
    spec.write_phantom(tmp_path, size="tiny", seed=0)
    index = open_dataset(spec, tmp_path)
    if kind == "multiclass":
        means = {}
        for it in index.items:                     # each class brightens its own square
            img = index.load_slices(it)[0]
            means.setdefault(it.label, []).append(img)
        centres = [np.mean(v, axis=0) for _, v in sorted(means.items())]
        assert all(np.argmax(c.ravel()) != np.argmax(d.ravel()) for c, d in zip(centres, centres[1:]))
        assert len(set(p for s in ("train", "val", "test") for p in index.patients(s))) == 18
    else:
        masks = [index.load_mask(it) for it in index.items]
        assert all(m.max() <= 1 for m in masks) and sum(m.sum() for m in masks) > 0


def test_classes_alternating_by_patient_are_stratified_in_every_split(tmp_path: Path) -> None:
    """Issue 22: classes alternating patient by patient put every test patient in one class before."""
    spec = csv_dataset("alt", "Alt", folder="alt", label_column="dx", classes=("normal", "effusion"),
                       patient_column="pid")
    rows = ["image,dx,pid"]
    for p in range(50):                       # 50 patients x 2 images, class = patient parity
        for j in range(2):
            png(tmp_path / f"{p}_{j}.png", np.full((4, 4), p))
            rows.append(f"{p}_{j}.png,{('normal', 'effusion')[p % 2]},P{p}")
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    index = open_dataset(spec, tmp_path)
    for split, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        labels = [index.items[i].label for i in index.splits[split]]
        assert sorted(set(labels)) == [0, 1], split
        for cls in (0, 1):                    # each class within one patient (2 images) of its share
            assert abs(labels.count(cls) - 50 * share) <= 2, (split, cls, labels.count(cls))
        assert len({index.items[i].patient for i in index.splits[split]}) == round(50 * share)


def test_a_split_file_with_a_wrong_key_or_name_shows_the_valid_ones(tmp_path: Path) -> None:
    from radbench_core.data.datasets import LoadOptions
    spec = csv_dataset("sf", "SF", folder="sf", label_column="dx", classes=("a", "b"))
    for i in range(20):
        png(tmp_path / f"{i}.png", np.full((4, 4), i))
    (tmp_path / "labels.csv").write_text("image,dx\n" + "\n".join(f"{i}.png,{'ab'[i % 2]}" for i in range(20)))
    (tmp_path / "split.json").write_text('{"train": ["0.png", "img/1.png"], "val": [], "test": []}')
    with pytest.raises(DatasetError, match=r"unknown item key 'img/1.png' .*keys are e\.g\. '0\.png', '1\.png'"):
        open_dataset(spec, tmp_path, LoadOptions(split_file="split.json"))
    (tmp_path / "split.json").write_text('{"train": ["0.png"], "valid": ["1.png"], "test": []}')
    with pytest.raises(DatasetError, match=r"split name\(s\) \['valid'\] are not among \['train', 'val', 'test'\]"):
        open_dataset(spec, tmp_path, LoadOptions(split_file="split.json"))
