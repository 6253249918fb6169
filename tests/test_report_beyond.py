"""Issue 24: the report's "Beyond the study" section: tables beside DINOv2 ViT-g/14, extended Figure 1."""

from __future__ import annotations

import csv
import io

from radbench_core.core.results import CellResult, Metric
from radbench_core.report import build_report
from radbench_core.report.beyond import EXTENDED_FIGURE1, beyond_markdown, extended_ranking
from radbench_core.report.ranking import FIGURE1_MODELS, rank_models

G14, L14, RAD, SIG = "dinov2_vitg14", "dinov2_vitl14", "rad_dino", "medsiglip_448"


def rec(model: str, dataset: str, protocol: str, value: float, variant: str = "") -> CellResult:
    seg = protocol.startswith("seg")
    metrics = {"dice_jaccard" if seg else "auroc": Metric(value)}
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""), model=model,
                      dataset=dataset, protocol=protocol, variant=variant,
                      task="segmentation" if seg else "classification", modality="xray", profile="t",
                      metrics=metrics, weights="w")


RECORDS = [rec(G14, "nih", "linear", .80), rec(L14, "nih", "linear", .78), rec(RAD, "nih", "linear", .85),
           rec(SIG, "nih", "linear", .70), rec(G14, "chexpert", "linear", .88), rec(L14, "chexpert", "linear", .86),
           rec(RAD, "chexpert", "linear", .87), rec(SIG, "chexpert", "linear", .89),
           rec(G14, "mc", "seg_unet", .90, "224"), rec(RAD, "mc", "seg_unet", .93, "224"),
           rec(L14, "mc", "seg_unet", .91, "224"), rec(SIG, "mc", "seg_unet", .85, "224"),
           rec("clip_vitl14", "nih", "linear", .75)]


def test_section_shows_each_value_and_its_difference_to_vitg14() -> None:
    text, _ = beyond_markdown(RECORDS)
    row = next(line for line in text.splitlines() if line.startswith("| RAD-DINO"))
    assert "0.850 (+0.050)" in row and "0.870 (-0.010)" in row and "medical" in row
    g14 = next(line for line in text.splitlines() if line.startswith("| DINOv2 ViT-g/14 (study)"))
    assert "| 0.800 |" in g14 and "(" not in g14.split("|", 3)[3]
    assert "## Classification: linear" in text and "## Segmentation: seg_unet@224" in text
    assert "CLIP ViT-L/14" not in text.split("## Figure 1")[0]        # only the section's models in tables


def test_extended_ranking_follows_figure1s_rule_by_hand() -> None:
    ranking = extended_ranking(RECORDS)
    table = ranking.table.set_index("model")
    # classification: only NIH is complete for the 5 ranked models (CLIP has no CheXpert) -> NIH scores:
    # RAD .85 -> 5, G14 .80 -> 4, L14 .78 -> 3, CLIP .75 -> 2, SIG .70 -> 1
    assert table.loc[RAD, "cls_rank"] == 1 and table.loc["clip_vitl14", "cls_rank"] == 4
    assert table.loc[SIG, "cls_rank"] == 5 and table.loc[RAD, "n_cls_datasets"] == 1
    # segmentation on MC: RAD .93, L14 .91, G14 .90, SIG .85
    assert [table.loc[m, "seg_rank"] for m in (RAD, L14, G14, SIG)] == [1, 2, 3, 4]
    # the study's own Figure 1 is untouched: the new models are not in it
    assert set(rank_models(RECORDS).table["model"]) <= set(FIGURE1_MODELS)
    assert set(EXTENDED_FIGURE1) > set(FIGURE1_MODELS)


def test_no_section_without_a_new_model_and_files_written_with_one(tmp_path) -> None:
    assert beyond_markdown([r for r in RECORDS if r.model in (G14, L14)]) is None
    build_report(RECORDS, tmp_path)
    rows = [r for r in csv.reader(io.StringIO((tmp_path / "fig1_ranking_extended.csv").read_text()))
            if r and not r[0].startswith("#")]
    assert rows[0][:2] == ["model", "label"] and {r[0] for r in rows[1:]} == {G14, L14, RAD, SIG, "clip_vitl14"}
    assert (tmp_path / "beyond_the_study.md").read_text().startswith("# Beyond the study")
    build_report([r for r in RECORDS if r.model == G14], tmp_path)
    assert not (tmp_path / "beyond_the_study.md").exists()


def test_paired_test_against_vitg14_is_holm_corrected_over_the_tables_models() -> None:
    import numpy as np
    from radbench_core.eval.multiple import holm
    from radbench_core.eval.paired import paired_bootstrap
    from radbench_core.eval.predictions import classification_predictions
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    ids, groups = [f"i{k}" for k in range(n)], [f"p{k // 2}" for k in range(n)]
    good = y + rng.normal(0, 0.6, n)
    preds = {f"{G14}-nih-linear": classification_predictions(ids, groups, y, good, "binary"),
             f"{RAD}-nih-linear": classification_predictions(ids, groups, y, rng.normal(0, 1, n), "binary"),
             f"{SIG}-nih-linear": classification_predictions(ids, groups, y, good + rng.normal(0, 0.05, n), "binary")}
    text, _ = beyond_markdown(RECORDS, preds, resamples=200)
    raw = [paired_bootstrap(preds[f"{G14}-nih-linear"], preds[f"{m}-nih-linear"], "auroc", resamples=200).p_value
           for m in (RAD, SIG)]
    want = holm(raw)
    rad_row = next(line for line in text.splitlines() if line.startswith("| RAD-DINO"))
    sig_row = next(line for line in text.splitlines() if line.startswith("| MedSigLIP"))
    assert f"p={want[0]:.3g}*" in rad_row and want[0] < 0.05
    assert f"p={want[1]:.3g})" in sig_row and want[1] >= 0.05
    assert "p=" not in rad_row.split("|")[4]                  # CheXpert: no predictions, no test
