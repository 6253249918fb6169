"""Patient-grouped, deterministic splits, persisted as JSON in radbench's cache and reused after.

Systematic sampling: the unique patients are put in one fixed (natural) order and dealt to the
groups in a repeating pattern (for 70/10/20 a 10-slot cycle), so every group samples the whole
range of ids. A patient's items always go to one group, so no patient is in two splits. With
``strata`` (a classification label per item) the dealing runs within each class, so every split
gets its share of every class (stratified systematic sampling).

radbench never writes into the user's dataset folder: a computed split is saved under
``LoadOptions.splits_dir`` (the run's cache folder) in a file named after the dataset's file list,
so adding or removing files gives a new split instead of silently reusing a stale one; the file
also records (size, mtime) of every input the split was made from (CSVs, list files, dataset.json,
as recorded by :mod:`inputs`), and a change to any of them recomputes it, naming what changed. A
user split file is an input; one that no longer covers the items on disk is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Callable, Hashable, Sequence

from radbench_core.core.atomic import atomic_write_json
from radbench_core.data.datasets.base import Item, LoadOptions
from radbench_core.data.datasets.study_folders import is_study_split_folder, read_study_split_folder
from radbench_core.data.datasets.inputs import changed_inputs, input_manifest, reads_so_far, recording_reads
from radbench_core.core.errors import ConfigError, DatasetError, StorageError

SPLITS_FILENAME = "radbench_splits.json"      # legacy: older radbench wrote it into the dataset folder
SPLIT_ALGORITHM_VERSION = 4                   # 2: stratified; 3: inputs recorded; 4: generic stratified, small folders filled
_DIGITS = re.compile(r"(\d+)")
SPLIT_NAMES = ("train", "val", "test")


def natural_key(name: str) -> tuple:
    """Sort "case_2" before "case_10" (ids are usually acquisition order); ties broken by the text."""
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)) + (name,)


def _check_fractions(fractions: tuple[float, ...], groups: tuple[str, ...]) -> None:
    where = "patient_split(fractions, groups)"
    if len(fractions) != len(groups) or not groups:
        raise ConfigError(where, f"{len(fractions)} fractions for {len(groups)} groups {groups}",
                          "give one fraction per group, e.g. (0.7, 0.1, 0.2) for train/val/test")
    if len(set(groups)) != len(groups):
        raise ConfigError(where, f"group names repeat in {groups}", "give each group a distinct name")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(where, f"fractions {fractions} must be >= 0 and sum to 1",
                          "use fractions such as (0.7, 0.1, 0.2)")


def patient_split(patients: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                  groups: tuple[str, ...] = ("train", "val", "test"),
                  strata: Sequence[Hashable] | None = None) -> dict[str, list[int]]:
    """Deal patients to groups by systematic sampling; returns item positions per group.

    ``patients[i]`` is the patient of item i. The j-th patient (natural order) goes to the group
    whose count lags its target ``(j + 1) * fraction`` the most (ties: the earlier group), which
    keeps every group within one patient of its target at every prefix and repeats with the period
    of the fractions (10 slots for 70/10/20). ``strata[i]`` (optional, e.g. the class of item i)
    orders the patients by stratum first (implicit stratification of systematic sampling: every
    class is spread over the groups in proportion); a patient's stratum is that of its first item.
    """
    fractions = tuple(float(f) for f in fractions)
    groups = tuple(groups)
    _check_fractions(fractions, groups)
    if strata is not None and len(strata) != len(patients):
        raise ConfigError("patient_split(strata)", f"{len(strata)} strata for {len(patients)} items",
                          "give one stratum (class) per item")
    stratum_of: dict[str, Hashable] = {}
    for i, patient in enumerate(patients):
        stratum_of.setdefault(patient, strata[i] if strata is not None else 0)
    rank = {s: r for r, s in enumerate(sorted(set(stratum_of.values()), key=lambda v: natural_key(str(v))))}
    # implicit stratification: one dealing over the patients sorted by stratum, then natural order,
    # so each class gets its share of every group (within one patient) and the totals stay exact
    ordered = sorted(set(patients), key=lambda p: (rank[stratum_of[p]], natural_key(p)))
    counts = [0] * len(groups)
    group_of: dict[str, int] = {}
    for j, patient in enumerate(ordered):
        deficits = [round((j + 1) * f - c, 9) for f, c in zip(fractions, counts)]
        g = max(range(len(groups)), key=lambda k: (deficits[k], -k))
        counts[g] += 1
        group_of[patient] = g
    _fill_empty_groups(ordered, group_of, counts)
    out: dict[str, list[int]] = {name: [] for name in groups}
    for i, patient in enumerate(patients):
        out[groups[group_of[patient]]].append(i)
    return out


def _fill_empty_groups(ordered: list[str], group_of: dict[str, int], counts: list[int]) -> None:
    """A small folder (3 MSD cases: 2 train, 0 val, 1 test by the dealing) gets one patient in every
    group, taken from the largest one (its last-dealt patient), when there are enough patients.

    Only splits that would otherwise leave a group empty, which the loaders refuse, change."""
    if len(ordered) < len(counts):
        return
    for empty in [g for g, c in enumerate(counts) if c == 0]:
        largest = max(range(len(counts)), key=lambda k: (counts[k], -k))
        donor = next(p for p in reversed(ordered) if group_of[p] == largest)
        group_of[donor] = empty
        counts[largest] -= 1
        counts[empty] += 1


def _read_split_json(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DatasetError(path, f"cannot read the split file ({exc.strerror or exc})",
                           "check the path given as split file") from exc
    except ValueError as exc:
        raise DatasetError(path, f"the split file is not valid JSON ({exc})",
                           "fix the file, or drop it to let radbench compute a split") from exc
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(k, str) for k in v)
            for name, v in data.items() if name != "unlisted"):
        raise DatasetError(path, "expected a JSON object mapping each split name to a list of item "
                                 "keys, e.g. {\"train\": [\"case_1\"], \"val\": [...], \"test\": [...]}",
                           "rewrite the file in that shape")
    return {str(k): v if k == "unlisted" else list(v) for k, v in data.items()}


def _positions(where: str | Path, splits: dict[str, list[str]], items: list[Item], *,
               shared_patients: bool = False) -> dict[str, list[int]]:
    """Keys -> positions; an item in two splits is refused, and so is a patient in two splits
    unless ``shared_patients`` (only the study's NIH rule, which cuts train_val_list.txt by row)."""
    position = {it.key: i for i, it in enumerate(items)}
    seen_in: dict[str, str] = {}
    patient_in: dict[str, str] = {}
    out: dict[str, list[int]] = {}
    for split, keys in splits.items():
        out[split] = []
        for key in keys:
            if key not in position:
                raise DatasetError(where, f"split {split!r} lists the unknown item key {key!r} "
                                          f"(not among the {len(items)} items found on disk, whose keys "
                                          f"are e.g. {', '.join(repr(it.key) for it in items[:3])})",
                                   "list item keys as `radbench prepare DATASET --write-splits FILE` "
                                   "writes them (a missing file on disk, or a key in another form)")
            if key in seen_in:
                raise DatasetError(where, f"item {key!r} is in both {seen_in[key]!r} and {split!r}",
                                   "list every item in at most one split")
            seen_in[key] = split
            patient = items[position[key]].patient
            if patient_in.setdefault(patient, split) != split and not shared_patients:
                raise DatasetError(where, f"patient {patient!r} is in both {patient_in[patient]!r} "
                                          f"and {split!r}",
                                   "keep all items of one patient in one split")
            out[split].append(position[key])
        out[split].sort()
    return out


def items_fingerprint(items: list[Item]) -> str:
    """Hash of the dataset's file list (keys, patients, files): names a computed split file."""
    blob = json.dumps([SPLIT_ALGORITHM_VERSION] + [[it.key, it.patient, list(it.images), list(it.masks),
                                                    it.label] for it in items], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def computed_splits_path(splits_dir: str | Path, root: Path, items: list[Item]) -> Path:
    """Where the computed split of this dataset folder and file list lives in radbench's cache."""
    return Path(splits_dir) / f"{Path(root).name}-{items_fingerprint(items)}.json"


UNLISTED = ("refuse", "exclude")      # a split file's "unlisted" key: what items in no split get


def _unlisted_rule(path: Path, data: dict) -> str:
    """Pop the split file's optional ``"unlisted"`` key: ``"refuse"`` (default) or ``"exclude"``."""
    rule = data.pop("unlisted", "refuse")
    if rule not in UNLISTED:
        raise DatasetError(path, f'"unlisted": {rule!r} is not one of {list(UNLISTED)}',
                           'write "unlisted": "exclude" to leave the items in no split out on purpose, '
                           "or drop the key to have them refused")
    return rule


EXCLUDED_BY_FILE = 'as the file says ("unlisted": "exclude")'
EXCLUDED_BY_FOLDERS = "as the study's split folders list only the others"


def _check_coverage(where: str | Path, splits: dict[str, list[str]], items: list[Item],
                    exclude: bool = False, why: str = EXCLUDED_BY_FILE) -> None:
    """A user split file must place every item on disk: new items would be silently left out. A file
    saying ``"unlisted": "exclude"`` (a published subset, an official test list) leaves them out
    on purpose, with one warning that counts them."""
    listed = {key for keys in splits.values() for key in keys}
    unplaced = [it.key for it in items if it.key not in listed]
    if unplaced and exclude:
        warnings.warn(f"{where}: {len(unplaced)} of {len(items)} items on disk are in no split and are "
                      f"left out, {why} (e.g. {', '.join(map(repr, unplaced[:3]))})", stacklevel=3)
    elif unplaced:
        raise DatasetError(where, f"the split file does not cover the dataset: {len(unplaced)} of "
                                  f"{len(items)} items on disk are in no split (e.g. "
                                  f"{', '.join(map(repr, unplaced[:3]))}); items were added since "
                                  "it was written, or the file lists a subset",
                           "list every item in the split file (or remove the new files), add "
                           '"unlisted": "exclude" to the file to leave them out on purpose, or drop '
                           "the split file to let radbench compute one")


def _study_folder(root: Path, split_file: str | Path) -> Path | None:
    """The split argument as a folder in the study's split layout (train/ val/ test/), if it is one."""
    for path in (Path(split_file), Path(root) / split_file):
        if is_study_split_folder(path):
            return path
    return None


def user_split_path(root: Path, split_file: str | Path) -> Path:
    """The user's split file, relative to the working directory or else to the dataset root."""
    path = Path(split_file)
    if not path.is_absolute() and not path.exists() and (Path(root) / path).exists():
        path = Path(root) / path
    if not path.is_file():
        raise DatasetError(path, "the split file given does not exist",
                           "pass the path of a JSON file mapping split -> item keys "
                           "(--radbench-splits DATASET=FILE)")
    return path


def load_or_create_splits(root: Path, items: list[Item], make: Callable[[], dict[str, list[str]]],
                          split_file: str | None = None, splits_dir: str | Path | None = None,
                          *, shared_patients: bool = False, title: str = "") -> dict[str, list[int]]:
    """Return split -> item positions: a user split file (or the study's split folders, see
    study_folders.py), our saved one, or a new one.

    A new split is written once to ``splits_dir`` (radbench's cache, never the dataset folder) under
    a name derived from the file list, so later runs and other workers reuse it while a changed
    dataset gets a new one. Without ``splits_dir`` the split is only kept in memory (it is
    deterministic, so recomputing it gives the same assignment).
    """
    root = Path(root)
    folder = _study_folder(root, split_file) if split_file is not None else None
    if folder is not None:
        data = read_study_split_folder(folder, items, title or root.name)
        positions = _positions(folder, data, items)
        _check_coverage(folder, data, items, exclude=True, why=EXCLUDED_BY_FOLDERS)
        return positions
    if split_file is not None:
        path = user_split_path(root, split_file)
        data = _read_split_json(path)
        unlisted = _unlisted_rule(path, data)
        unknown = sorted(set(data) - set(SPLIT_NAMES))
        if unknown:
            raise DatasetError(path, f"split name(s) {unknown} are not among {list(SPLIT_NAMES)}",
                               "name the splits train, val and test (e.g. 'validation' -> 'val')")
        positions = _positions(path, data, items)
        _check_coverage(path, data, items, exclude=unlisted == "exclude")
        return positions
    saved = computed_splits_path(splits_dir, root, items) if splits_dir is not None else None
    if saved is not None and saved.is_file():
        reused = _reuse_saved(root, saved, items)
        if reused is not None:
            return reused
    with recording_reads(root) as made_from:
        splits = make()
    sources = sorted(made_from) or sorted(reads_so_far(root))
    where = " and ".join(str(root / rel) for rel in sources) if sources else f"{root} (computed split)"
    positions = _positions(where, splits, items, shared_patients=shared_patients)
    if saved is not None:
        own = {str(saved.relative_to(root)) if saved.is_relative_to(root) else ""}   # cache inside root
        record = {"splits": splits, "inputs": input_manifest(root, (reads_so_far(root) | made_from) - own)}
        try:
            atomic_write_json(saved, record)
        except (StorageError, OSError) as exc:
            warnings.warn(f"{saved}: could not save the splits ({exc}); using them from memory only, "
                          "so they are recomputed (identically) on each run", stacklevel=2)
    return positions


def _reuse_saved(root: Path, saved: Path, items: list[Item]) -> dict[str, list[int]] | None:
    """The saved split's positions if it is readable and all its inputs are unchanged, else None."""
    try:
        record = json.loads(saved.read_text())
        inputs = record["inputs"]
        splits = record["splits"]
        if not isinstance(inputs, dict) or not isinstance(splits, dict):
            raise TypeError("not a split record")
    except (OSError, ValueError, KeyError, TypeError) as exc:      # our own cache file is damaged
        warnings.warn(f"{saved}: saved split is unusable ({type(exc).__name__}: {exc}); recomputing it",
                      stacklevel=3)
        return None
    changed = changed_inputs(root, inputs)
    if changed:
        warnings.warn(f"{saved}: the saved split was made from files that changed since "
                      f"({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}); recomputing it",
                      stacklevel=3)
        return None
    try:
        return _positions(saved, {str(k): list(v) for k, v in splits.items()}, items)
    except DatasetError as exc:
        warnings.warn(f"{saved}: saved split is unusable ({exc.problem}); recomputing it", stacklevel=3)
        return None


def keys_by_group(items: list[Item], positions: dict[str, list[int]]) -> dict[str, list[str]]:
    """Turn positions back into item keys: the form ``make()`` returns and the JSON stores."""
    return {split: [items[i].key for i in idx] for split, idx in positions.items()}


def _spread(n_total: int, k: int) -> list[int]:
    """k evenly spaced positions out of n_total (systematic sampling, centred in each stride)."""
    return [int((i + 0.5) * n_total / k) for i in range(k)]


def cap_splits(splits: dict[str, list[int]], max_items: int | None) -> dict[str, list[int]]:
    """At most ``max_items`` positions per split, taken evenly spaced so the cap spans the split."""
    if max_items is None:
        return splits
    if max_items < 1:
        raise ConfigError("LoadOptions.max_items", f"got {max_items}, expected a positive count",
                          "pass max_items >= 1, or None for every item")
    return {s: idx if len(idx) <= max_items else [idx[j] for j in _spread(len(idx), max_items)]
            for s, idx in splits.items()}


def subset_splits(splits: dict[str, list[int]], n: int | None) -> dict[str, list[int]]:
    """Keep ``n`` positions in all, shared between splits in proportion to their sizes.

    Every non-empty split keeps at least one position when ``n`` allows it; within a split the kept
    positions are evenly spaced. Used for a fixed-size subset (AMOS: the study used 150 cases).
    """
    if n is None:
        return splits
    total = sum(len(v) for v in splits.values())
    if n < 1:
        raise ConfigError("LoadOptions.subset", f"got {n}, expected a positive number of cases",
                          "pass subset >= 1, or None for every case")
    if n >= total:
        return splits
    names = list(splits)
    quota = {s: n * len(splits[s]) / total for s in names}
    take = {s: int(quota[s]) for s in names}
    for s in sorted(names, key=lambda s: (-(quota[s] - take[s]), names.index(s)))[: n - sum(take.values())]:
        take[s] += 1
    for s in names:                                   # never empty a split that had items
        if take[s] == 0 and splits[s]:
            donor = max(names, key=lambda d: take[d])
            if take[donor] > 1:
                take[donor] -= 1
                take[s] = 1
    return {s: [splits[s][j] for j in _spread(len(splits[s]), take[s])] if take[s] else []
            for s in names}


def restrict_items(items: list[Item], splits: dict[str, list[int]],
                   ) -> tuple[list[Item], dict[str, list[int]]]:
    """Drop items no split uses and renumber the positions (item order is kept)."""
    used = sorted({i for idx in splits.values() for i in idx})
    new_pos = {old: new for new, old in enumerate(used)}
    return [items[i] for i in used], {s: [new_pos[i] for i in idx] for s, idx in splits.items()}


def missing_classes(items: list[Item], splits: dict[str, list[int]]) -> dict[str, list[int]]:
    """split -> classes present in the dataset but absent from that split (labelled datasets).

    Single-label items: class index; multilabel items: a class with no positive in the split.
    """
    labelled = [it for it in items if it.label is not None]
    if not labelled:
        return {}
    if isinstance(labelled[0].label, tuple):
        def present(idx: list[int]) -> set[int]:
            return {c for i in idx if isinstance(items[i].label, tuple)
                    for c, v in enumerate(items[i].label) if v == 1}
    else:
        def present(idx: list[int]) -> set[int]:
            return {int(items[i].label) for i in idx if items[i].label is not None}
    everywhere = present(list(range(len(items))))
    return {s: sorted(everywhere - present(idx)) for s, idx in splits.items()
            if everywhere - present(idx)}


def report_missing_classes(root: Path, items: list[Item], splits: dict[str, list[int]],
                           title: str, class_names: Sequence[str] = ()) -> None:
    """Warn (one line per split) when val or test lacks a class: its metric will be undefined."""
    for split, classes in missing_classes(items, splits).items():
        if split == "train":
            continue
        names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
        warnings.warn(f"{root}: the {split!r} split of {title} has no example of class(es) "
                      f"{names}; metrics over those classes are undefined there. Fix: use more "
                      "data or a split file that puts every class in val and test", stacklevel=3)


def resolve_splits(root: Path, items: list[Item], make: Callable[[], dict[str, list[str]]],
                   options: LoadOptions, title: str, class_names: Sequence[str] = (), *,
                   shared_patients: bool = False) -> dict[str, list[int]]:
    """The splits a loader returns: user file (or saved, or made), capped, every split non-empty.

    A val/test split missing a class is reported (warning) here, at indexing time.
    """
    splits = cap_splits(load_or_create_splits(root, items, make, options.split_file,
                                              getattr(options, "splits_dir", None),
                                              shared_patients=shared_patients, title=title),
                        options.max_items)
    for name in ("train", "val", "test"):
        if not splits.get(name):
            raise DatasetError(root, f"the {name!r} split of {title} is empty",
                               "check that the folder holds the whole dataset, or pass a split file "
                               "listing items for train, val and test")
    report_missing_classes(root, items, splits, title, class_names)
    return splits
