"""Compact per-cell test predictions: what paired comparisons between cells resample.

A cell's record stays small (metrics, CIs); its test-set predictions go to
``<run>/predictions/<cell-file>.npz``, written atomically and named in the record's
``extra["predictions"]``. Two cells on the same test set can then be compared item by item
(``radbench_core.eval``) long after the run, without re-running either.

Layout of the npz (every array has a leading *runs* axis R: 1 for single-run protocols, the seeds
of a few-shot cell otherwise, whose headline is the mean over runs):

classification  ids (N,), groups (N,) patient ids, labels (N,) | (N, C), scores (R, N[, C]) float32
segmentation    ids, groups, dice / jaccard (R, N, C-1) per item and foreground class (NaN = class
                absent from both), confmats (R, N, C, C) int64 pixel confusion per item
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radbench_core.core.atomic import atomic_write_bytes
from radbench_core.core.errors import ConfigError, StorageError
from radbench_core.core.results import cell_filename

KINDS = ("classification", "segmentation")
FOLDER = "predictions"


class ArrayPayload(dict):
    """What a protocol leaves in ``extra["test_predictions"]`` for the runner: named arrays that
    compare by value, so two results of the same seeded protocol still compare equal."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict) or set(self) != set(other):
            return False
        for key, value in self.items():
            a, b = np.asarray(value), np.asarray(other[key])
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                return False
        return True

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Predictions:
    """One cell's test-set predictions, aligned with ``ids``."""
    kind: str                                   # "classification" | "segmentation"
    ids: np.ndarray                             # (N,) item keys
    groups: np.ndarray                          # (N,) patient of each item (bootstrap clusters)
    label_kind: str = ""                        # classification: binary | multiclass | multilabel
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None            # (R, N[, C])
    dice: np.ndarray | None = None              # (R, N, C-1)
    jaccard: np.ndarray | None = None
    confmats: np.ndarray | None = None          # (R, N, C, C)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str)
        self.groups = np.asarray(self.groups).astype(str)
        where = "Predictions"
        if self.kind not in KINDS:
            raise ConfigError(where, f"unknown kind {self.kind!r}", f"use one of {KINDS}")
        n = len(self.ids)
        if len(self.groups) != n or len(set(self.ids.tolist())) != n:
            raise ConfigError(where, f"{n} ids (unique: {len(set(self.ids.tolist()))}) and "
                                     f"{len(self.groups)} groups", "give one unique id and one group per item")
        arrays = ({"scores": self.scores} if self.kind == "classification"
                  else {"dice": self.dice, "jaccard": self.jaccard, "confmats": self.confmats})
        for name, arr in arrays.items():
            if arr is None or np.ndim(arr) < 2 or np.shape(arr)[1] != n:
                raise ConfigError(where, f"{name} has shape {np.shape(arr)}, expected (runs, {n}, ...)",
                                  "put the runs axis first and one row per test item")
        if self.kind == "classification" and (self.labels is None or len(self.labels) != n):
            raise ConfigError(where, f"labels of shape {np.shape(self.labels)} for {n} items",
                              "pass the test labels in item order")

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def take(self, order: np.ndarray) -> "Predictions":
        """The same predictions with items reordered (or subset) by ``order``."""
        def pick(a: np.ndarray | None, axis: int) -> np.ndarray | None:
            return None if a is None else np.take(a, order, axis=axis)
        return Predictions(self.kind, self.ids[order], self.groups[order], self.label_kind,
                           pick(self.labels, 0), pick(self.scores, 1), pick(self.dice, 1),
                           pick(self.jaccard, 1), pick(self.confmats, 1))

    def to_bytes(self) -> bytes:
        arrays: dict[str, Any] = {"kind": np.asarray(self.kind), "label_kind": np.asarray(self.label_kind),
                                  "ids": self.ids, "groups": self.groups}
        for name in ("labels", "scores", "dice", "jaccard", "confmats"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()


def classification_predictions(ids: Sequence[str], groups: Sequence[str], labels: np.ndarray,
                               scores: np.ndarray, label_kind: str, runs: bool = False) -> Predictions:
    """``scores`` as the protocol scored them; ``runs=True`` when its first axis is the runs axis."""
    s = np.asarray(scores, dtype=np.float32)
    return Predictions("classification", np.asarray(ids), np.asarray(groups), label_kind,
                       np.asarray(labels), s if runs else s[None])


def predictions_path(run_dir: str | Path, cell_id: str) -> Path:
    return Path(run_dir) / FOLDER / cell_filename(cell_id).replace(".json", ".npz")


def save_predictions(run_dir: str | Path, cell_id: str, predictions: Predictions) -> str:
    """Write atomically; return the path relative to ``run_dir`` (what the record names)."""
    path = predictions_path(run_dir, cell_id)
    atomic_write_bytes(path, predictions.to_bytes())
    return os.path.relpath(path, run_dir)


def load_predictions(path: str | Path) -> Predictions:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError as exc:
        raise StorageError(path, "predictions file not found",
                           "re-run the cell (predictions are written since radbench issue 17)") from exc
    except (OSError, ValueError) as exc:
        raise StorageError(path, f"not a readable predictions npz ({exc})",
                           "delete it and re-run the cell") from exc
    missing = [k for k in ("kind", "ids", "groups") if k not in arrays]
    if missing:
        raise StorageError(path, f"missing array(s) {', '.join(missing)}", "delete it and re-run the cell")
    return Predictions(str(arrays.pop("kind")), arrays.pop("ids"), arrays.pop("groups"),
                       str(arrays.pop("label_kind", "")), **arrays)


def find_predictions(record_extra: dict[str, Any], roots: Sequence[str | Path]) -> Path | None:
    """The predictions file a record names, looked up under each root (run dirs, report dir)."""
    rel = record_extra.get("predictions") if isinstance(record_extra, dict) else None
    if not rel:
        return None
    for root in roots:
        candidate = Path(root) / rel
        if candidate.is_file():
            return candidate
    return None


def predictions_from_protocol(payload: dict[str, Any], test_items: Sequence[Any], label_kind: str,
                              task: str) -> Predictions:
    """A protocol's ``extra["test_predictions"]`` with the test items' keys and patients."""
    ids = [it.key for it in test_items]
    groups = [it.patient for it in test_items]
    if task == "segmentation":
        return Predictions("segmentation", np.asarray(ids), np.asarray(groups),
                           dice=np.asarray(payload["dice"], np.float64),
                           jaccard=np.asarray(payload["jaccard"], np.float64),
                           confmats=np.asarray(payload["confmats"], np.int64))
    return classification_predictions(ids, groups, payload["labels"], payload["scores"], label_kind,
                                      runs=bool(payload.get("runs", False)))
