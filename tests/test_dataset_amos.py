"""AMOS 2022 read from its phantom native layout: CT-only filter, official split, subset, anatomy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.amos import SPEC, is_ct_case
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.volumes import VOLUME_CACHE
from radbench_core.core.errors import DatasetError


@pytest.fixture(autouse=True)
def _fresh_cache():
    VOLUME_CACHE.clear()
    yield
    VOLUME_CACHE.clear()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    start = time.perf_counter()
    SPEC.write_phantom(tmp_path / "amos22", "tiny", 0)
    assert time.perf_counter() - start < 1.0
    return tmp_path / "amos22"


def _meta(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def test_spec_and_dataset_json_labels(root: Path):
    assert get_dataset("amos") is SPEC and SPEC.num_classes == 15 and SPEC.modality == "ct"
    labels = _meta(root)["labels"]
    assert len(labels) == 16 and labels["1"] == "spleen" and labels["9"] == "postcava"
    assert SPEC.class_names[8] == "postcava" and SPEC.class_names[14] == "prostate_uterus"


def test_ct_only_and_official_validation_is_test(root: Path):
    meta = _meta(root)
    listed = [e["image"] for e in meta["training"] + meta["validation"]]
    assert any(int(p[-11:-7]) > 500 for p in listed)               # the phantom has MRI cases
    index = open_dataset(SPEC, root)
    keys = [it.key for it in index.items]
    assert len(keys) == 10 and all(int(k[5:]) <= 500 for k in keys)
    validation_ct = [Path(e["image"]).name[:-7] for e in meta["validation"] if int(e["image"][-11:-7]) <= 500]
    assert [it.key for it in index.split_items("test")] == validation_ct
    train_val = {it.key for s in ("train", "val") for it in index.split_items(s)}
    assert all(e["image"].startswith("./imagesTr/") for e in meta["training"])
    assert train_val == {Path(e["image"]).name[:-7] for e in meta["training"]
                         if int(e["image"][-11:-7]) <= 500}
    assert (len(index.splits["train"]), len(index.splits["val"])) == (6, 1)


def test_masks_align_with_image_and_anatomy(root: Path):
    index = open_dataset(SPEC, root)
    item = index.split_items("test")[0]
    image, mask = index.load_slices(item), index.load_mask(item)
    assert image.shape == mask.shape == (item.n_slices, 32, 32)
    assert item.images[0].startswith("imagesVa/") and item.masks[0].startswith("labelsVa/")
    present = set(np.unique(mask).tolist())
    assert {0, 1, 6, 8} <= present <= set(range(16))
    body = np.median(image[(mask == 0) & (image > 0.2)])
    for organ in (1, 2, 3, 6, 8):                                  # enhancing organs are brighter
        assert image[mask == organ].mean() > body + 0.03
    assert image[mask == 7].mean() < body - 0.05                   # the gas-filled stomach is darker
    _, rows, cols = np.nonzero(mask == 6)
    assert cols.mean() < 16                                        # liver on the image's left (patient right)
    _, rows, cols = np.nonzero(mask == 1)
    assert cols.mean() > 16                                        # spleen on the image's right
    _, rows, _ = np.nonzero((mask == 2) | (mask == 3))
    assert rows.mean() > 16                                        # kidneys posterior (bottom rows)


def test_subset_keeps_a_proportional_fixed_size_sample(root: Path):
    full = open_dataset(SPEC, root)
    sub = open_dataset(SPEC, root, LoadOptions(subset=5))
    assert len(sub.items) == 5 and sum(len(v) for v in sub.splits.values()) == 5
    assert all(sub.splits[s] for s in ("train", "val", "test"))
    for split in ("train", "val", "test"):
        assert {it.key for it in sub.split_items(split)} <= {it.key for it in full.split_items(split)}
    again = open_dataset(SPEC, root, LoadOptions(subset=5))
    assert [it.key for it in again.items] == [it.key for it in sub.items]
    assert len(open_dataset(SPEC, root, LoadOptions(subset=150)).items) == 10


def test_is_ct_case():
    assert is_ct_case("amos_0500") and not is_ct_case("amos_0501")
    with pytest.raises(DatasetError, match=r"'case_1': expected AMOS case files named amos_XXXX.nii.gz"):
        is_ct_case("case_1")


def test_a_case_name_error_names_the_dataset_json(root: Path):
    """Issue 26: it said "dataset.json entry 'case_1'" without the path."""
    import shutil
    meta = _meta(root)
    image, label = meta["training"][0]["image"], meta["training"][0]["label"]
    shutil.copy(root / image, root / "imagesTr" / "case_1.nii.gz")
    shutil.copy(root / label, root / "labelsTr" / "case_1.nii.gz")
    meta["training"][0] = {"image": "./imagesTr/case_1.nii.gz", "label": "./labelsTr/case_1.nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError) as err:
        open_dataset(SPEC, root)
    assert str(err.value).startswith(f"{root / 'dataset.json'}: entry 'case_1': expected AMOS case files named")


def test_missing_validation_section(root: Path):
    meta = _meta(root)
    meta["validation"] = [e for e in meta["validation"] if int(e["image"][-11:-7]) > 500]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError) as err:
        open_dataset(SPEC, root)
    assert str(err.value).startswith(str(root / "dataset.json"))
    assert "found 7 CT training and 0 CT validation cases" in str(err.value)


def test_truncated_volume_fails_that_case_only(root: Path):
    index = open_dataset(SPEC, root)
    victim, other = index.items[0], index.items[1]
    path = root / victim.images[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"amos_0001.nii.gz: the voxel data cannot be decoded"):
        open_dataset(SPEC, root).load_slices(victim)
    assert index.load_slices(other).shape[0] == other.n_slices
