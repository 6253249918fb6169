"""Clinical detail: per-finding AUROC with the finding names, test sets (items, patients, prevalence)
and sensitivity/specificity at the stated operating point, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score

from radbench_core.core.results import CellResult, Metric
from radbench_core.eval.operating_point import prevalence, sensitivity_specificity
from radbench_core.eval.predictions import Predictions
from radbench_core.report import build_report
from radbench_core.report.clinical import class_names, clinical_tables
from radbench_core.report.marks import PredictionStore
from radbench_core.report.render import to_latex, to_markdown

FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion"]


def multilabel(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 3)) < [0.2, 0.5, 0.7]).astype(float)
    labels[:5, 0] = np.nan                                  # unknown findings are ignored
    scores = np.clip(labels + rng.normal(0, 0.45, (n, 3)), 0, 1)
    return labels, np.nan_to_num(scores, nan=0.3)


def test_sensitivity_specificity_equal_sklearn_per_finding():
    labels, scores = multilabel()
    sens, spec = sensitivity_specificity(labels, scores, "multilabel")
    for c in range(3):
        known = ~np.isnan(labels[:, c])
        y, pred = labels[known, c].astype(int), (scores[known, c] >= 0.5).astype(int)
        assert sens[c] == pytest.approx(recall_score(y, pred, pos_label=1))
        assert spec[c] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert prevalence(labels, "multilabel", 3)[0] == pytest.approx(np.nanmean(labels[:, 0]))


def test_multiclass_is_one_vs_rest_of_the_argmax_and_binary_thresholds_at_half():
    y = np.array([0, 0, 1, 2, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 2, 2, 0]] * 0.9 + 0.03
    sens, spec = sensitivity_specificity(y, scores, "multiclass")
    assert np.allclose(sens, [1 / 2, 1, 2 / 3]) and np.allclose(spec, [3 / 4, 4 / 5, 1])
    sens, spec = sensitivity_specificity(np.array([1, 1, 0, 0]), np.array([0.5, 0.4, 0.6, 0.1]), "binary")
    assert (sens[0], spec[0]) == (0.5, 0.5)
    sens, _ = sensitivity_specificity(np.zeros(3), np.full(3, 0.9), "binary")
    assert np.isnan(sens[0])                              # no positive: no sensitivity, not 0


def cell(model: str, per_class, names=FINDINGS) -> CellResult:
    return CellResult(cell_id=f"{model}-nih-linear", model=model, dataset="nih", protocol="linear",
                      variant="", task="classification", modality="xray", profile="t",
                      metrics={"auroc": Metric(float(np.mean(per_class)), True, 0.6, 0.8)},
                      weights="official", extra={"auroc_per_class": per_class, "class_names": names,
                                                 "n_items": {"test": 60}})


def store(*models: str) -> PredictionStore:
    out = {}
    for i, model in enumerate(models):
        labels, scores = multilabel(seed=i)
        out[f"{model}-nih-linear"] = Predictions("classification", [f"im{k}" for k in range(60)],
                                                 [f"p{k // 3}" for k in range(60)], "multilabel",
                                                 labels, scores[None].astype(np.float32))
    return PredictionStore(out)


def test_clinical_tables_name_the_findings_and_count_the_test_set():
    recs = [cell("dinov2_vitl14", [0.8, 0.7, 0.9]), cell("resnet152", [0.6, 0.75, 0.5])]
    tables = clinical_tables(recs, store("dinov2_vitl14", "resnet152"))
    assert sorted(tables) == ["operating_nih", "perclass_nih", "testset_nih"]
    per = tables["perclass_nih"]
    assert [c.label for c in per.columns] == FINDINGS
    assert per.text(0, 1, compare=False) == "0.700" and per.ranked_rows(1) == ({1}, {0})
    assert "| Atelectasis | Cardiomegaly | Effusion |" in to_markdown(per)
    test = tables["testset_nih"]
    labels, _ = multilabel(seed=0)
    row = [test.text(1, c) for c in range(5)]
    assert row == ["60", "20", "60", str(int(labels[:, 1].sum())), f"{100 * labels[:, 1].mean():.1f}%"]
    assert test.text(0, 2) == "55"                            # five unknown Atelectasis labels
    op = tables["operating_nih"]
    sens, spec = sensitivity_specificity(*multilabel(seed=0), "multilabel")
    assert op.text(0, 0) == f"{sens[0]:.2f} / {spec[0]:.2f}"
    assert op.text(0, 3) == f"{sens.mean():.2f} / {spec.mean():.2f}"
    assert "score >= 0.5" in op.caption and to_latex(op).isascii()


def test_records_without_names_fall_back_and_binary_takes_the_positive_name():
    assert class_names(cell("m", [0.7, 0.6], names=None), 2) == ["class 1", "class 2"]
    assert class_names(cell("m", [0.7], names=["normal", "COVID-19"]), 1) == ["COVID-19"]


def test_report_has_a_clinical_section_with_files(tmp_path):
    recs = [cell("dinov2_vitl14", [0.8, 0.7, 0.9])]
    html = build_report(recs, tmp_path).read_text()
    assert "<h2>Clinical detail</h2>" in html and "Per-finding AUROC, NIH" in html
    assert "Cardiomegaly" in (tmp_path / "tables" / "perclass_nih.tex").read_text()


def test_per_organ_dice_table_names_the_organs():
    def seg(model, spleen, liver):
        return CellResult(cell_id=f"{model}-amos-seg_unet@224", model=model, dataset="amos",
                          protocol="seg_unet", variant="224", task="segmentation", modality="ct",
                          profile="t", metrics={"dice_jaccard": Metric(0.5)}, weights="official",
                          extra={"per_class": {"spleen": {"dice": spleen, "jaccard": 0.1},
                                               "liver": {"dice": liver, "jaccard": 0.1}}})
    table = clinical_tables([seg("dinov2_vitl14", 0.9, float("nan")), seg("mae_vitl16", 0.8, 0.7)],
                            PredictionStore({}))["perorgan_amos"]
    assert [c.label for c in table.columns] == ["spleen", "liver"]
    assert [table.text(r, 0, compare=False) for r in range(2)] == ["0.900", "0.800"]
    assert table.text(0, 1) == "—" and table.text(1, 1, compare=False) == "0.700"
