"""DICOM images are read as the standard displays them: pydicom's own test files and files written in
each variant (MONOCHROME1, rescale slope/intercept, window, VOI LUT), checked against pydicom's
reference LUT functions and against the same image in another encoding; a CT slice in DICOM and in
NIfTI gives the same model input."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.pixels import apply_modality_lut, apply_voi_lut  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402

from radbench_core.core.errors import DatasetError  # noqa: E402
from radbench_core.data.datasets import open_dataset  # noqa: E402
from radbench_core.data.datasets.dicom import read_dicom, window_linear  # noqa: E402
from radbench_core.data.datasets.generic import csv_dataset  # noqa: E402


def shipped(name: str) -> Path:
    """A test file that pydicom ships in its wheel (never downloaded: the machine has no network)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom does not ship {name}")
    return Path(path)


def write_variant(path: Path, pixels: np.ndarray, **attrs) -> Path:
    """CT_small.dcm re-written with other pixels (signed/unsigned from the dtype) and attributes."""
    ds = pydicom.dcmread(shipped("CT_small.dcm"))
    for name in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if name in ds:
            delattr(ds, name)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = pixels.tobytes()
    for name, value in attrs.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def rows_cols(seed: int = 0, shape=(24, 20)) -> np.ndarray:
    """A smooth gradient plus noise in HU-like units: every pixel differs, so a flip or inversion shows."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(shape[0]) * 40.0, np.arange(shape[1]) * 7.0)
    return (ramp - 900 + rng.integers(0, 30, shape)).astype(np.int16)


def test_ct_small_gets_the_hounsfield_window_of_every_ct() -> None:
    path = shipped("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.clip((hu + 1024.0) / 1624.0, 0.0, 1.0)            # radbench's CT window [-1024, 600] HU
    got = read_dicom(path, "ct")
    assert got.dtype == np.float32 and got.shape == (128, 128)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, read_dicom(path, "xray"))           # min-max would differ


def test_mr_small_window_matches_pydicoms_voi_lut() -> None:
    path = shipped("MR_small.dcm")
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    lo, hi = -(2 ** 15), 2 ** 15 - 1                                   # pydicom's output range: signed 16 bit
    np.testing.assert_allclose(read_dicom(path, "xray"), (reference - lo) / (hi - lo), atol=2e-5)


@pytest.mark.parametrize("encoding", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
                                      "MR_small_expb.dcm"])
def test_other_encodings_of_one_image_read_the_same(encoding: str) -> None:
    np.testing.assert_array_equal(read_dicom(shipped(encoding), "xray"), read_dicom(shipped("MR_small.dcm"), "xray"))


def test_monochrome1_is_inverted_back(tmp_path: Path) -> None:
    raw = (rows_cols() + 1000).astype(np.uint16)
    m2 = write_variant(tmp_path / "m2.dcm", raw, PhotometricInterpretation="MONOCHROME2")
    m1 = write_variant(tmp_path / "m1.dcm", (4095 - raw).astype(np.uint16), PhotometricInterpretation="MONOCHROME1")
    a, b = read_dicom(m2, "xray"), read_dicom(m1, "xray")
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999                 # was -1.0 before the fix
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_rescale_slope_and_intercept_give_the_same_hounsfield_units(tmp_path: Path) -> None:
    hu = rows_cols()
    plain = write_variant(tmp_path / "plain.dcm", hu, RescaleSlope=1, RescaleIntercept=0)
    stored = ((hu.astype(np.int32) + 1024) // 2).astype(np.uint16)
    scaled = write_variant(tmp_path / "scaled.dcm", stored, RescaleSlope=2, RescaleIntercept=-1024)
    expected = np.clip((stored * 2.0 - 1024 + 1024) / 1624.0, 0, 1)
    np.testing.assert_allclose(read_dicom(scaled, "ct"), expected, atol=1e-6)
    np.testing.assert_allclose(read_dicom(plain, "ct"), read_dicom(scaled, "ct"), atol=1.0 / 1624 + 1e-6)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_of_the_file_is_applied_as_pydicom_does(tmp_path: Path, function: str) -> None:
    raw = (rows_cols() + 1000).astype(np.uint16)
    path = write_variant(tmp_path / "w.dcm", raw, WindowCenter=900, WindowWidth=600, VOILUTFunction=function,
                         PhotometricInterpretation="MONOCHROME2")
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(ds.pixel_array, ds).astype(np.float64) / 65535.0
    np.testing.assert_allclose(read_dicom(path, "xray"), reference, atol=2e-5)


def test_voi_lut_sequence_is_applied_as_pydicom_does(tmp_path: Path) -> None:
    raw = (np.arange(24 * 20).reshape(24, 20) % 256).astype(np.uint16)
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 12]
    lut.add_new(0x00283006, "US", [int(4095 * (i / 255) ** 0.5) for i in range(256)])   # LUTData
    path = write_variant(tmp_path / "lut.dcm", raw, VOILUTSequence=Sequence([lut]),
                         PhotometricInterpretation="MONOCHROME2")
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(ds.pixel_array, ds).astype(np.float64) / 4095.0
    np.testing.assert_allclose(read_dicom(path, "xray"), reference, atol=1e-6)


def test_linear_window_by_hand() -> None:
    """PS3.3 C.11.2.1.2.1: c=100, w=11 -> values <= 94.5 are 0, > 104.5 are 1, 99.5 is the middle."""
    got = window_linear(np.array([94.0, 94.5, 99.5, 104.5, 105.0]), 100.0, 11.0)
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_ct_from_dicom_and_from_nifti_give_the_same_model_input(tmp_path: Path) -> None:
    hu = rows_cols(seed=3)
    (tmp_path / "dcm").mkdir()
    rows = ["image,dx"]
    for i in range(6):                                  # enough items for a train/val/test split
        write_variant(tmp_path / "dcm" / f"{i}.dcm", hu, RescaleSlope=1, RescaleIntercept=0)
        ras = hu[::-1, ::-1].T[:, :, None].astype(np.float32)   # radiological (rows A->P, cols R->L) -> RAS+
        nib.save(nib.Nifti1Image(ras, np.eye(4)), tmp_path / f"{i}.nii.gz")
        rows += [f"dcm/{i}.dcm,a", f"{i}.nii.gz,b"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    index = open_dataset(csv_dataset("ward_ct", "Ward CT", folder="ward_ct", label_column="dx",
                                     classes=("a", "b"), modality="ct"), tmp_path)
    by_key = {it.key: it for it in index.items}
    from_dicom, from_nifti = index.load_slices(by_key["dcm/0.dcm"]), index.load_slices(by_key["0.nii.gz"])
    assert from_dicom.shape == from_nifti.shape == (1, 24, 20)
    np.testing.assert_array_equal(from_dicom, from_nifti)


def test_multi_frame_colour_and_corrupt_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"rtdose\.dcm.*15 frames"):
        read_dicom(shipped("rtdose.dcm"))
    with pytest.raises(DatasetError, match="PhotometricInterpretation 'RGB'"):
        read_dicom(shipped("SC_rgb_small_odd.dcm"))
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(shipped("CT_small.dcm").read_bytes()[:2000])
    with pytest.raises(DatasetError, match=r"cut\.dcm.*cannot decode the DICOM file"):
        read_dicom(bad)
