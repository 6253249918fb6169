"""SARS-CoV-2 CT loader: per-patient volumes, flat release, natural slice order, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.sarscov2 import index
from radbench_core.core.errors import DatasetError
from radbench_core.data.phantoms.draw import save_png
from radbench_core.data.phantoms.sarscov2 import write_phantom

SPEC = get_dataset("sarscov2")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sarscov2")
    write_phantom(root, "tiny", seed=0)
    return root


def test_phantom_volumes_labels_and_grouping(phantom):
    ix = open_dataset(SPEC, phantom)
    assert SPEC.volumetric and SPEC.label_kind == "binary"
    assert len(ix.items) == 32
    labels = {it.key.split("/")[0]: set() for it in ix.items}
    for it in ix.items:
        labels[it.key.split("/")[0]].add(it.label)
        folder = phantom / it.key
        assert it.n_slices == len(list(folder.glob("*.png"))) >= 3
    assert labels == {"Covid": {1}, "Healthy": {0}, "Others": {0}}
    assert sorted(np.bincount([it.label for it in ix.items]).tolist()) == [16, 16]
    for split in ("train", "val", "test"):
        assert set(ix.labels(split).tolist()) <= {0, 1} and ix.splits[split]
    assert set(ix.labels("test").tolist()) == {0, 1}
    owners = {}
    for split in ("train", "val", "test"):
        for patient in ix.patients(split):
            assert owners.setdefault(patient, split) == split


def test_volume_shape_and_resized_slice(phantom):
    ix = index(phantom, LoadOptions())
    odd = [it for it in ix.items
           if any(Image.open(phantom / p).size != (64, 64) for p in it.images)]
    assert odd, "the phantom writes some differently sized slices"
    vol = ix.load_slices(odd[0])
    assert vol.shape == (odd[0].n_slices, 64, 64) and vol.dtype == np.float32
    assert vol.min() == 0.0 and vol.max() == pytest.approx(1.0)


def test_slices_sorted_in_natural_order(tmp_path):
    for cls, label_value in (("Covid", 1), ("Healthy", 0)):
        for p in range(1, 6):
            for s in range(1, 13):           # slice s holds the constant value 10 * s
                save_png(tmp_path / cls / f"Patient {p}" / f"{s}.png", np.full((8, 8), 10 * s, np.uint8))
    ix = index(tmp_path, LoadOptions())
    item = ix.items[0]
    assert item.key == "Covid/Patient 1" and item.n_slices == 12
    assert [Path(p).name for p in item.images[:3]] == ["1.png", "2.png", "3.png"]
    vol = ix.load_slices(item)
    # one shared min-max scale over the volume: 10..120 -> 0..1, in slice order
    np.testing.assert_allclose(vol[:, 0, 0], (np.arange(1, 13) * 10 - 10) / 110, atol=1e-6)


def test_flat_release_each_file_an_item(tmp_path):
    write_phantom(tmp_path, "tiny", seed=1, layout="flat")
    ix = index(tmp_path, LoadOptions())
    assert len(ix.items) == 32 and all(it.n_slices == 1 for it in ix.items)
    covid = [it for it in ix.items if it.key.startswith("COVID/")]
    assert len(covid) == 16 and {it.label for it in covid} == {1}
    assert {it.label for it in ix.items if it.key.startswith("non-COVID/")} == {0}
    assert ix.load_slices(ix.items[0]).shape == (1, 64, 64)
    assert len({it.patient for it in ix.items}) == 32            # no prefix: one file, one patient


def test_flat_release_groups_patient_prefixes(tmp_path):
    for cls in ("COVID", "non-COVID"):
        for p in range(1, 11):
            for s in range(1, 4):
                save_png(tmp_path / cls / f"Patient{p}_{s}.png", np.full((8, 8), s, np.uint8))
    ix = index(tmp_path, LoadOptions())
    assert len(ix.items) == 60 and len({it.patient for it in ix.items}) == 20
    owners = {}
    for split in ("train", "val", "test"):
        for patient in ix.patients(split):
            assert owners.setdefault(patient, split) == split


def test_bad_layouts_are_refused(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(DatasetError, match=r"no class folder found; expected Covid/, Healthy/"):
        index(tmp_path, LoadOptions())
    (tmp_path / "Covid" / "Patient 1").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"Patient 1: the patient folder holds no PNG/JPEG slices"):
        index(tmp_path, LoadOptions())
    save_png(tmp_path / "Covid" / "Patient 1" / "1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"only class\(es\) \[1\] present"):
        index(tmp_path, LoadOptions())


def test_corrupt_slice_is_a_dataset_error(tmp_path):
    write_phantom(tmp_path, "tiny", seed=2)
    ix = index(tmp_path, LoadOptions())
    item = ix.items[3]
    (tmp_path / item.images[1]).write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DatasetError) as err:
        ix.load_slices(item)
    assert item.images[1] in str(err.value) and "cannot decode the image" in str(err.value)
