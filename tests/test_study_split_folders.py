"""The study's published splits read as they are (issue 20): a dataset folder the study's own
make_splits / data_split / slice_it left, with train/ val/ test/ beside each other.

The folders are built here by re-running the study's code verbatim on the phantom's file names
(repo dinov2/data/datasets/mc.py make_splits, msd_spleen.py data_split + slice_it), so the split
radbench reads is checked against the study's code, not against radbench's own rule.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets import get_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.study_splits import mc_study_split


def _phantom(tmp_path: Path, dataset: str) -> Path:
    spec = get_dataset(dataset)
    root = tmp_path / spec.folder
    spec.write_phantom(root, size="tiny", seed=0)
    return root


def _touch(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _study_mc_folders(images: list[str], out: Path) -> dict[str, list[str]]:
    """mc.py make_splits, its index arithmetic verbatim (138 -> the phantom's count)."""
    n = len(images)
    test_list = [i for i in range(0, n, math.ceil(138 / 46))]
    val_list = [i for i in range(0, n - len(test_list), math.ceil(92 / 23))]
    entire_data = pd.DataFrame(images)
    test_set = entire_data.iloc[test_list]
    train_val_set = entire_data.drop(test_list).reset_index(drop=True)
    val_set = train_val_set.iloc[val_list]
    train_set = train_val_set.drop(val_list)
    names = {"train": list(train_set[0]), "val": list(val_set[0]), "test": list(test_set[0])}
    for split, files in names.items():
        _touch(out / split, files)
    return names


def test_montgomery_folders_give_the_study_s_split_and_agree_with_its_rule(tmp_path):
    root = _phantom(tmp_path, "mc")
    images = sorted(os.listdir(root / "CXR_png"))
    names = _study_mc_folders(images, tmp_path / "study_mc")
    index = get_dataset("mc").index(root, LoadOptions(split_file=str(tmp_path / "study_mc")))
    got = {split: sorted(Path(index.items[i].images[0]).name for i in pos)
           for split, pos in index.splits.items()}
    assert got == {split: sorted(files) for split, files in names.items()}
    assert [len(got[s]) for s in ("train", "val", "test")] == [15, 5, 10]       # 30 images: every 3rd of 30, every 4th of the other 20
    # the same membership as radbench's own implementation of the rule (split_rule "study")
    rule = mc_study_split(len(images))
    assert {s: sorted(images[i] for i in rule[s]) for s in rule} == got


def test_msd_slices_map_back_to_their_volumes_and_labels_are_ignored(tmp_path):
    root = _phantom(tmp_path, "msd_spleen")
    images = sorted(p.name for p in (root / "imagesTr").iterdir() if not p.name.startswith("."))
    n_volumes = len(images)                                   # msd_spleen.py data_split, verbatim
    test_list = np.arange(0, n_volumes, n_volumes / 15).round().astype("int")
    val_list = np.arange(0, n_volumes - 15, (n_volumes - 15) / 10).round().astype("int")
    # 10 phantom volumes: 15 test draws repeat indices; the study's loop would move a file twice,
    # so take each once, in order, as its shutil.move would have succeeded
    test = [images[i] for i in dict.fromkeys(test_list.tolist()) if i < n_volumes]
    rest = [v for v in images if v not in test]
    val = [rest[i] for i in dict.fromkeys(val_list.tolist()) if 0 <= i < len(rest)]
    train = [v for v in rest if v not in val]
    study = tmp_path / "study_spleen"
    for split, vols in (("train", train), ("val", val), ("test", test)):
        # slice_it: one f"{scan_name}_{i:03d}.npy" per slice, the volume removed
        _touch(study / split, [f"{v.split('.')[0]}_{i:03d}.npy" for v in vols for i in range(3)])
    _touch(study / "labels", [f"{v.split('.')[0]}_000.npy" for v in images])
    index = get_dataset("msd_spleen").index(root, LoadOptions(split_file=str(study)))
    got = {s: sorted(Path(index.items[i].images[0]).name for i in pos) for s, pos in index.splits.items()}
    assert got == {"train": sorted(train), "val": sorted(val), "test": sorted(test)}
    assert sum(map(len, got.values())) == n_volumes


def test_items_in_no_folder_are_left_out_with_a_warning(tmp_path):
    root = _phantom(tmp_path, "amos")
    volumes = sorted(p.name for p in (root / "imagesTr").iterdir() if not p.name.startswith("."))
    study = tmp_path / "study_amos"
    _touch(study / "train", [f"{volumes[0].split('.')[0]}_000.npy", f"{volumes[1].split('.')[0]}_000.npy"])
    _touch(study / "val", [f"{volumes[2].split('.')[0]}_004.npy"])
    _touch(study / "test", [volumes[3]])                       # a volume not yet sliced
    with pytest.warns(UserWarning, match=r"items on disk are in no split and are left out"):
        index = get_dataset("amos").index(root, LoadOptions(split_file=str(study)))
    got = {s: [index.items[i].key for i in pos] for s, pos in index.splits.items()}
    assert got == {"train": [volumes[0][:-7], volumes[1][:-7]], "val": [volumes[2][:-7]],
                   "test": [volumes[3][:-7]]}


def test_a_file_of_another_release_is_named_in_the_error(tmp_path):
    root = _phantom(tmp_path, "mc")
    names = _study_mc_folders(sorted(os.listdir(root / "CXR_png")), tmp_path / "study_mc")
    _touch(tmp_path / "study_mc" / "val", ["CHNCXR_0001_0.png"])          # a Shenzhen image
    with pytest.raises(DatasetError) as err:
        get_dataset("mc").index(root, LoadOptions(split_file=str(tmp_path / "study_mc")))
    message = str(err.value)
    assert "study_mc/val/CHNCXR_0001_0.png" in message and "matches no item" in message
    assert names["val"]                                       # the folder held real names too


def test_a_release_whose_items_share_file_names_is_refused(tmp_path):
    root = _phantom(tmp_path, "sarscov2")
    study = tmp_path / "study_sars"
    for split, folders in (("train", ["0", "1"]), ("val", ["2"]), ("test", ["3"])):
        for name in folders:
            (study / split / name).mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"several items whose first image is named '1'.*renamed "
                                           r"each patient folder to a number"):
        get_dataset("sarscov2").index(root, LoadOptions(split_file=str(study)))


def test_the_plugin_option_takes_a_study_folder_and_still_refuses_a_missing_path(tmp_path):
    from fixtures.options import parse_splits
    for split in ("train", "val", "test"):
        (tmp_path / "study_mc" / split).mkdir(parents=True)
    assert parse_splits(f"mc={tmp_path / 'study_mc'}") == {"mc": (tmp_path / "study_mc").resolve()}
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train").mkdir()
    with pytest.raises(pytest.UsageError, match=r"half: the split file does not exist.*train/, val/, test/"):
        parse_splits(f"mc={tmp_path / 'half'}")
