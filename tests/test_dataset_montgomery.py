"""Montgomery County loader: images + left/right lung masks, systematic split, bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.montgomery import LEFT_DIR, RIGHT_DIR, index
from radbench_core.core.errors import DatasetError
from radbench_core.data.phantoms.montgomery import write_phantom

SPEC = get_dataset("mc")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mc")
    write_phantom(root, "tiny", seed=0)
    return root


def test_phantom_items_split_and_masks(phantom):
    ix = open_dataset(SPEC, phantom)
    assert SPEC.num_classes == 2 and SPEC.task == "segmentation"
    assert len(ix.items) == 30 and {k: len(v) for k, v in ix.splits.items()} == {
        "train": 21, "val": 3, "test": 6}
    assert all(it.patient == it.key for it in ix.items)           # each image its own patient
    assert ix.items[0].key == "MCUCXR_0001_0" and ix.items[2].key == "MCUCXR_0003_1"
    item = ix.items[4]
    img, mask = ix.load_slices(item), ix.load_mask(item)
    assert img.shape == mask.shape == (1, 64, 64) and mask.dtype == np.int64
    assert set(np.unique(mask)) == {0, 1, 2}
    left = np.asarray(Image.open(phantom / LEFT_DIR / f"{item.key}.png")) > 0
    right = np.asarray(Image.open(phantom / RIGHT_DIR / f"{item.key}.png")) > 0
    np.testing.assert_array_equal(mask[0] == 1, left & ~right)
    np.testing.assert_array_equal(mask[0] == 2, right & ~left)
    cols = np.arange(64)[None, :].repeat(64, 0)
    assert cols[mask[0] == 1].mean() > 32 > cols[mask[0] == 2].mean()   # patient's left = image right
    body = img[0] > 0.3
    assert img[0][mask[0] > 0].mean() < img[0][body & (mask[0] == 0)].mean() - 0.2   # lungs are dark


def test_masks_binarised_with_greater_than_zero(tmp_path):
    write_phantom(tmp_path, "tiny", seed=1)
    ix = index(tmp_path, LoadOptions())
    item = ix.items[0]
    path = tmp_path / item.masks[0]
    raw = np.asarray(Image.open(path))
    Image.fromarray((raw > 0).astype(np.uint8)).save(path)          # values 0/1 instead of 0/255
    mask = ix.load_mask(item)[0]
    np.testing.assert_array_equal(mask == 1, (raw > 0) & (mask != 2))
    assert (mask == 1).sum() > 0


def test_shape_mismatch_is_refused(tmp_path):
    write_phantom(tmp_path, "tiny", seed=2)
    ix = index(tmp_path, LoadOptions())
    item = ix.items[1]
    Image.fromarray(np.zeros((32, 64), dtype=np.uint8)).save(tmp_path / item.masks[1])
    with pytest.raises(DatasetError) as err:
        ix.load_mask(item)
    msg = str(err.value)
    assert "rightMask" in msg and "(32, 64) differs from the image shape (64, 64)" in msg and "Fix:" in msg


def test_missing_mask_and_missing_images(tmp_path):
    write_phantom(tmp_path, "tiny", seed=3)
    (tmp_path / LEFT_DIR / "MCUCXR_0005_0.png").unlink()
    with pytest.raises(DatasetError, match=r"leftMask/MCUCXR_0005_0.png: the lung mask .* is missing"):
        index(tmp_path, LoadOptions())
    with pytest.raises(DatasetError, match=r"CXR_png: no PNG images found"):
        index(tmp_path / "nothing_here", LoadOptions())


def test_corrupt_png_and_split_reuse(tmp_path):
    write_phantom(tmp_path, "tiny", seed=4)
    first = index(tmp_path, LoadOptions(splits_dir=str(tmp_path / "cache")))
    assert not (tmp_path / "radbench_splits.json").exists()
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert index(tmp_path, LoadOptions(splits_dir=str(tmp_path / "cache"))).splits == first.splits
    (tmp_path / first.items[0].images[0]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match="cannot decode the image"):
        first.load_slices(first.items[0])
