"""The file and cache side of data/datasets/splits.py, word for word (issue 21, `make mutants`).

A user split file (JSON, relative to the working directory or else to the dataset root, its
"unlisted" key, its split names, its keys and patients), a folder in the study's split layout, the
split radbench computes and saves in its cache (reused, rewritten when an input changed, ignored
with a warning when damaged or when its positions no longer fit, the save failure), the item
fingerprint that names the saved file, and resolve_splits / report_missing_classes. Every error
and warning is compared as the whole text; every expected split is worked out by hand.

_items(): img0..img5, patients p0, p1, p2, p3, p3, p3 (img3, img4, img5 share p3). The 70/10/20
dealing of its 4 patients (test_splits.py): p0 train, p1 train, p2 test, p3 train; val is empty and
takes p3, train's last-dealt patient -> {"train": [0, 1], "val": [3, 4, 5], "test": [2]}.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from radbench_core.core.errors import DatasetError, StorageError
from radbench_core.data.datasets import splits as splits_mod
from radbench_core.data.datasets.base import Item, LoadOptions
from radbench_core.data.datasets.inputs import recording_reads
from radbench_core.data.datasets.splits import (_check_coverage, _positions, _read_split_json,
                                                _reuse_saved, _study_folder, _unlisted_rule,
                                                computed_splits_path, items_fingerprint,
                                                keys_by_group, load_or_create_splits,
                                                report_missing_classes, resolve_splits,
                                                user_split_path)

COMPUTED = {"train": [0, 1], "val": [3, 4, 5], "test": [2]}
KEYS_FIX = ("list item keys as `radbench prepare DATASET --write-splits FILE` writes them "
            "(a missing file on disk, or a key in another form)")
SHAPE_ERROR = ('expected a JSON object mapping each split name to a list of item keys, e.g. '
               '{"train": ["case_1"], "val": [...], "test": [...]}. Fix: rewrite the file in that shape.')
MISSING_FILE_FIX = ("Fix: pass the path of a JSON file mapping split -> item keys "
                    "(--radbench-splits DATASET=FILE).")
COVERAGE_FIX = ('Fix: list every item in the split file (or remove the new files), add "unlisted": '
                '"exclude" to the file to leave them out on purpose, or drop the split file to let '
                'radbench compute one.')
UNLISTED_FIX = ('Fix: write "unlisted": "exclude" to leave the items in no split out on purpose, '
                'or drop the key to have them refused.')
NAMES_FIX = "Fix: name the splits train, val and test (e.g. 'validation' -> 'val')."
EMPTY_FIX = ("Fix: check that the folder holds the whole dataset, or pass a split file listing "
             "items for train, val and test.")
MISSING_CLASS_FIX = "Fix: use more data or a split file that puts every class in val and test"


def _items() -> list[Item]:
    return [Item(key=f"img{i}", patient=f"p{min(i, 3)}", images=(f"img{i}.png",)) for i in range(6)]


def _make(items, calls=None):
    def make():
        if calls is not None:
            calls.append(1)
        return keys_by_group(items, splits_mod.patient_split([it.patient for it in items]))
    return make


def _unknown_key(split: str, key: str, n: int = 6, examples: str = "'img0', 'img1', 'img2'") -> str:
    return (f"split {split!r} lists the unknown item key {key!r} (not among the {n} items found on "
            f"disk, whose keys are e.g. {examples})")


def _warned(call):
    """Run ``call``; return its result and the text of every warning it gave (all UserWarning)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = call()
    assert all(w.category is UserWarning for w in seen)
    return out, [str(w.message) for w in seen]


def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _raised(call) -> str:
    with pytest.raises(DatasetError) as info:
        call()
    return str(info.value)


def _signature(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


# -- _read_split_json --------------------------------------------------------------------------------

def test_read_split_json_returns_the_lists_and_keeps_the_unlisted_value_as_it_is(tmp_path: Path):
    path = _write(tmp_path / "s.json", {"train": ["img1", "img0"], "val": [], "unlisted": "exclude"})
    assert _read_split_json(path) == {"train": ["img1", "img0"], "val": [], "unlisted": "exclude"}
    # "unlisted" is not a split: its value is neither shape-checked nor turned into a list
    path = _write(tmp_path / "n.json", {"train": ["img0"], "unlisted": 3})
    assert _read_split_json(path) == {"train": ["img0"], "unlisted": 3}


@pytest.mark.parametrize("content", [
    ["img0"],                                     # not an object
    {"train": "img0"},                            # a split that is not a list
    {"train": ["img0", 1]},                       # a key that is not a string
    {"train": ["img0"], "val": ["img1", None]},   # the second split is checked too
])
def test_read_split_json_refuses_other_shapes(tmp_path: Path, content):
    path = _write(tmp_path / "s.json", content)
    assert _raised(lambda: _read_split_json(path)) == f"{path}: {SHAPE_ERROR}"


def test_read_split_json_bad_json_and_unreadable_files(tmp_path: Path, monkeypatch):
    path = _write(tmp_path / "s.json", "{not json")
    assert _raised(lambda: _read_split_json(path)) == (
        f"{path}: the split file is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)). Fix: fix the file, or drop it to let radbench compute a split.")
    folder = tmp_path / "folder"
    folder.mkdir()                                                     # strerror: "Is a directory"
    assert _raised(lambda: _read_split_json(folder)) == (
        f"{folder}: cannot read the split file (Is a directory). Fix: check the path given as split file.")

    def gone(self, *args, **kwargs):
        raise OSError("disk gone")                                     # no strerror: the error itself
    monkeypatch.setattr(Path, "read_text", gone)
    assert _raised(lambda: _read_split_json(path)) == (
        f"{path}: cannot read the split file (disk gone). Fix: check the path given as split file.")


# -- _positions ----------------------------------------------------------------------------------------

def test_positions_are_sorted_within_each_split():
    items = _items()
    out = _positions("w", {"train": ["img5", "img0", "img2"], "val": [], "test": ["img1"]}, items)
    assert out == {"train": [0, 2, 5], "val": [], "test": [1]}
    # a patient's items may sit apart inside one split
    assert _positions("w", {"test": ["img4", "img3"]}, items) == {"test": [3, 4]}


def test_positions_refuse_unknown_keys_naming_three_keys_on_disk():
    items = _items()
    assert _raised(lambda: _positions("here", {"train": ["img0"], "val": ["zz"]}, items)) == (
        f"here: {_unknown_key('val', 'zz')}. Fix: {KEYS_FIX}.")
    two = items[:2]
    assert _raised(lambda: _positions(Path("/d/s.json"), {"test": ["img5"]}, two)) == (
        f"/d/s.json: {_unknown_key('test', 'img5', 2, repr('img0') + ', ' + repr('img1'))}. Fix: {KEYS_FIX}.")


def test_positions_refuse_an_item_in_two_splits_or_twice_in_one():
    items = _items()
    assert _raised(lambda: _positions("w", {"train": ["img1", "img0"], "val": [], "test": ["img0"]},
                                      items)) == (
        "w: item 'img0' is in both 'train' and 'test'. Fix: list every item in at most one split.")
    assert _raised(lambda: _positions("w", {"val": ["img2", "img2"]}, items)) == (
        "w: item 'img2' is in both 'val' and 'val'. Fix: list every item in at most one split.")


def test_positions_refuse_a_patient_in_two_splits_unless_shared_patients():
    items = _items()
    splits = {"train": ["img0", "img3"], "val": ["img1"], "test": ["img5", "img2"]}
    expected = "w: patient 'p3' is in both 'train' and 'test'. Fix: keep all items of one patient in one split."
    assert _raised(lambda: _positions("w", splits, items)) == expected
    assert _raised(lambda: _positions("w", splits, items, shared_patients=False)) == expected
    assert _positions("w", splits, items, shared_patients=True) == {"train": [0, 3], "val": [1], "test": [2, 5]}


# -- items_fingerprint / computed_splits_path -----------------------------------------------------------

def test_items_fingerprint_is_16_hex_of_the_version_and_every_field():
    items = [Item(key="a", patient="p", images=("a.png",), masks=("m.png",), label=1),
             Item(key="b", patient="q", images=("b1.png", "b2.png"))]
    fp = items_fingerprint(items)
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    # the recipe: sha256 of the JSON [version, [key, patient, images, masks, label], ...], 16 hex digits
    assert fp == "af219ac886f57e4e"
    assert items_fingerprint([]) == "46b1884167c4edd3"                     # sha256("[4]")[:16]
    variants = [Item(key="a2", patient="p", images=("a.png",), masks=("m.png",), label=1),
                Item(key="a", patient="p2", images=("a.png",), masks=("m.png",), label=1),
                Item(key="a", patient="p", images=("a2.png",), masks=("m.png",), label=1),
                Item(key="a", patient="p", images=("a.png",), masks=("m2.png",), label=1),
                Item(key="a", patient="p", images=("a.png",), masks=("m.png",), label=0),
                Item(key="a", patient="p", images=("a.png",), masks=("m.png",), label=(1.0, 0.0)),
                Item(key="a", patient="p", images=("a.png",), masks=("m.png",), label=1, n_slices=9)]
    fps = [items_fingerprint([v, items[1]]) for v in variants]
    assert len(set(fps[:6])) == 6 and fp not in fps[:6]                   # each file-list field counts
    assert fps[6] == fp                                                   # n_slices is not part of it
    assert items_fingerprint(items[::-1]) != fp                           # nor is the order ignored


def test_items_fingerprint_changes_with_the_algorithm_version_and_takes_any_label(monkeypatch):
    items = [Item(key="a", patient="p", images=("a.png",))]
    before = items_fingerprint(items)
    monkeypatch.setattr(splits_mod, "SPLIT_ALGORITHM_VERSION", splits_mod.SPLIT_ALGORITHM_VERSION + 1)
    assert items_fingerprint(items) != before
    monkeypatch.undo()
    # a label JSON cannot write (a numpy integer) is written as its text
    as_numpy = [Item(key="a", patient="p", images=("a.png",), label=np.int64(2))]
    assert items_fingerprint(as_numpy) == items_fingerprint(
        [Item(key="a", patient="p", images=("a.png",), label="2")])


def test_computed_splits_path_is_the_folder_name_and_fingerprint():
    items = _items()
    fp = items_fingerprint(items)
    assert computed_splits_path("/cache/splits", Path("/data/ward"), items) == Path(f"/cache/splits/ward-{fp}.json")
    assert computed_splits_path(Path("c"), "/x/amos22", items) == Path("c") / f"amos22-{fp}.json"


# -- _unlisted_rule / _check_coverage ------------------------------------------------------------------

def test_unlisted_rule_pops_the_key(tmp_path: Path):
    data = {"train": ["img0"], "unlisted": "exclude"}
    assert _unlisted_rule(tmp_path, data) == "exclude" and data == {"train": ["img0"]}
    data = {"train": ["img0"], "unlisted": "refuse"}
    assert _unlisted_rule(tmp_path, data) == "refuse" and data == {"train": ["img0"]}
    data = {"train": ["img0"]}
    assert _unlisted_rule(tmp_path, data) == "refuse" and data == {"train": ["img0"]}


@pytest.mark.parametrize("value, shown", [("drop", "'drop'"), ("Exclude", "'Exclude'"), (3, "3"), (None, "None")])
def test_unlisted_rule_refuses_other_values(tmp_path: Path, value, shown):
    path = tmp_path / "s.json"
    assert _raised(lambda: _unlisted_rule(path, {"unlisted": value})) == (
        f"{path}: \"unlisted\": {shown} is not one of ['refuse', 'exclude']. {UNLISTED_FIX}")


def test_check_coverage_refuses_by_default_and_names_three_unplaced_items():
    items = _items()
    splits = {"train": ["img0"], "val": [], "test": ["img5"]}
    expected = ("w.json: the split file does not cover the dataset: 4 of 6 items on disk are in no split "
                "(e.g. 'img1', 'img2', 'img3'); items were added since it was written, or the file lists "
                f"a subset. {COVERAGE_FIX}")
    assert _raised(lambda: _check_coverage("w.json", splits, items)) == expected
    assert _raised(lambda: _check_coverage("w.json", splits, items, exclude=False)) == expected
    _, said = _warned(lambda: _check_coverage("w.json", splits, items, exclude=True))
    assert said == ["w.json: 4 of 6 items on disk are in no split and are left out, as the file says "
                    "(\"unlisted\": \"exclude\") (e.g. 'img1', 'img2', 'img3')"]
    every = {"train": ["img0", "img1", "img2"], "test": ["img3", "img4", "img5"]}
    for exclude in (False, True):                                     # all placed: silent
        assert _warned(lambda: _check_coverage("w.json", every, items, exclude=exclude)) == (None, [])


# -- user split files through load_or_create_splits ------------------------------------------------------

def test_a_user_split_file_relative_to_the_working_directory_wins_over_the_dataset_root(tmp_path: Path,
                                                                                      monkeypatch):
    items, root, cwd = _items(), tmp_path / "data", tmp_path / "cwd"
    mine = {"train": ["img0", "img1"], "val": ["img2"], "test": ["img3", "img4", "img5"]}
    theirs = {"train": ["img3", "img4", "img5"], "val": ["img0"], "test": ["img2", "img1"]}
    _write(cwd / "s.json", mine)
    _write(root / "s.json", theirs)
    _write(root / "only_root.json", theirs)
    monkeypatch.chdir(cwd)
    assert user_split_path(root, "s.json") == Path("s.json")
    assert user_split_path(root, "only_root.json") == root / "only_root.json"
    assert user_split_path(root, str(cwd / "s.json")) == cwd / "s.json"
    by_cwd = {"train": [0, 1], "val": [2], "test": [3, 4, 5]}
    by_root = {"train": [3, 4, 5], "val": [0], "test": [1, 2]}
    cache = tmp_path / "cache"
    assert load_or_create_splits(root, items, _make(items), "s.json", cache) == by_cwd
    assert load_or_create_splits(root, items, _make(items), "only_root.json", cache) == by_root
    assert load_or_create_splits(root, items, _make(items), str(root / "s.json"), cache) == by_root
    assert not cache.exists()                                         # a user split is never copied
    # an error names the file as found: relative to the working directory, or under the root
    _write(cwd / "s.json", {"train": ["zz"]})
    assert _raised(lambda: load_or_create_splits(root, items, _make(items), "s.json")).startswith(
        f"s.json: {_unknown_key('train', 'zz')}")
    _write(root / "only_root.json", {"train": ["zz"]})
    assert _raised(lambda: load_or_create_splits(root, items, _make(items), "only_root.json")).startswith(
        f"{root / 'only_root.json'}: {_unknown_key('train', 'zz')}")


def test_a_missing_user_split_file_or_a_folder_is_refused(tmp_path: Path, monkeypatch):
    items, root = _items(), tmp_path / "data"
    (root / "notes").mkdir(parents=True)                             # a folder, not in the study layout
    monkeypatch.chdir(tmp_path)
    assert _raised(lambda: load_or_create_splits(root, items, _make(items), "missing.json")) == (
        f"missing.json: the split file given does not exist. {MISSING_FILE_FIX}")
    assert _raised(lambda: load_or_create_splits(root, items, _make(items), "notes")) == (
        f"{root / 'notes'}: the split file given does not exist. {MISSING_FILE_FIX}")
    gone = tmp_path / "nowhere" / "s.json"
    assert _raised(lambda: user_split_path(root, gone)) == (
        f"{gone}: the split file given does not exist. {MISSING_FILE_FIX}")


def test_a_user_split_file_with_unknown_split_names_lists_them_sorted(tmp_path: Path):
    items = _items()
    path = _write(tmp_path / "s.json", {"train": ["img0", "img1"], "validation": ["img2"], "dev": [],
                                        "test": ["img3", "img4", "img5"], "unlisted": "refuse"})
    assert _raised(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path))) == (
        f"{path}: split name(s) ['dev', 'validation'] are not among ['train', 'val', 'test']. {NAMES_FIX}")
    # "unlisted" is no split name; only two of the three splits may be given
    _write(path, {"train": ["img0", "img1", "img2"], "test": ["img3", "img4", "img5"], "unlisted": "refuse"})
    assert _warned(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path))) == (
        {"train": [0, 1, 2], "test": [3, 4, 5]}, [])


@pytest.mark.parametrize("content, problem", [
    ({"train": ["img0", "img1", "img2"], "val": ["img9"], "test": ["img3", "img4", "img5"]},
     f"{_unknown_key('val', 'img9')}. Fix: {KEYS_FIX}."),
    ({"train": ["img0", "img1", "img2"], "test": ["img3", "img4", "img5", "img2"]},
     "item 'img2' is in both 'train' and 'test'. Fix: list every item in at most one split."),
    ({"train": ["img0", "img1", "img2", "img3"], "test": ["img4", "img5"]},
     "patient 'p3' is in both 'train' and 'test'. Fix: keep all items of one patient in one split."),
    ({"train": ["img0"], "test": ["img5"], "unlisted": "drop"},
     f"\"unlisted\": 'drop' is not one of ['refuse', 'exclude']. {UNLISTED_FIX}"),
    ({"train": ["img0"], "test": 5}, SHAPE_ERROR),
])
def test_bad_user_split_files_are_refused_naming_the_file(tmp_path: Path, content, problem):
    items = _items()
    path = _write(tmp_path / "s.json", content)
    assert _raised(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path))) == f"{path}: {problem}"


def test_a_user_split_file_must_cover_the_items_unless_it_says_exclude(tmp_path: Path):
    items = _items()
    partial = {"train": ["img0"], "val": [], "test": ["img5"]}
    refused = (f"the split file does not cover the dataset: 4 of 6 items on disk are in no split (e.g. "
               "'img1', 'img2', 'img3'); items were added since it was written, or the file lists a "
               f"subset. {COVERAGE_FIX}")
    for extra in ({}, {"unlisted": "refuse"}):
        path = _write(tmp_path / "s.json", {**partial, **extra})
        assert _raised(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path))) == \
            f"{path}: {refused}"
    path = _write(tmp_path / "s.json", {**partial, "unlisted": "exclude"})
    out, said = _warned(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path),
                                                      tmp_path / "cache"))
    assert out == {"train": [0], "val": [], "test": [5]}
    assert said == [f"{path}: 4 of 6 items on disk are in no split and are left out, as the file says "
                    "(\"unlisted\": \"exclude\") (e.g. 'img1', 'img2', 'img3')"]
    assert not (tmp_path / "cache").exists()
    every = {"train": ["img0", "img1", "img2"], "val": [], "test": ["img3", "img4", "img5"]}
    path = _write(tmp_path / "s.json", {**every, "unlisted": "exclude"})
    assert _warned(lambda: load_or_create_splits(tmp_path, items, _make(items), str(path))) == (
        {"train": [0, 1, 2], "val": [], "test": [3, 4, 5]}, [])


# -- a folder in the study's split layout ----------------------------------------------------------------

def _study(folder: Path, membership: dict[str, list[int]]) -> Path:
    for split in ("train", "val", "test"):
        (folder / split).mkdir(parents=True)
        for i in membership.get(split, []):
            (folder / split / f"img{i}.png").write_bytes(b"")
    return folder


def test_a_study_split_folder_relative_to_the_working_directory_or_the_root(tmp_path: Path, monkeypatch):
    items, root, cwd = _items(), tmp_path / "data", tmp_path / "cwd"
    _study(cwd / "study", {"train": [0, 1], "val": [2], "test": [3, 4]})          # img5 in none
    _study(root / "study", {"train": [1, 2], "val": [0], "test": [3, 4, 5]})
    _study(root / "only_root", {"train": [0], "val": [2], "test": [5]})
    monkeypatch.chdir(cwd)
    assert _study_folder(root, "study") == Path("study")
    assert _study_folder(root, "only_root") == root / "only_root"
    assert _study_folder(root, str(root / "study")) == root / "study"
    assert _study_folder(root, "nothing") is None
    out, said = _warned(lambda: load_or_create_splits(root, items, _make(items), "study", tmp_path / "c"))
    assert out == {"train": [0, 1], "val": [2], "test": [3, 4]}
    assert said == ["study: 1 of 6 items on disk are in no split and are left out, as the study's split "
                    "folders list only the others (e.g. 'img5')"]
    out, said = _warned(lambda: load_or_create_splits(root, items, _make(items), "only_root"))
    assert out == {"train": [0], "val": [2], "test": [5]}
    assert said == [f"{root / 'only_root'}: 3 of 6 items on disk are in no split and are left out, as the "
                    "study's split folders list only the others (e.g. 'img1', 'img3', 'img4')"]
    assert _warned(lambda: load_or_create_splits(root, items, _make(items), str(root / "study"))) == (
        {"train": [1, 2], "val": [0], "test": [3, 4, 5]}, [])
    assert not (tmp_path / "c").exists()


def test_a_study_split_folder_refuses_a_patient_in_two_folders_and_names_the_title(tmp_path: Path):
    items = _items()
    folder = _study(tmp_path / "study", {"train": [0, 1, 3], "val": [2], "test": [4, 5]})
    assert _raised(lambda: load_or_create_splits(tmp_path, items, _make(items), str(folder))) == (
        f"{folder}: patient 'p3' is in both 'train' and 'test'. Fix: keep all items of one patient in one split.")
    stray = _study(tmp_path / "ward" / "stray", {"train": [0], "val": [1], "test": [2]})
    (stray / "val" / "other.png").write_bytes(b"")
    named = _raised(lambda: load_or_create_splits(tmp_path / "ward", items, _make(items), "stray", title="Ward X"))
    assert named.startswith(f"{stray / 'val' / 'other.png'}: matches no item of the Ward X release radbench reads")
    untitled = _raised(lambda: load_or_create_splits(tmp_path / "ward", items, _make(items), "stray"))
    assert untitled.startswith(f"{stray / 'val' / 'other.png'}: matches no item of the ward release radbench reads")


# -- the computed split: where, saved record, reuse ------------------------------------------------------

def test_a_computed_split_names_the_files_it_was_made_from(tmp_path: Path):
    items, root = _items(), tmp_path / "data"
    _write(root / "b.txt", "b")
    _write(root / "a.txt", "a")
    _write(root / "labels.csv", "x")
    bad = {"train": ["img0", "nope"], "val": [], "test": []}

    def reading(*names):
        def make():
            for name in names:
                (root / name).read_text()
            return bad
        return make

    tail = f"{_unknown_key('train', 'nope')}. Fix: {KEYS_FIX}."
    assert _raised(lambda: load_or_create_splits(root, items, reading())) == f"{root} (computed split): {tail}"
    assert _raised(lambda: load_or_create_splits(root, items, reading("b.txt", "a.txt"))) == (
        f"{root / 'a.txt'} and {root / 'b.txt'}: {tail}")
    with recording_reads(root):                      # the index read labels.csv before the split
        (root / "labels.csv").read_text()
        assert _raised(lambda: load_or_create_splits(root, items, reading())) == f"{root / 'labels.csv'}: {tail}"
        # files read inside make() are the ones named
        assert _raised(lambda: load_or_create_splits(root, items, reading("a.txt"))) == f"{root / 'a.txt'}: {tail}"


def test_a_computed_split_refuses_a_patient_in_two_splits_unless_shared(tmp_path: Path):
    items = _items()
    shared = {"train": ["img0", "img1", "img3"], "val": ["img2"], "test": ["img4", "img5"]}
    assert _raised(lambda: load_or_create_splits(tmp_path, items, lambda: shared)) == (
        f"{tmp_path} (computed split): patient 'p3' is in both 'train' and 'test'. "
        "Fix: keep all items of one patient in one split.")
    assert load_or_create_splits(tmp_path, items, lambda: shared, shared_patients=True) == (
        {"train": [0, 1, 3], "val": [2], "test": [4, 5]})


def test_the_saved_record_holds_the_splits_and_every_input_read(tmp_path: Path):
    items, root, cache = _items(), tmp_path / "data", tmp_path / "cache" / "splits"
    _write(root / "a.txt", "aa")
    _write(root / "labels.csv", "xyz")

    def make():
        (root / "a.txt").read_text()
        return _make(items)()

    with recording_reads(root):
        (root / "labels.csv").read_text()
        out = load_or_create_splits(root, items, make, None, cache)
    assert out == COMPUTED
    saved = cache / f"data-{items_fingerprint(items)}.json"
    assert json.loads(saved.read_text()) == {
        "inputs": {"a.txt": _signature(root / "a.txt"), "labels.csv": _signature(root / "labels.csv")},
        "splits": {"train": ["img0", "img1"], "val": ["img3", "img4", "img5"], "test": ["img2"]}}
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "labels.csv"]     # nothing written there


def test_a_saved_split_inside_the_root_is_not_its_own_input(tmp_path: Path):
    items, root = _items(), tmp_path / "data"
    _write(root / "a.txt", "aa")
    cache = root / ".cache"
    saved = _write(computed_splits_path(cache, root, items), "{not json")

    def make():
        (root / "a.txt").read_text()
        return _make(items)()

    with recording_reads(root):                                    # the damaged file is read in here
        out, said = _warned(lambda: load_or_create_splits(root, items, make, None, cache))
    assert out == COMPUTED and len(said) == 1
    assert json.loads(saved.read_text())["inputs"] == {"a.txt": _signature(root / "a.txt")}


def test_a_saved_split_is_reused_without_calling_make(tmp_path: Path):
    items, root, cache = _items(), tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    # a saved record (another valid assignment than make's): its positions are returned, sorted
    _write(computed_splits_path(cache, root, items),
           {"inputs": {}, "splits": {"train": ["img5", "img3", "img4"], "val": ["img1"], "test": ["img2", "img0"]}})
    calls = []
    out, said = _warned(lambda: load_or_create_splits(root, items, _make(items, calls), None, cache))
    assert (out, said, calls) == ({"train": [3, 4, 5], "val": [1], "test": [0, 2]}, [], [])
    assert _reuse_saved(root, computed_splits_path(cache, root, items), items) == out


def test_a_saved_split_is_rewritten_when_its_inputs_changed_naming_three(tmp_path: Path):
    items, root, cache = _items(), tmp_path / "data", tmp_path / "cache"
    names = ["a.txt", "b.txt", "c.txt", "d.txt"]
    for name in names:
        _write(root / name, "1")
    calls = []

    def make():
        calls.append(1)
        for name in names:
            (root / name).read_text()
        return _make(items)()

    saved = computed_splits_path(cache, root, items)
    assert _warned(lambda: load_or_create_splits(root, items, make, None, cache)) == (COMPUTED, [])
    assert _warned(lambda: load_or_create_splits(root, items, make, None, cache)) == (COMPUTED, [])
    assert len(calls) == 1
    for name in names[:3]:                                          # three changed: no ", ..."
        _write(root / name, "22")
    out, said = _warned(lambda: load_or_create_splits(root, items, make, None, cache))
    assert (out, len(calls)) == (COMPUTED, 2)
    assert said == [f"{saved}: the saved split was made from files that changed since (a.txt (size 1 -> 2), "
                    "b.txt (size 1 -> 2), c.txt (size 1 -> 2)); recomputing it"]
    assert json.loads(saved.read_text())["inputs"] == {n: _signature(root / n) for n in names}
    assert _warned(lambda: load_or_create_splits(root, items, make, None, cache)) == (COMPUTED, [])
    assert len(calls) == 2                                           # the rewritten record is reused
    for name in names:                                               # four changed: three and ", ..."
        _write(root / name, "333")
    out, said = _warned(lambda: load_or_create_splits(root, items, make, None, cache))
    assert (out, len(calls)) == (COMPUTED, 3)
    assert said == [f"{saved}: the saved split was made from files that changed since (a.txt (size 2 -> 3), "
                    "b.txt (size 2 -> 3), c.txt (size 2 -> 3), ...); recomputing it"]


@pytest.mark.parametrize("content, why", [
    ("{not json", "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ({"splits": {}}, "KeyError: 'inputs'"),
    ({"inputs": {}}, "KeyError: 'splits'"),
    ({"inputs": [], "splits": {}}, "TypeError: not a split record"),
    ({"inputs": {}, "splits": ["img0"]}, "TypeError: not a split record"),
    ([], "TypeError: list indices must be integers or slices, not str"),
    ({"inputs": {}, "splits": {"train": ["img0", "zz"]}},
     f"{_unknown_key('train', 'zz')}"),
    ({"inputs": {}, "splits": {"train": ["img0", "img1", "img3"], "test": ["img4"]}},
     "patient 'p3' is in both 'train' and 'test'"),
])
def test_a_damaged_saved_split_is_recomputed_with_one_warning(tmp_path: Path, content, why):
    items, root, cache = _items(), tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    saved = _write(computed_splits_path(cache, root, items), content)
    calls = []
    out, said = _warned(lambda: load_or_create_splits(root, items, _make(items, calls), None, cache))
    assert (out, len(calls)) == (COMPUTED, 1)
    assert said == [f"{saved}: saved split is unusable ({why}); recomputing it"]
    assert json.loads(saved.read_text()) == {"inputs": {}, "splits": keys_by_group(items, COMPUTED)}


def test_reuse_saved_of_an_unreadable_file_warns_and_gives_none(tmp_path: Path):
    folder = tmp_path / "saved.json"
    folder.mkdir()
    out, said = _warned(lambda: _reuse_saved(tmp_path, folder, _items()))
    assert out is None
    assert said == [f"{folder}: saved split is unusable (IsADirectoryError: [Errno 21] Is a directory: "
                    f"'{folder}'); recomputing it"]


@pytest.mark.parametrize("failure", [
    StorageError("/c/s.json", "cannot write (Read-only file system)", "choose another folder"),
    OSError(28, "No space left on device"),
])
def test_a_split_that_cannot_be_saved_is_used_from_memory_with_one_warning(tmp_path: Path, monkeypatch, failure):
    def refuse(path, obj):
        raise failure
    monkeypatch.setattr(splits_mod, "atomic_write_json", refuse)
    items = _items()
    out, said = _warned(lambda: load_or_create_splits(tmp_path, items, _make(items), None, tmp_path / "s"))
    assert out == COMPUTED
    assert said == [f"{computed_splits_path(tmp_path / 's', tmp_path, items)}: could not save the splits "
                    f"({failure}); using them from memory only, so they are recomputed (identically) on each run"]
    assert str(failure) in ("/c/s.json: cannot write (Read-only file system). Fix: choose another folder.",
                            "[Errno 28] No space left on device")


def test_without_a_splits_folder_nothing_is_saved(tmp_path: Path):
    items = _items()
    calls = []
    for _ in range(2):
        assert _warned(lambda: load_or_create_splits(tmp_path, items, _make(items, calls))) == (COMPUTED, [])
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_keys_by_group_turns_positions_back_into_keys():
    items = _items()
    assert keys_by_group(items, {"train": [5, 0], "val": [], "test": [2]}) == (
        {"train": ["img5", "img0"], "val": [], "test": ["img2"]})


# -- report_missing_classes / resolve_splits ------------------------------------------------------------

def _labelled() -> list[Item]:
    # labels 0 0 1 2 0 1 for patients q0..q5
    return [Item(key=f"x{i}", patient=f"q{i}", images=(f"x{i}.png",), label=lab)
            for i, lab in enumerate([0, 0, 1, 2, 0, 1])]


def _missing(root, split, title, names) -> str:
    return (f"{root}: the {split!r} split of {title} has no example of class(es) {names}; metrics over "
            f"those classes are undefined there. {MISSING_CLASS_FIX}")


def test_report_missing_classes_warns_for_val_and_test_only():
    items = _labelled()
    # train lacks 2, val (x4) lacks 1 and 2, test (x3, x5) lacks 0
    splits = {"train": [0, 1, 2], "val": [4], "test": [3, 5]}
    _, said = _warned(lambda: report_missing_classes(Path("/d"), items, splits, "Ward", ("neg", "pos")))
    # class 2 has no name (only two given): its number is shown
    assert said == [_missing("/d", "val", "Ward", ["pos", "2"]), _missing("/d", "test", "Ward", ["neg"])]
    _, said = _warned(lambda: report_missing_classes("/d", items, splits, "Ward"))
    assert said == [_missing("/d", "val", "Ward", ["1", "2"]), _missing("/d", "test", "Ward", ["0"])]
    every = {"train": [0, 2], "val": [1, 3, 5], "test": [4, 5, 3, 2]}
    assert _warned(lambda: report_missing_classes("/d", items, every, "Ward", ("a", "b", "c"))) == (None, [])


def test_resolve_splits_saves_caps_and_reports(tmp_path: Path):
    items, root, cache = _items(), tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    out = resolve_splits(root, items, _make(items), LoadOptions(splits_dir=str(cache)), "Ward")
    assert out == COMPUTED
    assert json.loads(computed_splits_path(cache, root, items).read_text())["splits"] == (
        keys_by_group(items, COMPUTED))
    # max_items 1: the middle item of each split (train [0, 1] -> 1, val [3, 4, 5] -> 4)
    assert resolve_splits(root, items, _make(items), LoadOptions(max_items=1), "Ward") == (
        {"train": [1], "val": [4], "test": [2]})
    # options without a splits_dir attribute: memory only
    bare = SimpleNamespace(split_file=None, max_items=None)
    assert resolve_splits(root, items, _make(items), bare, "Ward") == COMPUTED
    path = _write(tmp_path / "s.json", {"train": ["img3", "img4", "img5"], "val": ["img0"], "test": ["img1", "img2"]})
    assert resolve_splits(root, items, _make(items), LoadOptions(split_file=str(path)), "Ward") == (
        {"train": [3, 4, 5], "val": [0], "test": [1, 2]})


def test_resolve_splits_passes_the_title_and_shared_patients(tmp_path: Path):
    items, root = _items(), tmp_path / "data"
    folder = _study(root / "study", {"train": [0], "val": [1], "test": [2]})
    (folder / "test" / "other.png").write_bytes(b"")
    named = _raised(lambda: resolve_splits(root, items, _make(items), LoadOptions(split_file="study"), "Ward X"))
    assert named.startswith(f"{folder / 'test' / 'other.png'}: matches no item of the Ward X release")
    shared = {"train": ["img0", "img1", "img3"], "val": ["img2"], "test": ["img4", "img5"]}
    assert _raised(lambda: resolve_splits(root, items, lambda: shared, LoadOptions(), "Ward")) == (
        f"{root} (computed split): patient 'p3' is in both 'train' and 'test'. "
        "Fix: keep all items of one patient in one split.")
    assert resolve_splits(root, items, lambda: shared, LoadOptions(), "Ward", shared_patients=True) == (
        {"train": [0, 1, 3], "val": [2], "test": [4, 5]})


@pytest.mark.parametrize("splits, empty", [
    ({"train": [], "val": ["img0"], "test": ["img1"]}, "train"),
    ({"train": ["img0"], "test": ["img1"]}, "val"),
    ({"train": ["img0"], "val": ["img1"], "test": []}, "test"),
    ({"train": ["img0"], "val": [], "test": []}, "val"),            # the first empty one is named
])
def test_resolve_splits_refuses_an_empty_split(tmp_path: Path, splits, empty):
    items = _items()[:3]
    assert _raised(lambda: resolve_splits(tmp_path, items, lambda: splits, LoadOptions(), "Ward")) == (
        f"{tmp_path}: the {empty!r} split of Ward is empty. {EMPTY_FIX}")


def test_resolve_splits_reports_a_val_split_missing_a_class(tmp_path: Path):
    items = [Item(key=f"x{i}", patient=f"q{i}", images=(f"x{i}.png",), label=lab)
             for i, lab in enumerate([0, 1, 2, 0, 1, 0, 1, 2])]
    splits = {"train": ["x0", "x1", "x2"], "val": ["x4", "x3"], "test": ["x5", "x6", "x7"]}
    out, said = _warned(lambda: resolve_splits(tmp_path, items, lambda: splits, LoadOptions(), "Ward",
                                               ("neg", "pos", "other")))
    assert out == {"train": [0, 1, 2], "val": [3, 4], "test": [5, 6, 7]}
    assert said == [_missing(tmp_path, "val", "Ward", ["other"])]
    _, said = _warned(lambda: resolve_splits(tmp_path, items, lambda: splits, LoadOptions(), "Ward"))
    assert said == [_missing(tmp_path, "val", "Ward", ["2"])]
