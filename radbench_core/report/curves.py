"""ROC and precision-recall curves of the best classification cells, drawn from their test predictions.

Per classification dataset: the best cell of each model by test AUROC (its headline), then the
TOP_K models; one ROC figure and one PR figure (``roc_<dataset>``, ``pr_<dataset>``: PNG + SVG),
one panel per finding (a binary set: one panel), each panel with one curve per cell, AUROC or AP in
the legend and the stated operating point (``eval.operating_point``) marked. A companion table
``curves_<dataset>`` (Markdown, CSV, LaTeX, HTML) lists the same cells' AUROC / AP per finding.
Few-shot cells hold several seeds: their curves are the first seed's (the caption says so).
"""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from radbench_core.core.results import CellResult
from radbench_core.eval.curves import Curves, curves_per_class
from radbench_core.eval.operating_point import OPERATING_POINT
from radbench_core.report.clinical import CELL_HEADER, _cells, _row, class_names, stem
from radbench_core.report.figure_style import mark_demo, new_figure
from radbench_core.report.figures import model_color, save_figure
from radbench_core.report.frame import PROTOCOL_LABELS, dataset_label, headline, model_label
from radbench_core.report.table import Column, Entry, Table

TOP_K = 3
KINDS = ("roc", "pr")                    # figure stems: roc_<dataset>, pr_<dataset>
MAX_DRAWN_POINTS = 4000                  # longer curves are rasterised inside the SVG
LINE_STYLES = ("-", "--", ":")


def best_cells(recs: list[CellResult], predictions) -> list[tuple[CellResult, Any]]:
    """(record, predictions) of the best cell per model by headline AUROC, the TOP_K best models."""
    best: dict[str, tuple[float, CellResult, Any]] = {}
    for rec in recs:
        found = headline(rec)
        pred = predictions.get(rec.cell_id) if rec.cell_id in predictions else None
        if found is None or pred is None or pred.labels is None or pred.scores is None:
            continue
        if rec.model not in best or found[1].value > best[rec.model][0]:
            best[rec.model] = (found[1].value, rec, pred)
    ranked = sorted(best.values(), key=lambda t: (-t[0], t[1].cell_id))[:TOP_K]
    return [(rec, pred) for _, rec, pred in ranked]


def _label(rec: CellResult) -> str:
    protocol = PROTOCOL_LABELS.get(rec.protocol, rec.protocol)
    return f"{model_label(rec.model)}, {protocol}{f' {rec.variant}' if rec.variant else ''}"


def dataset_curves(cells: list[tuple[CellResult, Any]]) -> tuple[list[str], list[list[Curves | None]]]:
    """Finding names and, per cell, one Curves per finding (from the first run's scores)."""
    per_cell = [curves_per_class(pred.labels, np.asarray(pred.scores)[0], pred.label_kind)
                for _, pred in cells]
    return class_names(cells[0][0], len(per_cell[0])), per_cell


def _draw(ax, kind: str, curve: Curves, color, label: str, style: str = "-") -> None:
    x, y = (curve.fpr, curve.tpr) if kind == "roc" else (curve.recall, curve.precision)
    value = curve.auroc if kind == "roc" else curve.average_precision
    ax.plot(x, y, color=color, linewidth=1.2, linestyle=style, drawstyle="default" if kind == "roc" else "steps-post",
            label=f"{label}: {'AUROC' if kind == 'roc' else 'AP'} {value:.3f}",
            rasterized=len(x) > MAX_DRAWN_POINTS)
    fpr, tpr, precision = curve.point
    ax.plot(*((fpr, tpr) if kind == "roc" else (tpr, precision)), marker="o", markersize=5, color=color,
            markeredgecolor="black", linestyle="none")


def plot_curves(kind: str, dataset: str, names: list[str], cells: list[tuple[CellResult, Any]],
                per_cell: list[list[Curves | None]]):
    """One figure: a panel per finding, a curve per cell, the operating point marked."""
    n = len(names)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    width = max(5.0, 3.2 * cols)
    fig = new_figure(width, 2.9 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for c, (ax, name) in enumerate(zip(axes, names)):
        prevalence = next((cv[c].prevalence for cv in per_cell if cv[c] is not None), None)
        for k, ((rec, _), curves) in enumerate(zip(cells, per_cell)):
            if curves[c] is not None:       # colour by model, line style by rank (similar colours)
                _draw(ax, kind, curves[c], model_color(rec.model), _label(rec), LINE_STYLES[k % 3])
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=0.8)
            ax.set_xlabel("1 − specificity (FPR)", fontsize=7)
            ax.set_ylabel("Sensitivity (TPR)", fontsize=7)
        else:
            if prevalence is not None:
                ax.axhline(prevalence, color="0.6", linestyle=":", linewidth=0.8)
            ax.set_xlabel("Recall (sensitivity)", fontsize=7)
            ax.set_ylabel("Precision (PPV)", fontsize=7)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_title(name if prevalence is not None else f"{name} (one class only in the test set)",
                     fontsize=8)
        ax.tick_params(labelsize=6)
        if ax.lines:
            ax.legend(fontsize=5.5, loc="lower right" if kind == "roc" else "lower left")
    for ax in axes[n:]:
        ax.set_visible(False)
    seeds = any(np.shape(pred.scores)[0] > 1 for _, pred in cells)
    what = "ROC" if kind == "roc" else "Precision-recall"
    title = (f"{what} curves, {dataset_label(dataset)} (test set): the {len(cells)} best model(s) by "
             f"AUROC. Dot: operating point, {OPERATING_POINT}" + ("; few-shot cells: first seed" if seeds else ""))
    fig.suptitle(textwrap.fill(title, int(10 * width)) + "\n", fontsize=8)     # demo: 10 pt bold
    return mark_demo(fig) if any(rec.is_demo for rec, _ in cells) else fig


def curve_table(dataset: str, names: list[str], cells: list[tuple[CellResult, Any]],
                per_cell: list[list[Curves | None]]) -> Table:
    """AUROC / AP per finding of the plotted cells (the figures' legends as a table)."""
    table = Table(f"curves_{stem(dataset)}", 0, f"AUROC / average precision per finding of the cells drawn "
                  f"in the ROC and precision-recall figures of {dataset_label(dataset)} (test set; AP: "
                  f"step-wise, as scikit-learn): figures/roc_{stem(dataset)}.png and "
                  f"figures/pr_{stem(dataset)}.png (.svg).", CELL_HEADER, [],
                  [Column("", n, "text") for n in names], extended=True,
                  title=f"Curves' AUROC / AP, {dataset_label(dataset)}")
    for r, ((rec, _), curves) in enumerate(zip(cells, per_cell)):
        table.rows.append(_row(rec))
        for c, curve in enumerate(curves):
            if curve is not None:
                table.entries[(r, c)] = Entry(math.nan, cell_id=rec.cell_id,
                                              shown=f"{curve.auroc:.3f} / {curve.average_precision:.3f}")
    return table


def build_curves(records: Iterable[CellResult], predictions, out_dir: Path) -> tuple[dict[str, list[Path]],
                                                                                     dict[str, Table]]:
    """Draw and save every dataset's ROC / PR figures; return them and their companion tables.
    Figures of an earlier report in ``out_dir`` that this run cannot draw are removed."""
    out_dir = Path(out_dir)
    for kind in KINDS:
        for old in out_dir.glob(f"{kind}_*.*") if out_dir.is_dir() else ():
            old.unlink(missing_ok=True)
    figures: dict[str, list[Path]] = {}
    tables: dict[str, Table] = {}
    for dataset, recs in _cells(records, "classification").items():
        cells = best_cells(recs, predictions)
        if not cells:
            continue
        try:
            names, per_cell = dataset_curves(cells)
            if any(len(cv) != len(names) for cv in per_cell):
                continue                               # cells of other class sets: nothing to overlay
            for kind in KINDS:
                key = f"{kind}_{stem(dataset)}"
                figures[key] = save_figure(plot_curves(kind, dataset, names, cells, per_cell), out_dir, key)
        except Exception as exc:  # noqa: BLE001 - one odd predictions file must not cost the report
            warnings.warn(f"report: curves of {dataset} skipped ({type(exc).__name__}: {exc})",
                          RuntimeWarning, stacklevel=2)
            continue
        table = curve_table(dataset, names, cells, per_cell)
        tables[table.key] = table
    return figures, tables
