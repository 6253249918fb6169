"""Significance marks for the report's tables, and the per-(dataset, protocol) matrices of its view.

Why here and not in ``report/tables.py``: what a table holds (the study's layout) is independent of
how two of its entries are tested; this module only reads a built Table and fills ``vs_best``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from radbench_core.core.errors import RadbenchError
from radbench_core.eval.predictions import Predictions, find_predictions, load_predictions
from radbench_core.eval.significance import Comparison, pairwise, tied_with_best
from radbench_core.eval.weighted_metrics import METRIC_KIND
from radbench_core.report.table import SIGNIFICANCE_ALPHA, TIED_MARK

RESAMPLES = 1000


class PredictionStore:
    """cell id -> Predictions, loaded on first use (a report touches each file at most once)."""

    def __init__(self, paths: Mapping[str, Path | Predictions]):
        self._paths = dict(paths)
        self._loaded: dict[str, Predictions | None] = {}

    def __contains__(self, cell_id: object) -> bool:
        return cell_id in self._paths

    def __bool__(self) -> bool:
        return bool(self._paths)

    def get(self, cell_id: str) -> Predictions | None:
        if cell_id not in self._loaded:
            source = self._paths.get(cell_id)
            try:
                self._loaded[cell_id] = (source if isinstance(source, Predictions) or source is None
                                         else load_predictions(source))
            except RadbenchError:               # unreadable file: that entry is simply not tested
                self._loaded[cell_id] = None
        return self._loaded[cell_id]


def run_predictions(records: Iterable[Any], roots: Sequence[str | Path]) -> PredictionStore:
    """The predictions files named by ``records`` (CellResults), looked up under ``roots``."""
    found = {}
    for rec in records:
        path = find_predictions(rec.extra if isinstance(rec.extra, dict) else {}, roots)
        if path is not None:
            found[rec.cell_id] = path
    return PredictionStore(found)


def _store(predictions) -> PredictionStore:
    return predictions if isinstance(predictions, PredictionStore) else PredictionStore(predictions)


def mark_table(table, predictions, *, resamples: int = RESAMPLES, seed: int = 0) -> int:
    """Fill ``table.vs_best`` for every metric column; return how many entries were tested."""
    store = _store(predictions)
    tested = 0
    for c, column in enumerate(table.columns):
        if column.kind != "metric":
            continue
        entries = {r: e for (r, cc), e in table.entries.items() if cc == c and e.cell_id}
        top = [r for r in table.ranked_rows(c)[0] if r in entries]
        if not top:
            continue
        sign = 1.0 if entries[top[0]].higher_is_better else -1.0
        best_row = max(top, key=lambda r: sign * entries[r].value)
        best = entries[best_row]
        if best.metric not in METRIC_KIND or store.get(best.cell_id) is None:
            continue
        loaded = {best.cell_id: store.get(best.cell_id)}
        rows = {}
        for r, e in entries.items():
            if r != best_row and e.metric == best.metric and store.get(e.cell_id) is not None:
                loaded[e.cell_id] = store.get(e.cell_id)
                rows[e.cell_id] = r
        p_values = tied_with_best(best.cell_id, loaded, best.metric, resamples=resamples, seed=seed)
        for cell_id, p in p_values.items():
            table.vs_best[(rows[cell_id], c)] = p
            tested += 1
    return tested


def mark_tables(tables: Iterable[Any], predictions, *, resamples: int = RESAMPLES, seed: int = 0) -> None:
    """Mark every table; a caption says what the mark means wherever an entry was tested."""
    store = _store(predictions)
    for table in tables:
        if mark_table(table, store, resamples=resamples, seed=seed):
            table.caption += (f" {TIED_MARK}: not significantly different from the column's best "
                              f"(paired bootstrap of the difference over test patients, Holm-corrected "
                              f"within the column, α = {SIGNIFICANCE_ALPHA}); tested only where both "
                              "cells recorded test predictions.")


def group_matrices(records: Iterable[Any], predictions, *, resamples: int = RESAMPLES, seed: int = 0,
                   ) -> list[dict[str, Any]]:
    """For every (dataset, protocol) with >= 2 cells with predictions: the Holm-corrected pairwise
    comparisons of their headline metric (the HTML report's significance view)."""
    from radbench_core.report.frame import headline
    store = _store(predictions)
    groups: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
    for rec in records:
        found = headline(rec)
        if found is None or store.get(rec.cell_id) is None or found[0] not in METRIC_KIND:
            continue
        groups.setdefault((rec.dataset, rec.protocol), {})[rec.cell_id] = (found[0], found[1].value)
    out = []
    for (dataset, protocol), cells in sorted(groups.items()):
        metrics = {m for m, _ in cells.values()}
        if len(cells) < 2 or len(metrics) != 1:
            continue
        metric = metrics.pop()
        order = sorted(cells, key=lambda c: -cells[c][1])
        try:
            comparisons = pairwise({c: store.get(c) for c in order}, metric, resamples=resamples, seed=seed)
        except RadbenchError:                    # different test sets (e.g. load options differ)
            continue
        out.append({"dataset": dataset, "protocol": protocol, "metric": metric, "order": order,
                    "values": {c: cells[c][1] for c in order}, "comparisons": comparisons})
    return out


def comparison_lookup(comparisons: list[Comparison]) -> dict[tuple[str, str], tuple[float, float]]:
    """(row, column) -> (row - column difference, Holm p) for both orders of every pair."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for c in comparisons:
        out[(c.a, c.b)] = (c.result.diff, c.p_holm)
        out[(c.b, c.a)] = (-c.result.diff if math.isfinite(c.result.diff) else c.result.diff, c.p_holm)
    return out


def format_matrix(group: dict[str, Any]) -> str:
    """A group of :func:`group_matrices` as plain text: row minus column, Holm p, * if significant."""
    from radbench_core.eval.significance import ALPHA
    order, values = group["order"], group["values"]
    lookup = comparison_lookup(group["comparisons"])
    width = max(len(c) for c in order)
    head = f"{'':>3} {'cell':<{width}}  {group['metric']:>10}  " + "  ".join(f"{j + 1:>17}" for j in range(len(order)))
    lines = [head]
    for i, row in enumerate(order):
        cells = []
        for col in order:
            if col == row:
                cells.append(f"{'—':>17}")
                continue
            diff, p = lookup[(row, col)]
            mark = "*" if math.isfinite(p) and p < ALPHA else " "
            cells.append(f"{diff:+.4f} p={p:.3f}{mark}".rjust(17))
        lines.append(f"{i + 1:>3} {row:<{width}}  {values[row]:>10.4f}  " + "  ".join(cells))
    lines.append(f"row - column difference of {group['metric']}; p: DeLong where it applies, else the "
                 f"paired bootstrap over test patients (normal p from its SE), Holm-corrected over the "
                 f"{len(group['comparisons'])} pairs; * p < {ALPHA}")
    delong = [c for c in group["comparisons"] if c.delong_p is not None]
    if delong:
        lines.append("DeLong p (binary AUROC, items independent, uncorrected): " + "; ".join(
            f"{order.index(c.a) + 1} vs {order.index(c.b) + 1}: {c.delong_p:.3f}" for c in delong))
    return "\n".join(lines)
