"""ROC and precision-recall curves of the best cells (eval/curves.py, report/curves.py), checked
against scikit-learn's roc_curve / precision_recall_curve / average_precision_score, and the report
files and HTML they add."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (average_precision_score, precision_recall_curve, precision_score, roc_auc_score,
                             roc_curve)

from radbench_core.core.results import CellResult, Metric
from radbench_core.eval.curves import class_curves, curves_per_class
from radbench_core.eval.operating_point import sensitivity_specificity
from radbench_core.eval.predictions import Predictions
from radbench_core.report.frame import model_label
from radbench_core.report.curves import best_cells, build_curves, dataset_curves, plot_curves
from radbench_core.report.marks import PredictionStore

FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion"]


def multilabel(seed: int, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 3)) < [0.2, 0.5, 0.7]).astype(float)
    labels[:6, 0] = np.nan                                   # unknown findings are left out
    scores = np.clip(labels + rng.normal(0, 0.5 + 0.1 * seed, (n, 3)), 0, 1)
    return labels, np.round(np.nan_to_num(scores, nan=0.3), 2)      # rounding: tied scores


@pytest.mark.parametrize("seed", range(3))
def test_binary_curves_equal_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    s = np.round(np.clip(y * 0.4 + rng.normal(0.3, 0.25, 200), 0, 1), 1)       # many ties
    cv = class_curves(y, s, s >= 0.5)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(cv.fpr, fpr)
    np.testing.assert_allclose(cv.tpr, tpr)
    precision, recall, _ = precision_recall_curve(y, s)
    np.testing.assert_allclose(cv.precision, precision)
    np.testing.assert_allclose(cv.recall, recall)
    assert cv.auroc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert cv.average_precision == pytest.approx(average_precision_score(y, s), abs=1e-12)
    fp_rate, sens, ppv = cv.point
    assert sens == pytest.approx(np.mean(s[y] >= 0.5)) and fp_rate == pytest.approx(np.mean(s[~y] >= 0.5))
    assert ppv == pytest.approx(precision_score(y, s >= 0.5))


def test_multilabel_findings_use_known_labels_and_the_operating_point_of_the_table() -> None:
    labels, scores = multilabel(0)
    curves = curves_per_class(labels, scores, "multilabel")
    sens, spec = sensitivity_specificity(labels, scores, "multilabel")
    for c, cv in enumerate(curves):
        known = ~np.isnan(labels[:, c])
        y, s = labels[known, c] == 1, scores[known, c]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(cv.fpr, fpr)
        np.testing.assert_allclose(cv.tpr, tpr)
        assert cv.average_precision == pytest.approx(average_precision_score(y, s))
        assert cv.point[:2] == pytest.approx((1 - spec[c], sens[c]))        # same point as the table
        assert cv.prevalence == pytest.approx(y.mean())


def test_multiclass_is_one_vs_rest_and_binary_takes_the_positive_column() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 90)
    p = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y] * 0.5
    p /= p.sum(1, keepdims=True)
    for c, cv in enumerate(curves_per_class(y, p, "multiclass")):
        assert cv.auroc == pytest.approx(roc_auc_score(y == c, p[:, c]))
        assert cv.point[1] == pytest.approx(np.mean(p[y == c].argmax(1) == c))   # arg-max calls
    yb = (y == 1).astype(int)
    two = np.stack([1 - p[:, 1], p[:, 1]], 1)
    (cv,) = curves_per_class(yb, two, "binary")
    assert cv.auroc == pytest.approx(roc_auc_score(yb, p[:, 1]))
    assert class_curves(np.zeros(5), np.arange(5.0), np.zeros(5)) is None     # one class only


def record(model: str, auroc: float, protocol: str = "linear", demo: bool = False) -> CellResult:
    return CellResult(cell_id=f"{model}-nih-{protocol}", model=model, dataset="nih", protocol=protocol,
                      variant="", task="classification", modality="xray", profile="t",
                      metrics={"auroc": Metric(auroc, True, auroc - 0.05, auroc + 0.05)},
                      weights="random-init (demo)" if demo else "official",
                      extra={"class_names": FINDINGS})


def store(recs: list[CellResult]) -> PredictionStore:
    out = {}
    for i, rec in enumerate(recs):
        labels, scores = multilabel(seed=i)
        out[rec.cell_id] = Predictions("classification", [f"im{k}" for k in range(80)],
                                       [f"p{k // 2}" for k in range(80)], "multilabel", labels,
                                       scores[None].astype(np.float32))
    return PredictionStore(out)


def test_best_cell_per_model_then_the_top_three_models() -> None:
    recs = [record("dinov2_vitl14", 0.80), record("dinov2_vitl14", 0.85, "knn"), record("mae_vitl16", 0.70),
            record("resnet152", 0.75), record("vgg19", 0.60), record("clip_vitl14", 0.9, "fewshot")]
    preds = store(recs[:-1])                       # the best-scoring cell has no predictions file
    chosen = [rec.cell_id for rec, _ in best_cells(recs, preds)]
    assert chosen == ["dinov2_vitl14-nih-knn", "resnet152-nih-linear", "mae_vitl16-nih-linear"]


def test_figure_draws_sklearn_curves_with_auroc_ap_and_the_operating_point() -> None:
    recs = [record("dinov2_vitl14", 0.8), record("resnet152", 0.7)]
    cells = best_cells(recs, store(recs))
    names, per_cell = dataset_curves(cells)
    assert names == FINDINGS
    roc = plot_curves("roc", "nih", names, cells, per_cell)
    ax = roc.axes[1]                                          # Cardiomegaly
    labels, scores = multilabel(seed=0)
    fpr, tpr, _ = roc_curve(labels[:, 1], scores[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), fpr)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), tpr)
    auc = roc_auc_score(labels[:, 1], scores[:, 1])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith(model_label("dinov2_vitl14")) and legend[0].endswith(f"AUROC {auc:.3f}")
    sens, spec = sensitivity_specificity(labels, scores, "multilabel")
    assert (ax.lines[1].get_xdata()[0], ax.lines[1].get_ydata()[0]) == pytest.approx((1 - spec[1], sens[1]))
    pr = plot_curves("pr", "nih", names, cells, per_cell)
    precision, recall, _ = precision_recall_curve(labels[:, 1], scores[:, 1])
    np.testing.assert_allclose(pr.axes[1].lines[0].get_xdata(), recall)
    np.testing.assert_allclose(pr.axes[1].lines[0].get_ydata(), precision)
    ap = average_precision_score(labels[:, 1], scores[:, 1])
    assert pr.axes[1].get_legend().get_texts()[0].get_text().endswith(f"AP {ap:.3f}")
    assert "operating point" in roc.get_suptitle() and "score >= 0.5" in roc.get_suptitle()


def test_report_writes_figures_table_and_html_and_removes_stale_ones(tmp_path) -> None:
    from radbench_core.report.render import to_markdown
    recs = [record("dinov2_vitl14", 0.8, demo=True), record("resnet152", 0.7, demo=True)]
    figures, tables = build_curves(recs, store(recs), tmp_path / "figures")
    assert sorted(figures) == ["pr_nih", "roc_nih"]
    assert {p.suffix for p in figures["roc_nih"]} == {".png", ".svg"} and all(p.is_file() for p in figures["pr_nih"])
    table = tables["curves_nih"]
    labels, scores = multilabel(seed=1)
    known = ~np.isnan(labels[:, 0])
    expected = (f"{roc_auc_score(labels[known, 0], scores[known, 0]):.3f} / "
                f"{average_precision_score(labels[known, 0], scores[known, 0]):.3f}")
    assert table.text(1, 0) == expected and expected in to_markdown(table)
    (tmp_path / "figures" / "roc_old.png").write_bytes(b"x")
    assert build_curves(recs, PredictionStore({}), tmp_path / "figures") == ({}, {})
    assert not list((tmp_path / "figures").glob("roc_*"))        # stale curves removed


def test_html_report_embeds_curves_in_the_clinical_section(tmp_path, monkeypatch) -> None:
    import radbench_core.report.marks as marks
    from radbench_core.report import build_report
    recs = [record("dinov2_vitl14", 0.8), record("resnet152", 0.7)]
    preds = store(recs)
    monkeypatch.setattr(marks, "run_predictions", lambda records, roots: preds)
    html = build_report(recs, tmp_path).read_text()
    clinical = html[html.index("<h2>Clinical detail</h2>"):]
    assert "ROC curves, nih" in clinical and "Precision-recall curves, nih" in clinical
    assert 'src="data:image/png;base64,' in clinical and "Curves&#x27; AUROC / AP" in clinical
    assert (tmp_path / "tables" / "curves_nih.md").is_file() and (tmp_path / "figures" / "pr_nih.svg").is_file()
