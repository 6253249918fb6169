"""Significance marks in the report: a cell that ranks like the column's best is marked ≈, a
chance-level one is not; the caption explains the mark; the HTML report has the significance view;
compare-models prints the matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radbench_core.eval.predictions import classification_predictions, save_predictions
from radbench_core.report import build_report
from radbench_core.report.frame import headline_frame
from radbench_core.report.tables import TIED_MARK, build_tables, to_latex, to_markdown
from radbench_core.core.results import CellResult, Metric
from radbench_core.report.marks import format_matrix, group_matrices, run_predictions


def _cells(run_dir, n=400, seed=0) -> list[CellResult]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    strong = y * 1.5 + rng.normal(0, 1, n)
    scores = {"dinov2_vitg14": strong, "dinov2_vitl14": 3 * strong - 2,      # same ranking: tied
              "dinov2_vits14": rng.normal(0, 1, n)}                          # chance
    ids, groups = [f"img{i}.png" for i in range(n)], [f"p{i // 2}" for i in range(n)]
    out = []
    for model, s in scores.items():
        cell_id = f"{model}-nih-linear"
        rel = save_predictions(run_dir, cell_id, classification_predictions(ids, groups, y, s, "binary"))
        value = roc_auc_score(y, s) - (1e-4 if model == "dinov2_vitl14" else 0.0)   # g ranks first
        out.append(CellResult(cell_id=cell_id, model=model, dataset="nih", protocol="linear", variant="",
                              task="classification", modality="xray", profile="test",
                              metrics={"auroc": Metric(value, True, None, None)}, weights="official",
                              wall_time_s=1.0, extra={"predictions": rel}))
    return out


def test_tables_mark_entries_not_different_from_the_best(tmp_path):
    records = _cells(tmp_path)
    tables = build_tables(headline_frame(records), predictions=run_predictions(records, [tmp_path]))
    t3 = tables["table3_linear_probing"]
    text = {t3.label(r): t3.text(r, 0, compare=False) for r in range(len(t3.rows))}
    assert text["DINOv2 ViT-L/14"].endswith(TIED_MARK)
    assert not text["DINOv2 ViT-S/14"].endswith(TIED_MARK)
    assert not text["DINOv2 ViT-g/14"].endswith(TIED_MARK)         # the best itself: bold, no mark
    assert "not significantly different from the column's best" in t3.caption
    assert TIED_MARK in to_markdown(t3) and r"$\approx$" in to_latex(t3)
    # without predictions: no marks and no caption note
    plain = build_tables(headline_frame(records))["table3_linear_probing"]
    assert not plain.vs_best and TIED_MARK not in to_markdown(plain)


def test_html_report_has_the_significance_view_and_matrix_text(tmp_path):
    records = _cells(tmp_path, seed=1)
    index = build_report(records, tmp_path)
    html = index.read_text()
    assert "<h2>Significance</h2>" in html and "nih · linear" in html
    groups = group_matrices(records, run_predictions(records, [tmp_path]), resamples=300)
    assert len(groups) == 1 and groups[0]["order"][0] == "dinov2_vitg14-nih-linear"
    text = format_matrix(groups[0])
    lines = text.splitlines()
    assert len(lines) == 6 and "Holm-corrected over the 3 pairs" in lines[-2]
    assert lines[-1].startswith("DeLong p") and lines[-1].count(" vs ") == 3
    assert "*" in lines[3]                                    # the chance-level cell differs
    assert TIED_MARK in (tmp_path / "tables" / "table3_linear_probing.md").read_text()


def test_unpaired_or_missing_predictions_leave_entries_unmarked(tmp_path):
    records = _cells(tmp_path, seed=2)
    (tmp_path / records[0].extra["predictions"]).unlink()      # the best's file is gone
    tables = build_tables(headline_frame(records), predictions=run_predictions(records, [tmp_path]))
    assert not tables["table3_linear_probing"].vs_best
