"""patient_split properties (hypothesis) and the persisted / published split files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.data.datasets import splits as splits_mod
from radbench_core.data.datasets.base import Item
from radbench_core.data.datasets.splits import (SPLITS_FILENAME, cap_splits, computed_splits_path,
                                           keys_by_group, load_or_create_splits, missing_classes,
                                           natural_key, patient_split, report_missing_classes,
                                           restrict_items, subset_splits)
from radbench_core.core.errors import ConfigError, DatasetError, StorageError

patients_lists = st.lists(st.sampled_from([f"p{i}" for i in range(40)]), min_size=1, max_size=80)
fraction_sets = st.sampled_from([(0.7, 0.1, 0.2), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25),
                                 (1 / 3, 1 / 3, 1 / 3), (0.8, 0.2), (0.9, 0.1)])


def _groups(fractions):
    return ("train", "val", "test") if len(fractions) == 3 else ("train", "val")


@settings(max_examples=30, deadline=None)
@given(patients_lists, fraction_sets)
def test_patient_split_properties(patients, fractions):
    groups = _groups(fractions)
    out = patient_split(patients, fractions, groups)
    assert set(out) == set(groups)
    positions = sorted(i for idx in out.values() for i in idx)
    assert positions == list(range(len(patients)))                     # covers every item once
    owner = {}
    for g, idx in out.items():
        for i in idx:
            assert owner.setdefault(patients[i], g) == g                # no patient in two groups
    n = len(set(patients))
    for g, f in zip(groups, fractions):
        n_g = len({patients[i] for i in out[g]})
        # within one patient of target; below 10 patients a group the dealing left empty takes one
        # patient from the largest (test_small_folders_get_every_split_and_larger_ones_keep_their_split)
        assert abs(n_g - f * n) < (1 if n >= 10 else 2)
    assert out == patient_split(list(patients), fractions, groups)     # deterministic


@settings(max_examples=30, deadline=None)
@given(patients_lists, st.randoms(use_true_random=False))
def test_patient_split_ignores_item_order(patients, rnd):
    shuffled = list(range(len(patients)))
    rnd.shuffle(shuffled)
    a = patient_split(patients)
    b = patient_split([patients[i] for i in shuffled])
    group_a = {patients[i]: g for g, idx in a.items() for i in idx}
    group_b = {patients[shuffled[i]]: g for g, idx in b.items() for i in idx}
    assert group_a == group_b


def test_patient_split_70_10_20_follows_a_10_slot_pattern():
    patients = [f"case_{i}" for i in range(1, 21)]                    # natural order: case_2 < case_10
    out = patient_split(patients)
    assert [len(out[g]) for g in ("train", "val", "test")] == [14, 2, 4]
    group = [next(g for g, idx in out.items() if i in idx) for i in range(20)]
    assert group[:10] == group[10:]                                   # period 10
    # hand-computed: slot j goes to the group lagging (j + 1) * fraction the most, ties to the earlier
    assert group[:10] == ["train", "train", "test", "train", "train", "val",
                          "train", "train", "test", "train"]


def test_natural_key_orders_numbers_numerically():
    assert sorted(["amos_10", "amos_2", "amos_1"], key=natural_key) == ["amos_1", "amos_2", "amos_10"]


def test_patient_split_bad_fractions():
    with pytest.raises(ConfigError, match=r"sum to 1.*Fix: use fractions"):
        patient_split(["a", "b"], (0.5, 0.4, 0.4))
    with pytest.raises(ConfigError, match="2 fractions for 3 groups"):
        patient_split(["a", "b"], (0.5, 0.5))


def _items():
    # two items for patient "p3": grouping is by patient, not by item
    return [Item(key=f"img{i}", patient=f"p{min(i, 3)}", images=(f"img{i}.png",)) for i in range(6)]


def _make(items):
    return lambda: keys_by_group(items, patient_split([it.patient for it in items]))


def test_creates_then_reuses_the_saved_split_in_the_cache_never_the_dataset(tmp_path: Path):
    items = _items()
    calls = []
    data, cache = tmp_path / "data", tmp_path / "cache" / "splits"
    data.mkdir()

    def make():
        calls.append(1)
        return _make(items)()

    first = load_or_create_splits(data, items, make, splits_dir=cache)
    assert list(data.iterdir()) == []                                  # the dataset folder is untouched
    saved_path = computed_splits_path(cache, data, items)
    assert saved_path.parent == cache and saved_path.name.startswith("data-")
    assert json.loads(saved_path.read_text())["splits"] == keys_by_group(items, first)
    assert first == {"train": [0, 1], "val": [3, 4, 5], "test": [2]}   # 4 patients: T T S T, last T -> empty val
    # a second call reads the file instead of calling make()
    assert load_or_create_splits(data, items, make, splits_dir=cache) == first
    assert len(calls) == 1
    # a changed file list (an item added) gets a new split file: the stale one is never used
    more = items + [Item(key="img9", patient="p9", images=("img9.png",))]
    assert computed_splits_path(cache, data, more) != saved_path
    grown = load_or_create_splits(data, more, _make(more), splits_dir=cache)
    assert sorted(i for v in grown.values() for i in v) == list(range(7))
    # without a splits folder nothing is written anywhere, and the split is the same
    assert load_or_create_splits(data, items, _make(items)) == first
    assert list(data.iterdir()) == []


def test_a_damaged_cached_split_is_recomputed_with_one_warning(tmp_path: Path):
    items = _items()
    saved = computed_splits_path(tmp_path, tmp_path / "data", items)
    saved.write_text("{not json")
    with pytest.warns(UserWarning, match="saved split is unusable .*recomputing it"):
        out = load_or_create_splits(tmp_path / "data", items, _make(items), splits_dir=tmp_path)
    assert out == {"train": [0, 1], "val": [3, 4, 5], "test": [2]}
    assert json.loads(saved.read_text())["splits"] == keys_by_group(items, out)


def test_a_legacy_split_file_in_the_dataset_folder_is_ignored(tmp_path: Path):
    items = _items()
    (tmp_path / SPLITS_FILENAME).write_text("{not json")
    out = load_or_create_splits(tmp_path, items, _make(items))
    assert out == {"train": [0, 1], "val": [3, 4, 5], "test": [2]}


def test_read_only_folder_warns_and_keeps_split_in_memory(tmp_path: Path, monkeypatch):
    def refuse(path, obj):
        raise StorageError(path, "cannot write (Read-only file system)", "choose another folder")

    monkeypatch.setattr(splits_mod, "atomic_write_json", refuse)
    items = _items()
    with pytest.warns(UserWarning, match="could not save the splits"):
        out = load_or_create_splits(tmp_path, items, _make(items), splits_dir=tmp_path / "s")
    assert sorted(i for v in out.values() for i in v) == list(range(6))
    assert not (tmp_path / "s").exists()


def test_published_split_file(tmp_path: Path):
    items = _items()
    published = tmp_path / "official.json"
    published.write_text(json.dumps({"train": ["img2", "img0"], "val": ["img1"],
                                     "test": ["img5", "img3", "img4"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load_or_create_splits(tmp_path / "data", items, _make(items), split_file=str(published),
                                    splits_dir=tmp_path / "cache")
    assert out == {"train": [0, 2], "val": [1], "test": [3, 4, 5]}
    assert not (tmp_path / "cache").exists()                         # a user split is not copied
    # relative to the data root also works
    out2 = load_or_create_splits(tmp_path, items, _make(items), split_file="official.json")
    assert out2 == out


def test_a_split_file_that_no_longer_covers_the_items_is_refused(tmp_path: Path):
    items = _items()
    published = tmp_path / "official.json"
    published.write_text(json.dumps({"train": ["img2", "img0", "img1"], "val": [], "test": ["img5"]}))
    with pytest.raises(DatasetError) as err:                          # img3, img4 added since
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(published))
    assert str(err.value).startswith(f"{published}: the split file does not cover the dataset: "
                                     "2 of 6 items on disk are in no split (e.g. 'img3', 'img4')")
    gone = tmp_path / "gone.json"                                     # an item removed since
    gone.write_text(json.dumps({"train": [it.key for it in items] + ["img7"]}))
    with pytest.raises(DatasetError, match="unknown item key 'img7'.*keys are e.g. 'img0'"):
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(gone))


@pytest.mark.parametrize("content, message", [
    ({"train": ["img0", "nope"]}, "split 'train' lists the unknown item key 'nope'"),
    ({"train": ["img0"], "test": ["img0"]}, "item 'img0' is in both 'train' and 'test'"),
    ({"train": ["img3"], "test": ["img4"]}, "patient 'p3' is in both 'train' and 'test'"),
    (["img0"], "expected a JSON object mapping each split name"),
])
def test_bad_split_files_name_the_file(tmp_path: Path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    items = _items()
    with pytest.raises(DatasetError) as err:
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(path))
    assert str(err.value).startswith(f"{path}:")
    assert message in str(err.value) and "Fix:" in str(err.value)


def test_bad_and_missing_user_split_file(tmp_path: Path):
    items = _items()
    (tmp_path / "mine.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"mine.json: the split file is not valid JSON"):
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(tmp_path / "mine.json"))
    with pytest.raises(DatasetError, match=r"missing.json: the split file given does not exist"):
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(tmp_path / "missing.json"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=40))
def test_stratified_split_gives_each_class_its_share(spec):
    """Property: each class's patients are spread over train/val/test within one of their share."""
    patients, labels = [], []
    for p, (label, n_items) in enumerate(spec):
        patients += [f"p{p}"] * n_items
        labels += [label] * n_items
    out = patient_split(patients, strata=labels)
    owner = {}
    for group, idx in out.items():
        for i in idx:
            assert owner.setdefault(patients[i], group) == group       # patient-grouped
    assert sorted(i for v in out.values() for i in v) == list(range(len(patients)))
    for label in set(labels):
        members = {patients[i] for i in range(len(patients)) if labels[i] == label}
        for group, frac in zip(("train", "val", "test"), (0.7, 0.1, 0.2)):
            got = len({patients[i] for i in out[group]} & members)
            assert abs(got - frac * len(members)) < 2, (label, group, got, len(members))


def test_stratified_split_hand_computed():
    # 10 patients of class 0 then 10 of class 1 (interleaved ids): unstratified dealing puts class 1
    # in val 0 times here; stratified gives each class exactly 7 / 1 / 2.
    patients = [f"p{i}" for i in range(20)]
    labels = [i % 2 for i in range(20)]
    out = patient_split(patients, strata=labels)
    for label in (0, 1):
        counts = [sum(1 for i in out[g] if labels[i] == label) for g in ("train", "val", "test")]
        assert counts == [7, 1, 2]
    plain = patient_split(patients)
    assert [sum(1 for i in plain["val"] if labels[i] == c) for c in (0, 1)] == [0, 2]


def test_a_val_or_test_split_missing_a_class_is_reported_at_indexing():
    items = [Item(key=f"i{k}", patient=f"p{k}", images=(f"i{k}.png",), label=int(k == 3))
             for k in range(6)]
    splits = {"train": [0, 1, 2], "val": [4], "test": [3, 5]}
    assert missing_classes(items, splits) == {"train": [1], "val": [1]}
    with pytest.warns(UserWarning, match=r"the 'val' split of X has no example of class\(es\) \['covid'\]"):
        report_missing_classes(Path("/d"), items, splits, "X", ("negative", "covid"))
    multi = [Item(key=f"m{k}", patient=f"p{k}", images=("a",), label=lab)
             for k, lab in enumerate([(1.0, 0.0), (0.0, 1.0), (1.0, float("nan"))])]
    assert missing_classes(multi, {"train": [0, 1], "test": [2]}) == {"test": [1]}


def test_subset_and_cap_hand_computed():
    splits = {"train": list(range(0, 14)), "val": [14, 15], "test": [16, 17, 18, 19]}
    # 5 of 20: quotas 3.5 / 0.5 / 1.0 -> 4 / 0 / 1 (largest remainder, ties to the earlier split),
    # then the emptied val split takes one back from train -> 3 / 1 / 1
    sub = subset_splits(splits, 5)
    assert sub == {"train": [2, 7, 11], "val": [15], "test": [18]}
    assert subset_splits(splits, 100) is splits and subset_splits(splits, None) is splits
    assert cap_splits(splits, 2) == {"train": [3, 10], "val": [14, 15], "test": [17, 19]}
    with pytest.raises(ConfigError, match=r"LoadOptions.max_items: got 0"):
        cap_splits(splits, 0)
    with pytest.raises(ConfigError, match=r"LoadOptions.subset: got -1"):
        subset_splits(splits, -1)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=4), st.integers(1, 40))
def test_subset_properties(sizes, n):
    start, splits = 0, {}
    for k, size in enumerate(sizes):
        splits[f"s{k}"] = list(range(start, start + size))
        start += size
    sub = subset_splits(splits, n)
    total = sum(sizes)
    assert sum(len(v) for v in sub.values()) == min(n, total)
    for name, idx in sub.items():
        assert set(idx) <= set(splits[name]) and len(set(idx)) == len(idx)
        if n >= sum(1 for s in sizes if s) and splits[name]:
            assert idx                                                  # no split emptied
    originals = [Item(key=str(i), patient=str(i), images=()) for i in range(total)]
    items, renumbered = restrict_items(originals, sub)
    assert [it.key for it in items] == [str(i) for i in sorted(i for v in sub.values() for i in v)]
    assert {s: [items[i].key for i in v] for s, v in renumbered.items()} == \
        {s: [str(i) for i in v] for s, v in sub.items()}


# -- mechanism 1: a cached split is keyed on every file its making read (issue 26) ------------------

def _nih_phantom(tmp_path: Path) -> Path:
    from radbench_core.data.phantoms.nih import write_phantom
    root = tmp_path / "nih"
    write_phantom(root, "tiny", seed=0)
    return root


def test_a_patient_moved_between_nih_list_files_gives_the_fresh_split(tmp_path: Path):
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.datasets.base import LoadOptions
    spec, root = get_dataset("nih"), _nih_phantom(tmp_path)
    options = LoadOptions(splits_dir=str(tmp_path / "cache" / "splits"))
    first = open_dataset(spec, root, options)
    assert {"Data_Entry_2017_v2020.csv", "test_list.txt", "train_val_list.txt"} <= set(first.input_files) or \
        {"test_list.txt", "train_val_list.txt"} <= set(first.input_files)
    test_keys = [it.key for it in first.split_items("test")]
    moved_patient = first.items[first.splits["test"][0]].patient
    moved = [k for k in test_keys if first.items[[it.key for it in first.items].index(k)].patient == moved_patient]
    test_list, train_list = root / "test_list.txt", root / "train_val_list.txt"
    test_list.write_text("\n".join(k for k in test_list.read_text().split() if k not in moved) + "\n")
    train_list.write_text(train_list.read_text() + "\n".join(moved) + "\n")
    with pytest.warns(UserWarning, match=r"made from files that changed since \(.*test_list.txt \(size"):
        again = open_dataset(spec, root, options)
    fresh = open_dataset(spec, root, LoadOptions())                         # no cache at all
    assert len(again.splits["test"]) == len(test_keys) - len(moved) == len(fresh.splits["test"])
    assert again.splits == fresh.splits
    assert not set(moved) & {it.key for it in again.split_items("test")}


def test_a_changed_csv_invalidates_the_generic_datasets_split_and_feature_key(tmp_path: Path):
    """No check names the generic dataset's CSV: the read recorder finds it."""
    import numpy as np
    from PIL import Image
    from radbench_core.data.datasets import open_dataset
    from radbench_core.data.datasets.base import LoadOptions
    from radbench_core.data.datasets.generic import csv_dataset
    from radbench_core.run.feature_cache import index_files, sources_fingerprint
    spec = csv_dataset("ward", "Ward", folder="ward", label_column="dx", classes=("a", "b"))
    for i in range(20):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"{i}.png")
    rows = [f"{i}.png,{'ab'[i % 2]}" for i in range(20)]
    (tmp_path / "labels.csv").write_text("image,dx\n" + "\n".join(rows) + "\n")
    options = LoadOptions(splits_dir=str(tmp_path / "cache"))
    first = open_dataset(spec, tmp_path, options)
    assert "labels.csv" in first.input_files
    key = sources_fingerprint(tmp_path, index_files(first))
    # same items, another CSV (a column added): the saved split names the CSV and is remade
    (tmp_path / "labels.csv").write_text("image,dx,site\n" + "\n".join(r + ",x" for r in rows) + "\n")
    with pytest.warns(UserWarning, match=r"changed since \(labels.csv \(size \d+ -> \d+\)\); recomputing"):
        again = open_dataset(spec, tmp_path, options)
    assert again.splits == first.splits                         # the same items: the same split
    assert sources_fingerprint(tmp_path, index_files(again)) != key
    with warnings.catch_warnings(record=True) as seen:         # unchanged: reused without a word
        warnings.simplefilter("always")
        assert open_dataset(spec, tmp_path, options).splits == first.splits
    assert not [w for w in seen if "recomputing" in str(w.message)]


def test_a_file_read_only_inside_make_is_recorded_and_keys_the_split(tmp_path: Path):
    """A dataset whose split reads its own list file (no radbench code names it)."""
    items = _items()
    (tmp_path / "data").mkdir()
    exclude = tmp_path / "data" / "held_out.txt"
    exclude.write_text("img1\n")

    def make():
        held = set(exclude.read_text().split())
        return {"train": [it.key for it in items if it.key not in held], "val": [], "test": sorted(held)}
    cache = tmp_path / "cache"
    first = load_or_create_splits(tmp_path / "data", items, make, splits_dir=cache)
    saved = json.loads(computed_splits_path(cache, tmp_path / "data", items).read_text())
    assert list(saved["inputs"]) == ["held_out.txt"]
    exclude.write_text("img0\nimg1\n")
    with pytest.warns(UserWarning, match=r"held_out.txt \(size 5 -> 10\)"):
        second = load_or_create_splits(tmp_path / "data", items, make, splits_dir=cache)
    assert second["test"] == [0, 1] and first["test"] == [1]


def test_nih_lists_that_overlap_or_are_cut_name_both_list_files(tmp_path: Path):
    from radbench_core.data.datasets.base import LoadOptions
    from radbench_core.data.datasets.nih import index
    root = _nih_phantom(tmp_path)
    test_list, train_list = root / "test_list.txt", root / "train_val_list.txt"
    tests, trains = test_list.read_text().split(), train_list.read_text().split()
    train_list.write_text("\n".join(trains + tests[:1]) + "\n")             # in both lists
    with pytest.raises(DatasetError, match=r"train_val_list.txt and .*test_list.txt: 1 image\(s\) are in both") as e:
        index(root, LoadOptions())
    assert "(newly made)" not in str(e.value)
    train_list.write_text("\n".join(trains) + "\n")
    test_list.write_text("\n".join(tests[: len(tests) // 2]) + "\n")          # cut to half
    with pytest.raises(DatasetError, match=r"of the \d+ images of the CSV are in neither list"):
        index(root, LoadOptions())
    test_list.write_text("\ufeff" + "\n".join(tests) + "\n")                  # a BOM is not a name
    assert len(index(root, LoadOptions()).splits["test"]) == len(tests)


def test_a_split_file_with_another_split_name_blames_the_file_not_the_data_folder(tmp_path: Path):
    items = _items()
    path = tmp_path / "official.json"
    path.write_text(json.dumps({"train": ["img0", "img1"], "validation": ["img2"],
                                "test": ["img3", "img4", "img5"]}))
    with pytest.raises(DatasetError) as info:
        load_or_create_splits(tmp_path, items, _make(items), split_file=str(path))
    assert str(info.value) == (f"{path}: split name(s) ['validation'] are not among ['train', 'val', 'test']. "
                               "Fix: name the splits train, val and test (e.g. 'validation' -> 'val').")


def test_small_folders_get_every_split_and_larger_ones_keep_their_split(monkeypatch) -> None:
    """With >= 3 patients every group gets one; a split that had no empty group is unchanged."""
    from radbench_core.data.datasets import splits as splits_module
    for n in range(1, 60):
        patients = [f"p{i}" for i in range(n)]
        new = splits_module.patient_split(patients)
        if n >= 3:
            assert all(new[g] for g in ("train", "val", "test")), n
        with monkeypatch.context() as m:
            m.setattr(splits_module, "_fill_empty_groups", lambda *a: None)
            old = splits_module.patient_split(patients)
        if all(old[g] for g in ("train", "val", "test")):
            assert new == old, n
        assert sorted(sum(new.values(), [])) == list(range(n))
