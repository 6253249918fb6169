"""The study's Tables 3-9 as the study printed them, plus an extended companion of each.

A study table has exactly the study's rows and columns (``layouts.py``); a study entry the run lacks
shows "—" and the caption counts them. Every run cell a study table does not take (other models,
resolutions, protocols) goes to the table's ``_extended`` companion: same columns, one row per
model (x protocol) x variant found, our headline metric. Best and second best per metric column are
marked as the study marks them. Where the study published a cell, the entry also carries the
published value, so every rendering shows ours, theirs, the difference and whether it lies in our CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from radbench_core.report.frame import (DATASET_ORDER, METRIC_LABEL, MODEL_ORDER, PROTOCOL_LABELS,
                                        dataset_label, model_label,
                                        order_key, variant_key)
from radbench_core.report.layouts import LAYOUTS, Layout, study_parameter_counts
from radbench_core.report.comparison import VS_STUDY
from radbench_core.report.published import published_index
from radbench_core.report.render import column_spans, tex_escape, to_csv, to_latex, to_markdown
from radbench_core.report.table import (ABSENT, FALLBACK, MARKS_NOTE, SIGNIFICANCE_ALPHA, TIED_MARK,
                                        Column, Entry, Table, _finite, format_count)

__all__ = ["ABSENT", "DEMO_NOTE", "TABLES", "Column", "Entry", "Table", "build_tables",
           "column_spans", "tex_escape", "to_csv", "to_latex", "to_markdown"]
DEMO_NOTE = "random-init (demo) weights — not a real result"
PUBLISHED_NOTE = "these are the study's published numbers (Baharoon et al. 2023), not a run"
PARAMS_PRINTED = "Parameter counts as the study printed them."
PARAMS_COMPUTED = ("Parameter counts with one output class, computed by radbench from the full-size "
                   "architectures (the study printed its own; they can differ).")
PROTOCOL_ORDER = ("knn", "linear", "finetune", "lora", "bitfit", "linear_subset", "seg_linear",
                  "seg_unet", "scratch")
TABLES = {lay.key: lay.title for lay in LAYOUTS}
TABLES.update({f"{lay.key}_extended": f"{lay.title} — extended (every cell of the run)"
               for lay in LAYOUTS})
TABLES["other_cells"] = "Other cells (user datasets and protocols, few-shot points, ...)"


def _num(x) -> float | None:
    return float(x) if _finite(x) else None


def _entry(rec: dict, study_metric: bool, published: dict[str, float]) -> Entry:
    pub = None if rec["is_published"] or rec["is_demo"] else published.get(rec["cell_id"])
    if study_metric and rec["task"] == "segmentation":
        if _finite(rec["study_value"]):
            return Entry(float(rec["study_value"]), _num(rec["study_ci_low"]),
                         _num(rec["study_ci_high"]), True, pub, cell_id=rec["cell_id"],
                         metric="dice_jaccard_study")
        return Entry(float(rec["value"]), _num(rec["ci_low"]), _num(rec["ci_high"]),
                     bool(rec["higher_is_better"]), pub, FALLBACK, cell_id=rec["cell_id"],
                     metric=rec["metric"])
    return Entry(float(rec["value"]), _num(rec["ci_low"]), _num(rec["ci_high"]),
                 bool(rec["higher_is_better"]), pub, cell_id=rec["cell_id"], metric=rec["metric"])


def _params_columns(layout: Layout) -> list[Column]:
    names = {"trainable_pct": ("Trainable Params. (%)", "params"), "total": ("Total Params.", "millions")}
    return [Column("", *names[p]) for p in layout.params]


def _notes(table: Table, recs: list[dict]) -> None:
    if any(r["is_demo"] for r in recs):
        table.caption += f" Weights: {DEMO_NOTE}."
    if recs and all(r["is_published"] for r in recs):
        table.caption += f" Note: {PUBLISHED_NOTE}."
    if any(e.published is not None for e in table.entries.values()):
        table.caption += (f" The study's published values of these entries, the differences and whether "
                          f"each lies inside our 95% bootstrap CI: companion table {table.key}{VS_STUDY}.")


def study_table(layout: Layout, index: dict[str, dict], published: dict[str, float]) -> Table:
    """The study's table: its rows and columns only, "—" where the run lacks an entry."""
    pcols = _params_columns(layout)
    table = Table(layout.key, layout.number, layout.caption, layout.row_header,
                  [r.labels for r in layout.rows], pcols + [Column(c.group, c.label) for c in layout.cols])
    used, counted = [], set()
    for r, row in enumerate(layout.rows):
        row_recs = []
        for c, col in enumerate(layout.cols):
            rec = index.get(layout.cell_id(row, col))
            if rec is None:
                table.missing += 1
                continue
            row_recs.append(rec)
            table.entries[(r, len(pcols) + c)] = _entry(rec, True, published)
        used += row_recs
        if pcols and row.printed and row_recs and all(x["is_published"] for x in row_recs):
            for c, shown in enumerate(row.printed):            # the study's numbers: its own counts
                table.entries[(r, c)] = Entry(float("nan"), shown=shown)
            counted.add(PARAMS_PRINTED)
            continue
        counts = study_parameter_counts(row, layout.variant if row.variant is None else row.variant)
        if counts is None and row_recs:                        # not computable here: the run's own
            best = max(row_recs, key=lambda x: _num(x["params_trainable"]) or -1.0)
            if _finite(best["params_trainable"]) and _finite(best["params_total"]):
                counts = (best["params_trainable"], best["params_total"])
        for c, col in enumerate(pcols):
            if counts is not None:
                table.entries[(r, c)] = Entry(float(counts[0] if col.kind == "params" else counts[1]),
                                              total=float(counts[1]))
                counted.add(PARAMS_COMPUTED)
    metric = METRIC_LABEL["auroc" if layout.task == "classification" else "dice_jaccard_study"]
    table.caption += "".join(f" {note}" for note in (PARAMS_PRINTED, PARAMS_COMPUTED) if note in counted)
    table.caption += f" Metric: {metric}. {MARKS_NOTE}"
    if layout.task == "segmentation" and any(e.note for e in table.entries.values()):
        table.caption += (f" {FALLBACK}: the record has no study metric; our per-volume "
                          f"{METRIC_LABEL['dice_jaccard']} is shown.")
    n = len(layout.rows) * len(layout.cols)
    if table.missing:
        table.caption += f" {table.missing} of the study's {n} entries are missing from this run (—)."
    _notes(table, used)
    return table


@dataclass(frozen=True)
class _RowKind:
    """How an extended table keys its rows: model x variant, or model x protocol x variant where the
    study's rows are protocols (Table 9). The one place that choice is made."""
    by_protocol: bool

    @property
    def header(self) -> tuple[str, ...]:
        return ("Model",) + (("Protocol",) if self.by_protocol else ()) + ("Variant",)

    def row_key(self, rec: dict) -> tuple[str, str, str]:
        return rec["model"], rec["protocol"] if self.by_protocol else "", rec["variant"]

    def column_key(self, rec: dict) -> tuple[str, str]:
        return rec["dataset"], "" if self.by_protocol else rec["protocol"]

    def labels(self, key: tuple[str, str, str]) -> tuple[str, ...]:
        model, protocol, variant = key
        return ((model_label(model),) + ((PROTOCOL_LABELS.get(protocol, protocol),) if self.by_protocol else ())
                + (variant or "default",))


def _row_order(key: tuple[str, str, str]) -> tuple:
    model, protocol, variant = key
    return order_key(MODEL_ORDER)(model), order_key(PROTOCOL_ORDER)(protocol), variant_key(variant)


def _pivot(layout: Layout, hf: pd.DataFrame, kind: _RowKind) -> dict[tuple, dict[int, dict]]:
    """row key -> {column index: record}: the run's records on the layout's columns and protocols
    (the first record of a row and column wins)."""
    protocols = layout.protocols or frozenset(hf["protocol"])
    columns = {(c.dataset, c.protocol): i for i, c in enumerate(layout.cols)}
    cells: dict[tuple, dict[int, dict]] = {}
    for rec in hf.to_dict("records"):
        c = columns.get(kind.column_key(rec))
        if c is not None and rec["protocol"] in protocols:
            cells.setdefault(kind.row_key(rec), {}).setdefault(c, rec)
    return cells


def _params_entries(recs: Iterable[dict]) -> tuple[Entry, Entry] | None:
    """(trainable with its share, total) of a row: the record with the most trainable parameters."""
    counted = [x for x in recs if _finite(x["params_trainable"]) and _finite(x["params_total"])]
    if not counted:
        return None
    best = max(counted, key=lambda x: x["params_trainable"])
    return Entry(float(best["params_trainable"]), total=float(best["params_total"])), Entry(float(best["params_total"]))


def extended_table(layout: Layout, hf: pd.DataFrame, taken: set[str],
                   published: dict[str, float]) -> Table | None:
    """Every run cell of the table's datasets and protocols, any model and variant; None if the
    study table already holds all of them."""
    kind = _RowKind(any(r.protocol for r in layout.rows))
    cells = _pivot(layout, hf, kind)
    records = [rec for row in cells.values() for rec in row.values()]
    if all(rec["cell_id"] in taken for rec in records):
        return None
    keys = sorted(cells, key=_row_order)
    has_params = bool(layout.params) and any(_finite(rec["params_trainable"]) for rec in records)
    pcols = [Column("", "Trainable (share)", "params"), Column("", "Total", "millions")] if has_params else []
    table = Table(f"{layout.key}_extended", layout.number,
                  f"Extended {layout.title.split('.')[0]}: every cell of this run on the table's "
                  "datasets and protocols, all models and input sizes.", kind.header,
                  [kind.labels(k) for k in keys], pcols + [Column(c.group, c.label) for c in layout.cols],
                  extended=True)
    for r, key in enumerate(keys):
        for c, rec in cells[key].items():
            table.entries[(r, len(pcols) + c)] = _entry(rec, False, published)
        params = _params_entries(cells[key].values()) if pcols else None
        if params:
            table.entries[(r, 0)], table.entries[(r, 1)] = params
    metric = METRIC_LABEL["auroc" if layout.task == "classification" else "dice_jaccard"]
    table.caption += f" Metric: {metric} (our headline). {MARKS_NOTE}"
    if pcols:
        table.caption += " Parameters as recorded by the run (its own class count)."
    _notes(table, records)
    return table


OTHER_KEY = "other_cells"


def other_cells_table(hf: pd.DataFrame, shown: set[str], published: dict[str, float]) -> Table | None:
    """Every run cell no study table or companion shows (a user's dataset or protocol, few-shot
    points, ...): one row per model x protocol x variant, one column per dataset, headline metric."""
    rest = [rec for rec in hf.to_dict("records") if rec["cell_id"] not in shown]
    if not rest:
        return None
    datasets = sorted({r["dataset"] for r in rest}, key=order_key(DATASET_ORDER))
    keys = sorted({(r["model"], r["protocol"], r["variant"]) for r in rest},
                  key=lambda k: (order_key(MODEL_ORDER)(k[0]), order_key(PROTOCOL_ORDER)(k[1]),
                                 variant_key(k[2])))
    rows = [(model_label(m), PROTOCOL_LABELS.get(p, p), v or "default") for m, p, v in keys]
    table = Table(OTHER_KEY, 0, "Every other cell of this run (datasets, protocols or variants no "
                  "study table takes), headline metric of each cell's task (AUROC or per-volume "
                  "(Dice + Jaccard) / 2).", ("Model", "Protocol", "Variant"), rows,
                  [Column("", dataset_label(d)) for d in datasets], extended=True)
    for rec in rest:
        r = keys.index((rec["model"], rec["protocol"], rec["variant"]))
        table.entries[(r, datasets.index(rec["dataset"]))] = _entry(rec, False, published)
    table.caption += f" {MARKS_NOTE}"
    _notes(table, rest)
    return table


def build_tables(hf: pd.DataFrame, predictions=None) -> dict[str, Table]:
    """All seven study tables (always), each followed by its extended companion when the run has
    cells the study table does not take; keyed by file stem. ``predictions`` (cell id -> a loader
    of its Predictions, see ``stats.report_marks``) adds the TIED_MARK significance marks."""
    index = {rec["cell_id"]: rec for rec in hf.to_dict("records")}
    published = published_index()
    out: dict[str, Table] = {}
    for layout in LAYOUTS:
        out[layout.key] = study_table(layout, index, published)
        taken = {layout.cell_id(r, c) for r in layout.rows for c in layout.cols}
        ext = extended_table(layout, hf, taken, published)
        if ext is not None:
            out[ext.key] = ext
    shown = {e.cell_id for t in out.values() for e in t.entries.values() if e.cell_id}
    other = other_cells_table(hf, shown, published)
    if other is not None:
        out[other.key] = other
    if predictions:
        from radbench_core.report.marks import mark_tables
        mark_tables(out.values(), predictions)
    return out
