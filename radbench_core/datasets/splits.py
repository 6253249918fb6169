"""Patient-grouped, deterministic splits, persisted as JSON next to the data and reused after.

Systematic sampling: the unique patients are put in one fixed (natural) order and dealt to the
groups in a repeating pattern (for 70/10/20 a 10-slot cycle), so every group samples the whole
range of ids. A patient's items always go to one group, so no patient is in two splits.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Callable, Sequence

from radbench_core.atomic import atomic_write_json
from radbench_core.datasets.base import Item, LoadOptions
from radbench_core.errors import ConfigError, DatasetError, StorageError

SPLITS_FILENAME = "radbench_splits.json"
_DIGITS = re.compile(r"(\d+)")


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
                  groups: tuple[str, ...] = ("train", "val", "test")) -> dict[str, list[int]]:
    """Deal patients to groups by systematic sampling; returns item positions per group.

    ``patients[i]`` is the patient of item i. The j-th patient (natural order) goes to the group
    whose count lags its target ``(j + 1) * fraction`` the most (ties: the earlier group), which
    keeps every group within one patient of its target at every prefix and repeats with the period
    of the fractions (10 slots for 70/10/20).
    """
    fractions = tuple(float(f) for f in fractions)
    groups = tuple(groups)
    _check_fractions(fractions, groups)
    unique = sorted(set(patients), key=natural_key)
    counts = [0] * len(groups)
    group_of: dict[str, int] = {}
    for j, patient in enumerate(unique):
        deficits = [round((j + 1) * f - c, 9) for f, c in zip(fractions, counts)]
        g = max(range(len(groups)), key=lambda k: (deficits[k], -k))
        counts[g] += 1
        group_of[patient] = g
    out: dict[str, list[int]] = {name: [] for name in groups}
    for i, patient in enumerate(patients):
        out[groups[group_of[patient]]].append(i)
    return out


def _read_split_json(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DatasetError(path, f"cannot read the split file ({exc.strerror or exc})",
                           "check the path given as split file") from exc
    except ValueError as exc:
        raise DatasetError(path, f"the split file is not valid JSON ({exc})",
                           "fix the file, or delete it (radbench_splits.json) to let radbench "
                           "write a new one") from exc
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(k, str) for k in v) for v in data.values()):
        raise DatasetError(path, "expected a JSON object mapping each split name to a list of item "
                                 "keys, e.g. {\"train\": [\"case_1\"], \"val\": [...], \"test\": [...]}",
                           "rewrite the file in that shape")
    return {str(k): list(v) for k, v in data.items()}


def _positions(where: str | Path, splits: dict[str, list[str]], items: list[Item]) -> dict[str, list[int]]:
    position = {it.key: i for i, it in enumerate(items)}
    seen_in: dict[str, str] = {}
    patient_in: dict[str, str] = {}
    out: dict[str, list[int]] = {}
    for split, keys in splits.items():
        out[split] = []
        for key in keys:
            if key not in position:
                raise DatasetError(where, f"split {split!r} lists the unknown item key {key!r} "
                                          f"(not among the {len(items)} items found on disk)",
                                   "use the item keys of this dataset (e.g. case ids), or delete a "
                                   "stale radbench_splits.json so it is written anew")
            if key in seen_in:
                raise DatasetError(where, f"item {key!r} is in both {seen_in[key]!r} and {split!r}",
                                   "list every item in at most one split")
            seen_in[key] = split
            patient = items[position[key]].patient
            if patient_in.setdefault(patient, split) != split:
                raise DatasetError(where, f"patient {patient!r} is in both {patient_in[patient]!r} "
                                          f"and {split!r}",
                                   "keep all items of one patient in one split")
            out[split].append(position[key])
        out[split].sort()
    return out


def load_or_create_splits(root: Path, items: list[Item], make: Callable[[], dict[str, list[str]]],
                          split_file: str | None = None) -> dict[str, list[int]]:
    """Return split -> item positions: a published split file, our saved one, or a new one.

    A new split is written once to ``root/radbench_splits.json`` so later runs (and other workers)
    reuse the same assignment; a read-only data folder only costs a warning.
    """
    root = Path(root)
    if split_file is not None:
        path = Path(split_file)
        if not path.is_absolute() and not path.exists() and (root / path).exists():
            path = root / path
        if not path.is_file():
            raise DatasetError(path, "the split file given does not exist",
                               "pass the path of a JSON file mapping split -> item keys")
        return _positions(path, _read_split_json(path), items)
    saved = root / SPLITS_FILENAME
    if saved.is_file():
        return _positions(saved, _read_split_json(saved), items)
    splits = make()
    positions = _positions(f"{saved} (newly made)", splits, items)
    try:
        atomic_write_json(saved, splits)
    except (StorageError, OSError) as exc:
        warnings.warn(f"{saved}: could not save the splits ({exc}); using them from memory only, "
                      "so they are recomputed (identically) on each run", stacklevel=2)
    return positions


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


def resolve_splits(root: Path, items: list[Item], make: Callable[[], dict[str, list[str]]],
                   options: LoadOptions, title: str) -> dict[str, list[int]]:
    """The splits a loader returns: saved (or published, or made), capped, every split non-empty."""
    splits = cap_splits(load_or_create_splits(root, items, make, options.split_file), options.max_items)
    for name in ("train", "val", "test"):
        if not splits.get(name):
            raise DatasetError(root, f"the {name!r} split of {title} is empty",
                               "check that the folder holds the whole dataset, or pass a split file "
                               "listing items for train, val and test")
    return splits
