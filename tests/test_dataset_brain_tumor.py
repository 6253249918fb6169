"""Figshare Brain Tumor loader: real MATLAB v7.3 files, orientation, labels, PIDs, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.brain_tumor import index, read_mat
from radbench_core.core.errors import DatasetError
from radbench_core.data.phantoms.brain_tumor import write_brain_mat, write_mat73, write_phantom

SPEC = get_dataset("brain_tumor")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("brain")
    write_phantom(root, "tiny", seed=0)
    return root


def test_files_are_real_matlab_v73(phantom):
    path = next(phantom.rglob("1.mat"))
    head = path.read_bytes()[:512]
    assert head.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert b"HDF5 schema 1.00 ." in head[:116]
    assert head[124:126] == b"\x00\x02" and head[126:128] == b"IM"
    assert h5py.is_hdf5(path)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert f["cjdata"].attrs["MATLAB_class"] == b"struct"
        classes = {k: f["cjdata"][k].attrs["MATLAB_class"] for k in f["cjdata"]}
        assert classes == {"image": b"int16", "label": b"double", "PID": b"char",
                           "tumorBorder": b"double", "tumorMask": b"logical"}
        assert f["cjdata/image"].dtype == np.int16 and f["cjdata/PID"].dtype == np.uint16
    assert (phantom / "cvind.mat").is_file()


def test_phantom_is_deterministic_per_seed(tmp_path):
    write_phantom(tmp_path / "a", "tiny", seed=5, cvind=False)
    write_phantom(tmp_path / "b", "tiny", seed=5, cvind=False)
    write_phantom(tmp_path / "c", "tiny", seed=6, cvind=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.mat"))
    assert len(files) == 45 and not (tmp_path / "a" / "cvind.mat").exists()
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_phantom_labels_patients_and_splits(phantom):
    ix = open_dataset(SPEC, phantom)
    assert len(ix.items) == 45 and [it.key for it in ix.items[:3]] == ["1", "2", "3"]
    assert {k: len(v) for k, v in ix.splits.items()} == {"train": 33, "val": 3, "test": 9}
    assert sorted(set(ix.labels("test").tolist())) == [0, 1, 2]
    for it in ix.items:
        with h5py.File(phantom / it.images[0], "r") as f:
            assert it.label == int(f["cjdata/label"][()].item()) - 1
    assert min(np.bincount([it.label for it in ix.items]).tolist()) >= 9
    assert len({it.patient for it in ix.items}) == 15
    owners = {}
    for split in ("train", "val", "test"):
        for patient in ix.patients(split):
            assert owners.setdefault(patient, split) == split
    assert {it.images[0].split("/")[0] for it in ix.items} == {
        "brainTumorDataPublic_1-22", "brainTumorDataPublic_23-45"}
    with h5py.File(phantom / ix.items[0].images[0], "r") as f:
        codes = f["cjdata/PID"][()].ravel()
        assert ix.items[0].patient == "".join(map(chr, codes))


def test_mri_window_matches_percentile_reference(phantom):
    ix = index(phantom, LoadOptions())
    item = ix.items[5]
    with h5py.File(phantom / item.images[0], "r") as f:
        raw = f["cjdata/image"][()].T.astype(np.float64)
    lo, hi = np.percentile(raw, [5, 95])
    expected = np.clip((raw - lo) / (hi - lo), 0, 1)
    got = ix.load_slices(item)
    assert got.shape == (1, 64, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, atol=1e-5)


def test_tumour_site_differs_by_class(phantom):
    ix = index(phantom, LoadOptions())
    rows_by_class = {0: [], 1: [], 2: []}
    for it in ix.items:
        info = read_mat(phantom / it.images[0])
        with h5py.File(phantom / it.images[0], "r") as f:
            mask = f["cjdata/tumorMask"][()].T.astype(bool)
        assert info["label"] == it.label and mask.shape == info["image"].shape
        ys, xs = np.nonzero(mask)
        rows_by_class[it.label].append((ys.mean(), mask.sum()))
    pituitary_rows = [r for r, _ in rows_by_class[2]]
    assert min(pituitary_rows) > 40                                   # sella: centre bottom
    assert np.mean([a for _, a in rows_by_class[1]]) > 2 * np.mean([a for _, a in rows_by_class[2]])


def test_non_square_image_keeps_orientation(tmp_path):
    image = np.zeros((40, 64), dtype=np.int16)
    image[:10, :5] = 1000                        # bright block at the top-left corner
    image[10:, 5:] = np.arange(30 * 59).reshape(30, 59) % 200
    for n, label in ((1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3), (7, 1), (8, 2), (9, 3), (10, 1)):
        write_brain_mat(tmp_path / f"{n}.mat", image, label, f"P{n}", image > 500)
    with h5py.File(tmp_path / "1.mat", "r") as f:
        assert f["cjdata/image"].shape == (64, 40)          # MATLAB column-major on disk
    info = read_mat(tmp_path / "1.mat")
    np.testing.assert_array_equal(info["image"], image)
    ix = index(tmp_path, LoadOptions())
    vol = ix.load_slices(ix.items[0])
    assert vol.shape == (1, 40, 64)
    lo, hi = np.percentile(image.astype(np.float64), [5, 95])
    np.testing.assert_allclose(vol[0], np.clip((image - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert vol[0, :10, :5].min() == 1.0


def test_cvind_is_optional(tmp_path, phantom):
    copy = tmp_path / "copy"
    shutil.copytree(phantom, copy, ignore=shutil.ignore_patterns("radbench_splits.json"))
    with_cv = index(copy, LoadOptions())
    (copy / "cvind.mat").unlink()
    without = index(copy, LoadOptions())
    assert [(i.key, i.patient, i.label) for i in with_cv.items] == \
        [(i.key, i.patient, i.label) for i in without.items]
    assert with_cv.splits == without.splits


def _ten(root: Path) -> None:
    rng = np.random.default_rng(0)
    for n in range(1, 11):
        write_brain_mat(root / f"{n}.mat", rng.integers(0, 500, (16, 16)).astype(np.int16),
                        1 + n % 3, f"P{n}", np.zeros((16, 16), bool))


def test_v5_mat_is_refused(tmp_path):
    _ten(tmp_path)
    header = b"MATLAB 5.0 MAT-file, Platform: PCWIN64".ljust(116, b" ") + bytes(8) + b"\x00\x01IM"
    (tmp_path / "3.mat").write_bytes(header + bytes(64))
    with pytest.raises(DatasetError) as err:
        index(tmp_path, LoadOptions())
    assert "3.mat" in str(err.value) and "not a MATLAB v7.3 (HDF5) file" in str(err.value)
    assert "-v7.3" in str(err.value)


def test_missing_image_field_is_refused(tmp_path):
    _ten(tmp_path)
    write_mat73(tmp_path / "4.mat", {"cjdata": {"label": (np.array([[1.0]]), "double"),
                                                "PID": (np.array([[80]], np.uint16), "char")}})
    with pytest.raises(DatasetError, match=r"4.mat: no 'cjdata/image' in the file"):
        index(tmp_path, LoadOptions())


def test_label_outside_declared_set_is_refused(tmp_path):
    _ten(tmp_path)
    write_brain_mat(tmp_path / "7.mat", np.zeros((16, 16), np.int16), 4, "P7", np.zeros((16, 16), bool))
    with pytest.raises(DatasetError, match=r"7.mat: cjdata/label is \[4.0\]; expected one value in 1, 2, 3"):
        index(tmp_path, LoadOptions())


def test_nan_pixels_are_refused(tmp_path):
    _ten(tmp_path)
    image = np.ones((16, 16))
    image[3, 4] = np.nan
    write_mat73(tmp_path / "2.mat", {"cjdata": {
        "image": (image, "double"), "label": (np.array([[2.0]]), "double"),
        "PID": (np.array([[ord("Q")]], np.uint16), "char")}})
    ix = index(tmp_path, LoadOptions())
    item = next(it for it in ix.items if it.key == "2")
    with pytest.raises(DatasetError, match=r"2.mat: 1 of 256 values are not finite \(1 NaN"):
        ix.load_slices(item)


def test_duplicate_numbers_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no numbered .mat files"):
        index(tmp_path, LoadOptions())
    _ten(tmp_path)
    (tmp_path / "sub").mkdir()
    shutil.copy(tmp_path / "5.mat", tmp_path / "sub" / "5.mat")
    with pytest.raises(DatasetError, match=r"5.mat also exists as"):
        index(tmp_path, LoadOptions())
