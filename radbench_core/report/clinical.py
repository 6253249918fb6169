"""What a radiology reader looks for beyond the headline: per-finding AUROC with the finding names,
the test sets (items, patients, prevalence per finding) and sensitivity/specificity at a stated
operating point, one table each per classification dataset; Dice and HD95 per organ side by side,
one table per segmentation dataset.

Why separate from ``tables.py``: the study printed none of these, so they follow no layout; they
come from each record's ``auroc_per_class`` + ``class_names`` and from its test predictions (.npz).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

import numpy as np

from radbench_core.core.results import CellResult
from radbench_core.eval.metrics import HIGHER_IS_BETTER
from radbench_core.eval.surface_distance import CONVENTION
from radbench_core.eval.operating_point import (OPERATING_POINT, prevalence, sensitivity_specificity,
                                                truths)
from radbench_core.report.frame import (DATASET_ORDER, MODEL_ORDER, PROTOCOL_LABELS, dataset_label,
                                        model_label, order_key, variant_key)
from radbench_core.report.table import MARKS_NOTE, Column, Entry, Table

PREFIXES = ("perclass_", "testset_", "operating_", "perorgan_", "curves_")   # file stems of the clinical tables
CELL_HEADER = ("Model", "Protocol", "Variant")


def stem(dataset: str) -> str:
    """A dataset id as part of a file stem and a LaTeX label (a user's id may hold % or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", dataset)


def class_names(rec: CellResult, n: int) -> list[str]:
    """The names of a record's n per-class values: its stored ``class_names`` (a binary set's
    positive class is its last name), else "class 1".. for records written before names were."""
    names = list((rec.extra or {}).get("class_names") or [])
    if len(names) == n:
        return names
    if n == 1 and names:
        return names[-1:]
    return [f"class {i + 1}" for i in range(n)]


def _cells(records: Iterable[CellResult], task: str) -> dict[str, list[CellResult]]:
    by_dataset: dict[str, list[CellResult]] = {}
    for rec in sorted(records, key=lambda r: (order_key(MODEL_ORDER)(r.model), r.protocol,
                                              variant_key(r.variant or ""))):
        if rec.task == task:
            by_dataset.setdefault(rec.dataset, []).append(rec)
    return dict(sorted(by_dataset.items(), key=lambda kv: order_key(DATASET_ORDER)(kv[0])))


def _row(rec: CellResult) -> tuple[str, str, str]:
    return model_label(rec.model), PROTOCOL_LABELS.get(rec.protocol, rec.protocol), rec.variant or "default"


def per_class_table(dataset: str, recs: list[CellResult]) -> Table | None:
    """AUROC per finding (columns, by name) of every cell (rows) on ``dataset``."""
    recs = [r for r in recs if (r.extra or {}).get("auroc_per_class")]
    if not recs:
        return None
    first = recs[0]
    names = class_names(first, len(first.extra["auroc_per_class"]))
    table = Table(f"perclass_{stem(dataset)}", 0, f"AUROC per finding on {dataset_label(dataset)} "
                  f"(test set), from each cell's own test predictions. {MARKS_NOTE}",
                  CELL_HEADER, [], [Column("", n) for n in names], extended=True,
                  title=f"Per-finding AUROC, {dataset_label(dataset)}")
    for rec in recs:
        values = rec.extra["auroc_per_class"]
        if class_names(rec, len(values)) != names:
            continue                                  # another class set (a user's relabelling)
        table.rows.append(_row(rec))
        for c, v in enumerate(values):
            if v is not None and math.isfinite(v):
                table.entries[(len(table.rows) - 1, c)] = Entry(float(v), cell_id=rec.cell_id,
                                                                metric="auroc")
    return table


def per_organ_table(dataset: str, recs: list[CellResult]) -> Table | None:
    """Dice and HD95 per organ side by side (column groups: foreground classes by name) of every
    segmentation cell on ``dataset``: each record's ``per_class`` values, means over test volumes.

    Records written before HD95 was recorded give a Dice-only table (one column per organ)."""
    recs = [r for r in recs if isinstance((r.extra or {}).get("per_class"), dict) and r.extra["per_class"]]
    if not recs:
        return None
    organs = list(recs[0].extra["per_class"])
    units = sorted({str(r.extra["hd95"].get("unit", "px")) for r in recs
                    if isinstance(r.extra.get("hd95"), dict)})
    metrics = [("dice", "Dice")] + ([("hd95", f"HD95 ({'/'.join(units)})")] if units else [])
    columns = ([Column(o, label) for o in organs for _, label in metrics] if units
               else [Column("", o) for o in organs])
    hd_note = (f" HD95: 95th-percentile Hausdorff distance, lower is better, in {' / '.join(units)} "
               f"({CONVENTION})." if units else "")
    table = Table(f"perorgan_{stem(dataset)}", 0, f"{'Dice and HD95' if units else 'Dice'} per organ on "
                  f"{dataset_label(dataset)} (test volumes, mean over volumes where the organ is "
                  f"present).{hd_note} {MARKS_NOTE}", CELL_HEADER, [], columns, extended=True,
                  title=f"Per-organ {'Dice and HD95' if units else 'Dice'}, {dataset_label(dataset)}")
    for rec in recs:
        per_class = rec.extra["per_class"]
        if list(per_class) != organs:
            continue
        table.rows.append(_row(rec))
        for o, organ in enumerate(organs):
            for m, (name, _) in enumerate(metrics):
                value = (per_class[organ] or {}).get(name)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    table.entries[(len(table.rows) - 1, o * len(metrics) + m)] = Entry(
                        float(value), higher_is_better=HIGHER_IS_BETTER[name], cell_id=rec.cell_id,
                        metric=name)
    return table


def test_set_table(dataset: str, recs: list[CellResult], predictions) -> Table | None:
    """Test items, patients, positives and prevalence per finding, from one cell's predictions."""
    for rec in recs:
        pred = predictions.get(rec.cell_id) if rec.cell_id in predictions else None
        if pred is not None and pred.labels is not None:
            break
    else:
        return None
    n_classes = 1 if pred.label_kind == "binary" else np.shape(pred.scores)[-1]
    prev = prevalence(pred.labels, pred.label_kind, n_classes)
    names = class_names(rec, n_classes)
    table = Table(f"testset_{stem(dataset)}", 0, f"Test set of {dataset_label(dataset)}: items, patients "
                  "and, per finding, the items with a known label, the positives and the prevalence.",
                  ("Finding",), [(n,) for n in names],
                  [Column("", t, "text") for t in ("Test items", "Patients", "Labelled", "Positives",
                                                   "Prevalence")], extended=True,
                  title=f"Test set, {dataset_label(dataset)}")
    truth = truths(pred.labels, pred.label_kind, n_classes)
    for r, name in enumerate(names):
        known = ~np.isnan(truth[:, r])
        texts = [str(len(pred.ids)), str(len(set(pred.groups.tolist()))), str(int(known.sum())),
                 str(int(np.nansum(truth[:, r]))), f"{100 * prev[r]:.1f}%"]
        for c, text in enumerate(texts):
            table.entries[(r, c)] = Entry(math.nan, shown=text)
    return table


def operating_point_table(dataset: str, recs: list[CellResult], predictions) -> Table | None:
    """Sensitivity / specificity per finding of every cell with predictions, at OPERATING_POINT."""
    rows: list[tuple[CellResult, Any]] = [(r, predictions.get(r.cell_id)) for r in recs
                                          if r.cell_id in predictions]
    rows = [(r, p) for r, p in rows if p is not None and p.labels is not None]
    if not rows:
        return None
    n_classes = 1 if rows[0][1].label_kind == "binary" else np.shape(rows[0][1].scores)[-1]
    names = class_names(rows[0][0], n_classes)
    table = Table(f"operating_{stem(dataset)}", 0, f"Sensitivity / specificity on {dataset_label(dataset)} "
                  f"(test set) at a stated operating point: {OPERATING_POINT}; mean over runs; "
                  "macro: mean over findings.", CELL_HEADER, [],
                  [Column("", n, "text") for n in (*names, "Macro")], extended=True,
                  title=f"Sensitivity / specificity, {dataset_label(dataset)}")
    for rec, pred in rows:
        pairs = [sensitivity_specificity(pred.labels, run, pred.label_kind) for run in pred.scores]
        sens, spec = _mean([p[0] for p in pairs]), _mean([p[1] for p in pairs])
        if len(sens) != n_classes:
            continue
        table.rows.append(_row(rec))
        values = [*zip(sens, spec), (_mean(sens[:, None])[0], _mean(spec[:, None])[0])]
        for c, (a, b) in enumerate(values):
            table.entries[(len(table.rows) - 1, c)] = Entry(math.nan, cell_id=rec.cell_id,
                                                            shown=f"{_fmt(a)} / {_fmt(b)}")
    return table


def _mean(rows) -> np.ndarray:
    """Mean over the first axis, ignoring NaN; NaN (no warning) where a column has no value."""
    a = np.asarray(rows, dtype=float)
    n = np.sum(~np.isnan(a), axis=0)
    return np.where(n > 0, np.nansum(a, axis=0) / np.maximum(n, 1), np.nan)


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "—"


def clinical_tables(records: Iterable[CellResult], predictions) -> dict[str, Table]:
    """Every clinical table the records and their predictions support, keyed by file stem."""
    out: dict[str, Table] = {}
    records = list(records)
    for dataset, recs in _cells(records, "segmentation").items():
        table = per_organ_table(dataset, recs)
        if table is not None and table.rows:
            out[table.key] = table
    for dataset, recs in _cells(records, "classification").items():
        for make in (lambda: per_class_table(dataset, recs),
                     lambda: test_set_table(dataset, recs, predictions),
                     lambda: operating_point_table(dataset, recs, predictions)):
            table = make()
            if table is not None and table.rows:
                out[table.key] = table
    return out
