"""The three MSD tasks read from their phantom native layout, and every malformed-layout error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.msd import HEART, HIPPOCAMPUS, SPLEEN
from radbench_core.data.datasets.preprocess import window_percentile_per_slice
from radbench_core.data.datasets.splits import SPLITS_FILENAME
from radbench_core.data.datasets.volumes import VOLUME_CACHE
from radbench_core.core.errors import DatasetError, DatasetMissing

SPECS = {"msd_spleen": SPLEEN, "msd_hippocampus": HIPPOCAMPUS, "msd_heart": HEART}


@pytest.fixture(autouse=True)
def _fresh_cache():
    VOLUME_CACHE.clear()
    yield
    VOLUME_CACHE.clear()


def _phantom(tmp_path: Path, spec, size: str = "tiny", seed: int = 0) -> Path:
    root = tmp_path / spec.folder
    spec.write_phantom(root, size, seed)
    return root


def test_registry_resolves_the_three_tasks():
    for dataset_id, spec in SPECS.items():
        assert get_dataset(dataset_id) is spec and spec.volumetric and spec.task == "segmentation"
    assert (SPLEEN.modality, HIPPOCAMPUS.modality, HEART.modality) == ("ct", "mri", "mri")
    assert HIPPOCAMPUS.class_names == ("anterior", "posterior") and HEART.num_classes == 1


@pytest.mark.parametrize("dataset_id", list(SPECS))
def test_loader_on_phantom(tmp_path: Path, dataset_id: str):
    spec = SPECS[dataset_id]
    start = time.perf_counter()
    root = _phantom(tmp_path, spec)
    assert time.perf_counter() - start < 1.0
    index = open_dataset(spec, root)
    assert len(index.items) == 10                                  # imagesTs cases are unlabelled
    assert {s: len(v) for s, v in index.splits.items()} == {"train": 7, "val": 1, "test": 2}
    owner = {}
    for split in ("train", "val", "test"):
        for patient in index.patients(split):
            assert owner.setdefault(patient, split) == split        # grouped by patient
    # the study's repo clips every MSD slice (Spleen CT included) to its own 5th-95th percentile
    assert index.window is window_percentile_per_slice
    seen = set()
    for item in index.items:
        assert item.key == item.patient and item.images[0].startswith("imagesTr/")
        image, mask = index.load_slices(item), index.load_mask(item)
        assert image.dtype == np.float32 and mask.dtype == np.int64
        assert image.shape == mask.shape and image.shape[0] == item.n_slices
        assert 0.0 <= image.min() and image.max() <= 1.0
        seen |= set(np.unique(mask).tolist())
        body = np.median(image[(mask == 0) & (image > 0.2)])      # soft tissue: not air, not fat ring
        for c in range(1, spec.num_classes + 1):
            if (mask == c).any():
                assert image[mask == c].mean() > body + 0.05        # organ brighter than its background
    assert seen == set(range(spec.num_classes + 1))
    expected_hw = (28, 36) if dataset_id == "msd_hippocampus" else (32, 32)
    assert index.load_slices(index.items[0]).shape == (6, *expected_hw)
    assert not (root / SPLITS_FILENAME).exists()                   # never written into the data
    assert not any("split" in p.name for p in root.rglob("*"))


def test_hippocampus_classes_differ_in_intensity(tmp_path: Path):
    index = open_dataset(HIPPOCAMPUS, _phantom(tmp_path, HIPPOCAMPUS))
    image, mask = index.load_slices(index.items[0]), index.load_mask(index.items[0])
    assert image[mask == 2].mean() > image[mask == 1].mean() + 0.05


def test_resource_forks_are_ignored(tmp_path: Path):
    root = _phantom(tmp_path, SPLEEN)
    assert (root / "imagesTr" / "._spleen_1.nii.gz").is_file()     # the phantom ships them, like MSD
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"].append({"image": "./imagesTr/._spleen_1.nii.gz",
                             "label": "./labelsTr/._spleen_1.nii.gz"})
    (root / "dataset.json").write_text(json.dumps(meta))
    index = open_dataset(SPLEEN, root)
    assert len(index.items) == 10 and not any(it.key.startswith("._") for it in index.items)


def test_phantom_is_deterministic_and_seeded(tmp_path: Path):
    def first_case(folder: str, seed: int) -> np.ndarray:
        root = tmp_path / folder
        SPLEEN.write_phantom(root, "tiny", seed)
        return np.asanyarray(nib.load(str(root / "imagesTr" / "spleen_1.nii.gz")).dataobj)

    a, b, c = first_case("a", 0), first_case("b", 0), first_case("c", 1)
    assert a.dtype == np.int16 and -1100 < a.min() and a.max() < 1000       # air to ribs (~700 HU)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_splits_are_reused_and_published_split_and_cap(tmp_path: Path):
    root = _phantom(tmp_path, SPLEEN)
    cache = tmp_path / "splits"
    first = open_dataset(SPLEEN, root, LoadOptions(splits_dir=str(cache))).splits
    (saved_path,) = cache.glob("Task09_Spleen-*.json")               # saved in radbench's cache
    saved = json.loads(saved_path.read_text())
    assert "dataset.json" in saved["inputs"]                          # keyed on what it read
    saved["splits"]["train"], saved["splits"]["test"] = saved["splits"]["test"], saved["splits"]["train"]
    saved_path.write_text(json.dumps(saved))
    swapped = open_dataset(SPLEEN, root, LoadOptions(splits_dir=str(cache))).splits   # it is reused
    assert swapped["train"] == first["test"] and swapped["test"] == first["train"]
    capped = open_dataset(SPLEEN, root, LoadOptions(max_items=1)).splits
    assert all(len(v) == 1 for v in capped.values())
    published = tmp_path / "split.json"
    keys = [it.key for it in open_dataset(SPLEEN, root).items]
    rest = [k for k in keys if k not in ("spleen_1", "spleen_3", "spleen_5")]
    published.write_text(json.dumps({"train": ["spleen_1", "spleen_3"], "val": ["spleen_5"],
                                     "test": rest}))
    index = open_dataset(SPLEEN, root, LoadOptions(split_file=str(published)))
    assert [it.key for it in index.split_items("train")] == ["spleen_1", "spleen_3"]


def _edit_json(root: Path, edit) -> None:
    meta = json.loads((root / "dataset.json").read_text())
    edit(meta)
    (root / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("entry, problem", [
    ("../outside.nii.gz", "points outside the dataset folder"),
    ("./imagesTr/../../outside.nii.gz", "points outside the dataset folder"),
    ("/etc/passwd", "points outside the dataset folder"),
])
def test_paths_are_confined_to_the_dataset(tmp_path: Path, entry: str, problem: str):
    root = _phantom(tmp_path, SPLEEN)
    _edit_json(root, lambda m: m["training"][0].update(image=entry))
    with pytest.raises(DatasetError) as err:
        open_dataset(SPLEEN, root)
    msg = str(err.value)
    assert msg.startswith(str(root / "dataset.json")) and "training[0].image" in msg
    assert entry in msg and problem in msg and "Fix:" in msg


def test_case_listed_twice(tmp_path: Path):
    root = _phantom(tmp_path, HEART)
    _edit_json(root, lambda m: m["training"].append(dict(m["training"][0])))
    with pytest.raises(DatasetError, match=r"dataset.json: training\[10\]: case 'la_1' is listed twice"):
        open_dataset(HEART, root)


def test_listed_but_missing_file_names_both(tmp_path: Path):
    root = _phantom(tmp_path, SPLEEN)
    (root / "labelsTr" / "spleen_3.nii.gz").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset(SPLEEN, root)
    msg = str(err.value)
    assert msg.startswith(str(root / "labelsTr" / "spleen_3.nii.gz"))
    assert f"listed in {root / 'dataset.json'} (training[1])" in msg


def test_missing_folder_and_dataset_json(tmp_path: Path):
    with pytest.raises(DatasetMissing, match="medicaldecathlon.com"):
        open_dataset(SPLEEN, tmp_path / "Task09_Spleen")
    (tmp_path / "Task09_Spleen").mkdir()
    with pytest.raises(DatasetError, match=r"dataset.json: dataset.json is missing"):
        open_dataset(SPLEEN, tmp_path / "Task09_Spleen")


def test_wrong_label_declaration(tmp_path: Path):
    root = _phantom(tmp_path, HEART)
    _edit_json(root, lambda m: m.update(labels={"0": "background", "1": "a", "2": "b"}))
    with pytest.raises(DatasetError, match=r"expected \"labels\" with keys 0..1 \(0 = background\), "
                                           r"found \['0', '1', '2'\]"):
        open_dataset(HEART, root)


def test_shape_mismatch_and_out_of_range_labels(tmp_path: Path):
    root = _phantom(tmp_path, SPLEEN)
    bad = root / "labelsTr" / "spleen_1.nii.gz"
    affine = nib.load(str(bad)).affine
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 5), np.uint8), affine), str(bad))
    with pytest.raises(DatasetError, match=r"spleen_1.nii.gz: label shape \(S, H, W\) = \(5, 32, 32\) "
                                           r"does not match its image"):
        open_dataset(SPLEEN, root)
    labels = np.zeros((32, 32, 6), np.uint8)
    labels[3, 3, 3] = 4
    nib.save(nib.Nifti1Image(labels, affine), str(bad))
    index = open_dataset(SPLEEN, root)
    with pytest.raises(DatasetError,
                       match=r"spleen_1.nii.gz: label values \[4\] are outside the declared 0..1"):
        index.load_mask(index.items[0])


def test_a_three_case_folder_gets_one_case_per_split(tmp_path: Path):
    """Issue 22: a small valid MSD folder (3 labelled cases) had an empty val split; now 1 / 1 / 1."""
    root = _phantom(tmp_path, SPLEEN)
    _edit_json(root, lambda m: m.__setitem__("training", m["training"][:3]))
    index = open_dataset(SPLEEN, root)
    assert {name: len(index.splits[name]) for name in ("train", "val", "test")} == {"train": 1, "val": 1, "test": 1}
    _edit_json(root, lambda m: m.__setitem__("training", m["training"][:2]))
    with pytest.raises(DatasetError, match=r"split of .* is empty \(2 patients in the folder; at least 3 "):
        open_dataset(SPLEEN, root)
