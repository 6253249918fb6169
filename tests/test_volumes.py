"""NIfTI reading: documented orientation, decode-once cache, and every corrupt-input error."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radbench_core.data.datasets import volumes
from radbench_core.data.datasets.volumes import (VOLUME_CACHE, VolumeCache, axial_shape, check_pair,
                                            load_image, load_label)
from radbench_core.core.errors import DatasetError


def identity(x: np.ndarray) -> np.ndarray:
    return x


@pytest.fixture(autouse=True)
def _fresh_cache():
    VOLUME_CACHE.clear()
    yield
    VOLUME_CACHE.clear()


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


# a[x, y, z] = 6x + 2y + z on a non-square 4 x 3 grid, 2 slices, stored in RAS order
RAS = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
# hand-derived from out[s, h, w] = ras[X-1-w, Y-1-h, s]: row 0 is anterior, column 0 patient right
EXPECTED_SLICE0 = [[22, 16, 10, 4], [20, 14, 8, 2], [18, 12, 6, 0]]
EXPECTED_SLICE1 = [[23, 17, 11, 5], [21, 15, 9, 3], [19, 13, 7, 1]]


def test_round_trip_orientation_is_the_documented_one(tmp_path: Path):
    out = load_image(_save(tmp_path / "ras.nii.gz", RAS), identity)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    assert out[0].tolist() == EXPECTED_SLICE0
    assert out[1].tolist() == EXPECTED_SLICE1


@pytest.mark.parametrize("stored, affine", [
    (RAS[::-1, ::-1, :], np.diag([-1.0, -1.0, 1.0, 1.0])),                 # LPS, as scanners store CT
    (RAS.transpose(1, 0, 2), np.array([[0, 1, 0, 0], [1, 0, 0, 0],        # axes swapped in the file
                                       [0, 0, 1, 0], [0, 0, 0, 1]], float)),
    (RAS[:, :, ::-1], np.diag([1.0, 1.0, -1.0, 1.0])),                    # slices stored top-down
])
def test_any_stored_orientation_comes_back_the_same(tmp_path: Path, stored, affine):
    path = _save(tmp_path / "other.nii.gz", np.ascontiguousarray(stored), affine)
    assert axial_shape(path) == (2, 3, 4)
    out = load_image(path, identity)
    assert out[0].tolist() == EXPECTED_SLICE0 and out[1].tolist() == EXPECTED_SLICE1
    mask = load_label(_save(tmp_path / "mask.nii.gz", (np.ascontiguousarray(stored) % 3).astype(np.uint8),
                            affine), num_classes=2)
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, out.astype(np.int64) % 3)          # image and mask align


def test_axial_shape_reads_only_the_header(tmp_path: Path, monkeypatch):
    path = _save(tmp_path / "v.nii.gz", np.zeros((5, 7, 3), np.float32))
    monkeypatch.setattr(volumes, "_decode", lambda *a, **k: pytest.fail("decoded voxel data"))
    assert axial_shape(path) == (3, 7, 5)


def test_each_volume_is_decoded_once(tmp_path: Path, monkeypatch):
    path = _save(tmp_path / "v.nii.gz", RAS)
    calls = []
    real = volumes._decode
    monkeypatch.setattr(volumes, "_decode", lambda p, as_label: calls.append(p) or real(p, as_label))
    first = load_image(path, identity)
    for _ in range(5):
        assert load_image(path, identity) is first            # slices served from memory
    assert len(calls) == 1
    assert VOLUME_CACHE.stats()["hits"] == 5 and VOLUME_CACHE.stats()["decodes"] == 1
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1.0                                   # shared, so read-only
    # a rewritten file (new mtime/size) is decoded again
    _save(path, RAS * 2)
    os.utime(path, ns=(1, 1))
    assert load_image(path, identity)[0, 0, 0] == 44.0
    assert len(calls) == 2


def test_lru_is_bounded_and_keeps_the_newest():
    cache = VolumeCache(max_bytes=2 * 800)
    arrays = {k: np.zeros(100) for k in "abc"}                 # 800 bytes each
    for k in "abc":
        cache.get((k,), lambda k=k: arrays[k])
    assert cache.stats()["entries"] == 2 and cache.nbytes <= 1600
    cache.get(("b",), lambda: pytest.fail("b was evicted"))    # newest two kept, 'a' evicted
    tiny = VolumeCache(max_bytes=10)
    tiny.get(("big",), lambda: np.zeros(1000))
    assert tiny.stats()["entries"] == 1                        # an oversized volume is still kept


def test_truncated_gzip_names_the_file(tmp_path: Path):
    rng = np.random.default_rng(0)
    path = _save(tmp_path / "case_7.nii.gz", rng.normal(size=(16, 16, 8)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as err:
        load_image(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:") and "cannot be decoded" in msg and "re-download" in msg


def test_not_a_nifti_and_missing_file(tmp_path: Path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"this is not a nifti file")
    with pytest.raises(DatasetError, match=r"junk.nii.gz: cannot read the NIfTI header"):
        axial_shape(junk)
    with pytest.raises(DatasetError, match=r"gone.nii.gz: the NIfTI file is missing"):
        load_image(tmp_path / "gone.nii.gz")


def test_two_d_file_is_refused(tmp_path: Path):
    path = _save(tmp_path / "flat.nii.gz", np.zeros((4, 4), np.float32))
    with pytest.raises(DatasetError,
                       match=r"flat.nii.gz: expected a 3D volume, the header says shape \(4, 4\)"):
        load_image(path)


def test_shape_mismatch_names_both_files(tmp_path: Path):
    img = _save(tmp_path / "img.nii.gz", np.zeros((4, 3, 2), np.int16))
    lab = _save(tmp_path / "lab.nii.gz", np.zeros((4, 3, 5), np.uint8))
    assert check_pair(img, img) == 2
    with pytest.raises(DatasetError) as err:
        check_pair(img, lab)
    msg = str(err.value)
    assert msg.startswith(f"{lab}:") and str(img) in msg and "(5, 3, 4)" in msg and "(2, 3, 4)" in msg


def test_label_values_outside_declared_set(tmp_path: Path):
    lab = np.zeros((4, 3, 2), np.uint8)
    lab[0, 0, 0], lab[1, 1, 1] = 2, 7
    path = _save(tmp_path / "lab.nii.gz", lab)
    with pytest.raises(DatasetError, match=r"lab.nii.gz: label values \[7\] are outside the declared 0..2"):
        load_label(path, num_classes=2)
    assert load_label(path, num_classes=7).max() == 7


def test_non_integer_labels_and_nan_images(tmp_path: Path):
    frac = _save(tmp_path / "frac.nii.gz", np.full((2, 2, 2), 0.5, np.float32))
    with pytest.raises(DatasetError, match=r"frac.nii.gz: label volume holds non-integer values"):
        load_label(frac, num_classes=1)
    ok = _save(tmp_path / "float_ok.nii.gz", np.ones((2, 2, 2), np.float32))
    assert load_label(ok, num_classes=1).dtype == np.int64
    vol = np.ones((3, 3, 2), np.float32)
    vol[1, 1, 1] = np.nan
    with pytest.raises(DatasetError, match=r"nan.nii.gz: 1 of 18 values are not finite \(1 NaN, 0 inf\)"):
        load_image(_save(tmp_path / "nan.nii.gz", vol))
