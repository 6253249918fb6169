"""The two cases of issue 15's campaign that its closing note left alone ("2D orientation is checked only
through EXIF tags and a height/width swap. A partial user split file is refused, with no opt-out."),
which issue 26 counts as the two still unfixed:

1. A 2D image (or mask) saved with an EXIF orientation reached the model as stored, i.e. turned against
   every untagged image of the dataset. It is now read as displayed, image and mask alike (their tags
   must agree, geometry.py), checked against a rotation done by hand.
2. A user split file that lists a subset on purpose (a published subset, an official test list) could
   only be refused. ``"unlisted": "exclude"`` in the file now leaves the other items out, with one
   warning that counts them; without it the refusal names that opt-out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets import open_dataset
from radbench_core.data.datasets.csvtools import read_raw
from radbench_core.data.datasets.generic import mask_dataset
from radbench_core.data.datasets.splits import load_or_create_splits
from tests.test_splits import _items, _make

ROTATED_90_CW = 6          # EXIF: the stored pixels must be turned 90 degrees clockwise to be displayed


def _tagged_png(path: Path, stored: np.ndarray, tag: int | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if tag is not None:
        exif[0x0112] = tag
    Image.fromarray(stored).save(path, exif=exif)
    return path


def test_an_exif_rotated_png_reads_as_the_upright_image(tmp_path: Path) -> None:
    upright = np.zeros((12, 16), np.uint8)
    upright[1:4, 2:9] = 200                                    # a bar in the upper left: any turn shows
    stored = np.rot90(upright, k=1)                            # saved turned 90 CCW, tagged "rotate 90 CW"
    tagged = _tagged_png(tmp_path / "tagged.png", np.ascontiguousarray(stored), ROTATED_90_CW)
    np.testing.assert_array_equal(read_raw(tagged), upright)               # was `stored` (16 x 12)
    np.testing.assert_array_equal(read_raw(_tagged_png(tmp_path / "plain.png", upright, None)), upright)


def test_a_mask_dataset_of_tagged_pairs_reads_image_and_mask_upright_and_aligned(tmp_path: Path) -> None:
    for i in range(6):
        upright = np.zeros((12, 16), np.uint8)
        upright[1 + i % 3:4 + i % 3, 2:9] = 1
        stored = np.ascontiguousarray(np.rot90(upright, k=1))
        _tagged_png(tmp_path / "images" / f"{i}.png", stored * 200, ROTATED_90_CW)
        _tagged_png(tmp_path / "masks" / f"{i}.png", stored, ROTATED_90_CW)
    index = open_dataset(mask_dataset("tagged", "Tagged", folder="tagged", class_names=("bar",)), tmp_path)
    for item in index.items:
        image, mask = index.load_slices(item), index.load_mask(item)
        assert image.shape == mask.shape == (1, 12, 16)
        np.testing.assert_array_equal(mask[0] == 1, image[0] > 0.5)
        assert mask[0, :, :2].sum() == 0 and mask[0, :, 2:9].any()        # the bar lies along the rows


def test_a_split_file_listing_a_subset_on_purpose_leaves_the_rest_out_with_one_warning(tmp_path: Path) -> None:
    items = _items()                                                         # img0..img5
    subset = tmp_path / "official.json"
    subset.write_text(json.dumps({"train": ["img0", "img1"], "val": ["img2"], "test": ["img5"],
                                  "unlisted": "exclude"}))
    with pytest.warns(UserWarning, match=r"official\.json: 2 of 6 items on disk are in no split and are left "
                                         r"out, as the file says .*'img3', 'img4'"):
        positions = load_or_create_splits(tmp_path, items, _make(items), split_file=str(subset))
    assert positions == {"train": [0, 1], "val": [2], "test": [5]}
    subset.write_text(json.dumps({"train": ["img0", "img1"], "val": ["img2"], "test": ["img5"]}))
    with pytest.raises(DatasetError, match=r"2 of 6 items on disk are in no split.*the file lists a subset\. "
                                           r"Fix: .*add \"unlisted\": \"exclude\" to the file"):
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(subset))
    subset.write_text(json.dumps({"train": ["img0"], "test": ["img5"], "unlisted": "drop"}))
    with pytest.raises(DatasetError) as error:
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(subset))
    assert str(error.value).startswith(f"{subset}: \"unlisted\": 'drop' is not one of ['refuse', 'exclude']")
