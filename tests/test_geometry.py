"""Issue 26 M2: one geometry check (data/datasets/geometry.py) for every image/mask pair reader.

The generic ``mask_dataset`` had none: a label with a flipped affine was read and mirrored (Dice
0.000 against the drawn region). An RGBA Montgomery mask with the lung in its alpha channel became
a whole-image lung once flattened to gray.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets import open_dataset
from radbench_core.data.datasets.generic import mask_dataset
from radbench_core.data.datasets.geometry import check_image_mask_pair, read_mask_2d

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _volume_dataset(root: Path, n: int = 10, label_affine_of=lambda i: AFFINE) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = np.random.default_rng(i).normal(size=(8, 9, 4)).astype(np.float32)
        label = np.zeros((8, 9, 4), np.uint8)
        label[1:4, 2:5, :] = 1                                   # drawn on one side (x < 4)
        nib.save(nib.Nifti1Image(image, AFFINE), str(root / "images" / f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(label, label_affine_of(i)), str(root / "masks" / f"case{i}.nii.gz"))
    return root


def _spec(volumetric: bool):
    return mask_dataset("organ", "Organ", folder="organ", class_names=("organ",), modality="ct",
                        volumetric=volumetric)


def test_a_flipped_label_in_a_user_mask_dataset_is_refused_not_mirrored(tmp_path: Path):
    flipped = np.diag([-1.5, 1.5, 3.0, 1.0])
    flipped[0, 3] = 1.5 * 7                                      # x flipped, same extent
    root = _volume_dataset(tmp_path / "organ", label_affine_of=lambda i: flipped if i == 3 else AFFINE)
    with pytest.raises(DatasetError) as err:
        open_dataset(_spec(True), root)
    text = str(err.value)
    assert text.startswith(f"{root / 'masks' / 'case3.nii.gz'}: label orientation LAS differs from its image")
    assert "Fix:" in text


def test_a_shifted_label_in_a_user_mask_dataset_is_refused(tmp_path: Path):
    """A variant no case-specific check names: the same mechanism catches a 2 mm shift."""
    shifted = AFFINE.copy()
    shifted[2, 3] = 2.0
    root = _volume_dataset(tmp_path / "organ", label_affine_of=lambda i: shifted if i == 5 else AFFINE)
    with pytest.raises(DatasetError, match=r"case5.nii.gz: label affine differs from its image .* by up to 2 mm"):
        open_dataset(_spec(True), root)


def test_matching_volumes_index_with_their_slice_counts(tmp_path: Path):
    index = open_dataset(_spec(True), _volume_dataset(tmp_path / "organ"))
    assert [it.n_slices for it in index.items] == [4] * 10


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def test_a_2d_user_mask_of_another_size_is_refused_at_indexing(tmp_path: Path):
    for i in range(10):
        _png(tmp_path / "images" / f"{i}.png", np.full((12, 16), i, np.uint8))
        _png(tmp_path / "masks" / f"{i}.png", np.zeros((16, 12) if i == 4 else (12, 16), np.uint8))
    with pytest.raises(DatasetError, match=r"masks/4.png: mask shape \(16, 12\) differs from the image "
                                           r"shape \(12, 16\).*rotated"):
        open_dataset(_spec(False), tmp_path)


def test_an_rgba_mask_with_the_region_in_alpha_is_refused(tmp_path: Path):
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., :3] = 255                                        # white everywhere: gray would be all lung
    rgba[3:8, 2:6, 3] = 255                                    # the lung is drawn in alpha only
    path = _png(tmp_path / "m.png", rgba, "RGBA")
    with pytest.raises(DatasetError) as err:
        read_mask_2d(path)
    assert str(err.value).startswith(f"{path}: the mask (RGBA) draws its region in the alpha channel (20 of 192 pixels opaque)")
    assert "Fix: re-save the mask as a single-channel" in str(err.value)
    coloured = np.zeros((12, 16, 3), np.uint8)
    coloured[2:4, 2:4, 0] = 255
    with pytest.raises(DatasetError, match="is coloured"):
        read_mask_2d(_png(tmp_path / "c.png", coloured, "RGB"))
    opaque = np.zeros((12, 16, 4), np.uint8)
    opaque[..., 3] = 255
    opaque[3:8, 2:6, :3] = 1                                   # gray saved as RGBA, alpha constant: fine
    got = read_mask_2d(_png(tmp_path / "o.png", opaque, "RGBA"))
    assert got.shape == (12, 16) and int(got.sum()) == 20


def test_montgomery_reads_masks_through_the_same_check(tmp_path: Path):
    from radbench_core.data.datasets.montgomery import LEFT_DIR, index
    from radbench_core.data.datasets.base import LoadOptions
    from radbench_core.data.phantoms.montgomery import write_phantom
    write_phantom(tmp_path, "tiny", seed=0)
    ix = index(tmp_path, LoadOptions())
    item = ix.items[0]
    left = tmp_path / item.masks[0]
    gray = np.asarray(Image.open(left).convert("L"))
    rgba = np.zeros(gray.shape + (4,), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.where(gray > 0, 255, 0)
    Image.fromarray(rgba, "RGBA").save(left)
    assert left.relative_to(tmp_path).as_posix().startswith(LEFT_DIR)
    with pytest.raises(DatasetError, match="draws its region in the alpha channel"):
        ix.load_mask(item)


def test_a_nifti_mask_for_a_2d_image_is_refused(tmp_path: Path):
    image = _png(tmp_path / "i.png", np.zeros((8, 9), np.uint8))
    mask = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 1), np.uint8), AFFINE), str(mask))
    with pytest.raises(DatasetError, match=r"m.nii.gz: a NIfTI mask for the 2D image"):
        check_image_mask_pair(image, mask)
