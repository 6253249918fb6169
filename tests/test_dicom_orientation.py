"""DICOM slices are read in one orientation whatever ImageOrientationPatient says, so one CT volume gives
the same model input from DICOM as from NIfTI; other planes and oblique slices are refused in one line;
DICOM image/mask pairs go through the one geometry check (issues 22 and 26).

The reference is the world, not our own code: each DICOM slice is *sampled* from the NIfTI volume at the
patient coordinates its ImageOrientationPatient/ImagePositionPatient give (PS3.3 C.7.6.2.1.1, LPS), so
a wrong transpose or flip reads another voxel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from radbench_core.core.errors import DatasetError  # noqa: E402
from radbench_core.data.datasets import open_dataset  # noqa: E402
from radbench_core.data.datasets.dicom import read_dicom  # noqa: E402
from radbench_core.data.datasets.generic import mask_dataset  # noqa: E402
from radbench_core.data.datasets.geometry import check_image_mask_pair  # noqa: E402
from radbench_core.data.datasets.preprocess import window_ct  # noqa: E402
from radbench_core.data.datasets.volumes import load_image  # noqa: E402
from tests.test_dicom import write_variant  # noqa: E402

X, Y, Z = 20, 24, 3                                   # RAS voxel grid, affine = identity (1 mm)
ORIENTATIONS = {                                      # ImageOrientationPatient (LPS): along a row, along a column
    "identity": (1, 0, 0, 0, 1, 0),
    "flipped": (-1, 0, 0, 0, -1, 0),
    "columns-flipped": (-1, 0, 0, 0, 1, 0),
    "transposed": (0, 1, 0, 1, 0, 0),
    "transposed-flipped": (0, -1, 0, -1, 0, 0),
}


def volume(seed: int = 0) -> np.ndarray:
    """HU values on the RAS grid; every voxel differs, so any wrong voxel shows."""
    rng = np.random.default_rng(seed)
    return (np.arange(X * Y * Z).reshape(X, Y, Z) * 3.0 - 1000 + rng.integers(0, 3, (X, Y, Z))).astype(np.int16)


def sample_slice(vol: np.ndarray, k: int, iop) -> tuple[np.ndarray, list[float]]:
    """The slice k as a scanner with this IOP stores it: pixel (r, c) is the voxel at
    IPP + c * along_row + r * along_col (LPS); returns the pixels and the IPP."""
    along_row, along_col = np.array(iop[:3], float), np.array(iop[3:], float)
    n_cols = X if abs(along_row[0]) else Y
    n_rows = Y if abs(along_col[1]) else X
    r, c = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    offsets = c[..., None] * along_row + r[..., None] * along_col           # LPS, IPP = 0
    low = np.array([-(X - 1), -(Y - 1), k])                                  # the volume's LPS corner
    ipp = low - offsets.reshape(-1, 3).min(axis=0)
    lps = offsets + ipp
    i, j = np.rint(-lps[..., 0]).astype(int), np.rint(-lps[..., 1]).astype(int)     # LPS -> RAS voxel
    return vol[i, j, k], [float(v) for v in ipp]


def write_slice(path: Path, pixels: np.ndarray, iop, ipp=None, **attrs) -> Path:
    extra = dict(ImageOrientationPatient=[float(v) for v in iop], RescaleSlope=1, RescaleIntercept=0)
    if ipp is not None:
        extra["ImagePositionPatient"] = ipp
    return write_variant(path, np.ascontiguousarray(pixels), **extra, **attrs)


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_a_slice_in_any_axis_aligned_orientation_reads_as_the_same_nifti_slice(tmp_path: Path, name: str) -> None:
    vol = volume()
    nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), tmp_path / "ct.nii.gz")
    from_nifti = load_image(tmp_path / "ct.nii.gz", window_ct)
    for k in range(Z):
        pixels, ipp = sample_slice(vol, k, ORIENTATIONS[name])
        if name != "identity":
            assert not np.array_equal(pixels, sample_slice(vol, k, ORIENTATIONS["identity"])[0])
        got = read_dicom(write_slice(tmp_path / f"{name}{k}.dcm", pixels, ORIENTATIONS[name], ipp), "ct")
        np.testing.assert_array_equal(got, from_nifti[k])


def test_a_small_gantry_tilt_is_read_as_axial_and_a_large_one_or_another_plane_is_refused(tmp_path: Path) -> None:
    pixels, _ = sample_slice(volume(), 0, ORIENTATIONS["flipped"])
    reference = read_dicom(write_slice(tmp_path / "flat.dcm", pixels, ORIENTATIONS["flipped"]), "ct")
    five = np.deg2rad(5)
    tilted = (-1, 0, 0, 0, -np.cos(five), np.sin(five))
    np.testing.assert_array_equal(read_dicom(write_slice(tmp_path / "t5.dcm", pixels, tilted), "ct"), reference)
    thirty = np.deg2rad(30)
    with pytest.raises(DatasetError, match=r"t30\.dcm: an oblique slice, 30\.0 degrees off the scanner axes.*"
                                           r"Fix: resample the series onto an axial grid"):
        read_dicom(write_slice(tmp_path / "t30.dcm", pixels, (1, 0, 0, 0, np.cos(thirty), np.sin(thirty))), "ct")
    with pytest.raises(DatasetError, match=r"sag\.dcm: a sagittal slice \(ImageOrientationPatient \[0, 1, 0, 0, 0, -1\]\)"):
        read_dicom(write_slice(tmp_path / "sag.dcm", pixels, (0, 1, 0, 0, 0, -1)), "ct")
    with pytest.raises(DatasetError, match=r"cor\.dcm: a coronal slice"):
        read_dicom(write_slice(tmp_path / "cor.dcm", pixels, (1, 0, 0, 0, 0, -1)), "ct")
    error = pytest.raises(DatasetError, read_dicom, write_slice(tmp_path / "sag2.dcm", pixels, (0, 1, 0, 0, 0, -1)))
    assert len(str(error.value).splitlines()) == 1


def _mask_folder(root: Path, iop_image, iop_mask=None, ipp_mask=None, mask_shape=None) -> Path:
    """images/k.dcm (a CT slice, a bright 'organ' block) with masks/k.dcm of the organ, 6 cases."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(6):
        hu = np.full((12, 10), -800, np.int16)
        organ = np.zeros((12, 10), np.uint16)
        organ[1 + k % 3:5 + k % 3, 2:5] = 1                     # upper-left block, off-centre: flips show
        hu[organ == 1] = 300
        write_slice(root / "images" / f"{k}.dcm", hu, iop_image, [0.0, 0.0, float(k)])
        mask = organ if mask_shape is None or k != 4 else np.zeros(mask_shape, np.uint16)
        write_slice(root / "masks" / f"{k}.dcm", mask, iop_mask or iop_image,
                    ipp_mask if ipp_mask is not None and k == 4 else [0.0, 0.0, float(k)])
    return root


SPEC = mask_dataset("ward_organ", "Ward organ CT", folder="ward_organ", class_names=("organ",), modality="ct")


def test_a_dicom_mask_dataset_turns_image_and_mask_together(tmp_path: Path) -> None:
    index = open_dataset(SPEC, _mask_folder(tmp_path / "flipped", ORIENTATIONS["flipped"]))
    for item in index.items:
        image, mask = index.load_slices(item), index.load_mask(item)
        assert image.shape == mask.shape == (1, 12, 10)
        np.testing.assert_array_equal(mask[0] == 1, image[0] > 0.5)         # the organ is where the mask is
        assert mask[0, 6:, 5:].any() and not mask[0, :5, :5].any()           # turned: now lower right


@pytest.mark.parametrize("case,message", [
    ("size", r"masks/4\.dcm: mask shape \(11, 10\) differs from the image .*images/4\.dcm with \(Rows, Columns\) "
             r"= \(12, 10\)\. Fix: use the mask that belongs to this image"),
    ("orientation", r"masks/\d\.dcm: mask orientation \[-1, 0, 0, 0, -1, 0\] differs from its image "
                    r".*images/\d\.dcm \(identity\)\. Fix: use the mask exported with this image"),
    ("position", r"masks/4\.dcm: mask position \[0, 0, 9\] differs from its image .*images/4\.dcm \(\[0, 0, 4\]\)"),
])
def test_a_dicom_mask_off_its_images_grid_is_refused_naming_both_files(tmp_path: Path, case: str, message: str) -> None:
    kwargs = {"size": dict(mask_shape=(11, 10)), "orientation": dict(iop_mask=ORIENTATIONS["flipped"]),
              "position": dict(ipp_mask=[0.0, 0.0, 9.0])}[case]
    root = _mask_folder(tmp_path / case, ORIENTATIONS["identity"], **kwargs)
    with pytest.raises(DatasetError, match=message) as error:
        open_dataset(SPEC, root)
    assert len(str(error.value).splitlines()) == 1


def test_a_png_mask_of_a_dicom_image_must_match_its_stored_size_and_carry_no_exif_turn(tmp_path: Path) -> None:
    from PIL import Image
    image = write_slice(tmp_path / "i.dcm", np.zeros((12, 10), np.int16), ORIENTATIONS["flipped"])
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(tmp_path / "ok.png")
    assert check_image_mask_pair(image, tmp_path / "ok.png") == 1
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "turned.png")
    with pytest.raises(DatasetError, match=r"turned\.png: mask shape \(10, 12\) differs from the image .*i\.dcm "
                                           r"with \(Rows, Columns\) = \(12, 10\) \(it looks rotated/transposed\)"):
        check_image_mask_pair(image, tmp_path / "turned.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(tmp_path / "tagged.png", exif=exif)
    with pytest.raises(DatasetError, match=r"tagged\.png: mask orientation EXIF tag 6 differs from its image"):
        check_image_mask_pair(image, tmp_path / "tagged.png")
