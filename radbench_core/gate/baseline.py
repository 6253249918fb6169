"""The baseline file: a committed, diffable JSON of each cell's config hash and metrics.

Reading validates every field (a damaged baseline must stop the gate, never pass silently); writing
is explicit (``--radbench-update-baseline``) or goes to ``<baseline>.obtained`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from radbench_core import __version__
from radbench_core.core.atomic import atomic_write_text
from radbench_core.core.errors import BaselineError
from radbench_core.core.results import CellResult, Metric
from radbench_core.eval.predictions import find_predictions

BASELINE_FORMAT = "radbench-baseline"
BASELINE_VERSION = 1
REGEN = "regenerate it with --radbench-update-baseline (or `radbench compare RUN BASELINE --update`)"


@dataclass
class BaselineMetric:
    value: float | None
    higher_is_better: bool = True
    ci_low: float | None = None          # the baseline run's own 95% bootstrap CI (optional)
    ci_high: float | None = None


@dataclass
class BaselineCell:
    config_hash: str
    metrics: dict[str, BaselineMetric] = field(default_factory=dict)
    # the baseline run's test predictions beside the baseline (the paired noise-aware gate):
    # {"file": path relative to the baseline's folder, "sha256": digest of that file}
    predictions: dict[str, str] | None = None


@dataclass
class Baseline:
    path: Path
    profile: str
    radbench_version: str
    cells: dict[str, BaselineCell] = field(default_factory=dict)


def load_baseline(path: str | Path) -> Baseline:
    """Read and validate a baseline file; a damaged one must stop the gate, never pass silently."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(path, "no baseline file here", f"check the path, or create it: {REGEN}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(path, f"not valid JSON ({exc})", REGEN) from exc

    def need(cond: bool, problem: str) -> None:
        if not cond:
            raise BaselineError(path, problem, REGEN)

    need(isinstance(doc, dict), "the top level is not a JSON object")
    need(doc.get("format") == BASELINE_FORMAT,
         f"format tag is {doc.get('format')!r}, expected {BASELINE_FORMAT!r}")
    need(doc.get("version") == BASELINE_VERSION,
         f"version {doc.get('version')!r}, this radbench reads {BASELINE_VERSION}")
    for key in ("profile", "radbench_version", "cells"):
        need(key in doc, f"missing key {key!r}")
    need(isinstance(doc["cells"], dict), "'cells' is not an object of cell id -> entry")
    cells: dict[str, BaselineCell] = {}
    for cell_id, entry in doc["cells"].items():
        need(isinstance(entry, dict) and isinstance(entry.get("config_hash"), str)
             and isinstance(entry.get("metrics"), dict),
             f"cell {cell_id!r} lacks a config_hash or metrics object")
        metrics = {}
        for name, m in entry["metrics"].items():
            where = f"cell {cell_id!r} metric {name!r}"
            need(isinstance(m, dict) and "value" in m, f"{where} has no 'value'")
            value = m["value"]
            need(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
                 f"{where}: value {value!r} is not a number")
            need(value is None or math.isfinite(value),
                 f"{where}: value {value!r} is not finite (any comparison with it would pass)")
            hib = m.get("higher_is_better", True)
            need(isinstance(hib, bool), f"{where}: higher_is_better {hib!r} is not true/false")
            ci = [m.get(k) for k in ("ci_low", "ci_high")]
            need(all(c is None or (isinstance(c, (int, float)) and not isinstance(c, bool)) for c in ci),
                 f"{where}: ci_low/ci_high {ci!r} are not numbers")
            metrics[name] = BaselineMetric(None if value is None else float(value), hib,
                                           *(None if c is None else float(c) for c in ci))
        pred = entry.get("predictions")
        need(pred is None or (isinstance(pred, dict) and isinstance(pred.get("file"), str)
                              and isinstance(pred.get("sha256"), str)),
             f"cell {cell_id!r}: predictions {pred!r} is not an object with 'file' and 'sha256'")
        cells[cell_id] = BaselineCell(entry["config_hash"], metrics, pred)
    values = [m.value for cell in cells.values() for m in cell.metrics.values()]
    need(not values or any(v is not None for v in values),
         f"all {len(values)} metric values are null, so nothing would be compared")
    return Baseline(path, str(doc["profile"]), str(doc["radbench_version"]), cells)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def half_width(low: float | None, high: float | None) -> float | None:
    """Half the width of a CI, None when it is not a finite interval."""
    low, high = _number(low), _number(high)
    return None if low is None or high is None or high < low else (high - low) / 2.0


def _cell_entry(rec: CellResult) -> dict[str, Any]:
    return {"config_hash": rec.config_hash,
            "metrics": {name: _metric_entry(m) for name, m in rec.metrics.items()}}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def predictions_folder(baseline_path: str | Path) -> Path:
    """``benchmarks/baselines/demo.json`` -> ``benchmarks/baselines/demo.predictions/``."""
    baseline_path = Path(baseline_path)
    return baseline_path.with_name(baseline_path.stem + ".predictions")


def _store_predictions(baseline_path: Path, rec: CellResult, run_dirs: Sequence[str | Path]
                       ) -> dict[str, str] | None:
    """Copy the cell's predictions npz beside the baseline; its file and digest for the entry."""
    source = find_predictions(rec.extra if isinstance(rec.extra, dict) else {}, run_dirs)
    if source is None:
        return None
    target = predictions_folder(baseline_path) / Path(source).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return {"file": target.relative_to(baseline_path.parent).as_posix(), "sha256": sha256_of(target)}


def _metric_entry(m: Metric) -> dict[str, Any]:
    """Value and direction; the CI too where recorded (what the noise-aware gate reads)."""
    entry: dict[str, Any] = {"value": _number(m.value), "higher_is_better": bool(m.higher_is_better)}
    if half_width(m.ci_low, m.ci_high) is not None:
        entry.update(ci_low=_number(m.ci_low), ci_high=_number(m.ci_high))
    return entry


def _doc(profile: str, cells: dict[str, Any]) -> str:
    doc = {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "radbench_version": __version__,
           "profile": profile, "cells": cells}
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _existing_cells(path: Path) -> tuple[str | None, dict[str, Any]]:
    if not path.exists():
        return None, {}
    load_baseline(path)                                   # validate before merging into it
    doc = json.loads(path.read_text(encoding="utf-8"))
    return str(doc["profile"]), dict(doc["cells"])


def update_baseline(path: str | Path, records: Sequence[CellResult], *, profile: str,
                    run_dirs: Sequence[str | Path] = ()) -> Path:
    """Write or merge the baseline (explicitly requested): re-recorded cells replace, others stay.

    With ``run_dirs`` each cell's test predictions are copied beside the baseline
    (:func:`predictions_folder`) with their digest, for the paired noise-aware gate."""
    path = Path(path)
    old_profile, cells = _existing_cells(path)
    if old_profile is not None and old_profile != profile:
        raise BaselineError(path, f"this baseline is for profile {old_profile!r}, the run is {profile!r}",
                            f"use a baseline file per profile, e.g. benchmarks/baselines/{profile}.json")
    for rec in records:
        if rec.profile != profile:
            raise BaselineError(path, f"cell {rec.cell_id!r} was run with profile {rec.profile!r}, "
                                f"not {profile!r}",
                                "update the baseline from a run of a single profile")
        cells[rec.cell_id] = _cell_entry(rec)
        stored = _store_predictions(path, rec, run_dirs) if run_dirs else None
        if stored:
            cells[rec.cell_id]["predictions"] = stored
    return atomic_write_text(path, _doc(profile, cells))


def obtained_path(baseline_path: str | Path) -> Path:
    baseline_path = Path(baseline_path)
    return baseline_path.with_name(baseline_path.name + ".obtained")


def write_obtained(baseline_path: str | Path, records: Sequence[CellResult]) -> Path:
    """Write ``<baseline>.obtained``: the baseline with this run's cells merged in, so that
    ``diff baseline obtained`` shows exactly what changed (and ``mv`` accepts it)."""
    baseline_path = Path(baseline_path)
    try:
        old_profile, cells = _existing_cells(baseline_path)
    except BaselineError:
        old_profile, cells = None, {}
    profiles = sorted({r.profile for r in records})
    profile = old_profile or (",".join(profiles) if profiles else "unknown")
    for rec in records:
        cells[rec.cell_id] = _cell_entry(rec)
    return atomic_write_text(obtained_path(baseline_path), _doc(profile, cells))
