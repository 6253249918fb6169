"""The study's published numbers as data: fed back in, every study table is the study's table.

The expectation is read from the shipped CSV independently (pandas), in the study's print order:
rows in order of first appearance of (method, architecture), columns of (dataset, protocol).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd
import pytest

from radbench_core.report.frame import headline_frame
from radbench_core.report.layouts import LAYOUTS
from radbench_core.report.published import (PUBLISHED_WEIGHTS, compare_to_published,
                                            published_index, published_records)
from radbench_core.report.tables import DEMO_NOTE, build_tables
from radbench_core.core.results import CellResult, Metric

CSV = pd.read_csv(resources.files("radbench_core.report").joinpath("published_tables.csv").open(),
                  comment="#", dtype={"value": str})


@pytest.fixture(scope="module")
def tables():
    return build_tables(headline_frame(published_records()))


def test_data_file_counts_and_one_value_per_cell():
    assert len(CSV) == 179 and sorted(CSV["table"].unique()) == [f"T{n}" for n in range(3, 10)]
    assert CSV.groupby("table").size().to_dict() == {"T3": 32, "T4": 60, "T5": 40, "T6": 20, "T7": 15,
                                                     "T8": 4, "T9": 8}
    index = published_index()
    assert len(index) == 143 == len(published_records())           # 36 numbers printed twice
    assert index["dinov2_vitl14-nih-linear"] == 0.763                 # T3 and T4 agree
    assert index["dinov2_vitg14-amos-seg_unet@448"] == 0.642          # T5 and T6 agree
    assert index["unet-msd_hippocampus-scratch@448"] == 0.593
    assert index["vit_l16_in21k-msd_heart-seg_unet@224"] == 0.825
    assert index["sam_vitl16-chexpert-linear_subset@1024"] == 0.792
    assert index["dinov2_vitg14-brain_tumor-linear"] == 0.976          # CSV spells it "braintumor"


def test_published_records_are_marked_and_carry_the_study_metric():
    recs = {r.cell_id: r for r in published_records()}
    assert all(r.weights == PUBLISHED_WEIGHTS and not r.is_demo for r in recs.values())
    seg = recs["mae_vitl16-amos-seg_unet@224"]
    assert seg.task == "segmentation" and seg.modality == "ct"
    assert seg.metrics["dice_jaccard_study"].value == seg.metrics["dice_jaccard"].value == 0.547
    assert recs["dinov2_vits14-sarscov2-linear"].metrics == {"auroc": Metric(0.943)}
    assert all(CellResult.from_dict(r.to_dict()) == r for r in recs.values())


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.key)
def test_every_study_table_is_the_studys_table(layout, tables):
    rows_csv = CSV[CSV["table"] == f"T{layout.number}"]
    t = tables[layout.key]
    by_protocol = layout.number == 9                     # T9's rows are protocols of one model
    row_keys = list(dict.fromkeys(rows_csv["protocol"] if by_protocol
                                  else zip(rows_csv["method"], rows_csv["arch"])))
    col_keys = list(dict.fromkeys(rows_csv["dataset"] if by_protocol
                                  else zip(rows_csv["dataset"], rows_csv["protocol"])))
    metric_cols = [c for c, col in enumerate(t.columns) if col.kind == "metric"]
    assert len(t.rows) == len(row_keys) and len(metric_cols) == len(col_keys)
    assert t.missing == 0 and "missing from this run" not in t.caption
    assert "published numbers" in t.caption and DEMO_NOTE not in t.caption
    for row in rows_csv.itertuples():
        r = row_keys.index(row.protocol if by_protocol else (row.method, row.arch))
        c = metric_cols[col_keys.index(row.dataset if by_protocol else (row.dataset, row.protocol))]
        assert t.text(r, c) == row.value, (row, t.rows[r], t.columns[c])
        if not by_protocol:
            assert t.rows[r][0] == row.method
            assert t.rows[r][1].split("_{")[0] == row.arch.split("@")[0]
    filled = [k for k in t.entries if k[1] in metric_cols]
    assert len(filled) == len(rows_csv)                  # nothing extra, nothing missing


def test_study_marks_best_and_second(tables):
    t4 = tables["table4_knn_linear_finetune"]
    c = [col.title for col in t4.columns].index("CheXpert / Linear-probing")
    best, second = t4.ranked_rows(c)
    # the study underlines DINOv2 ViT-L/14's 0.821 (second to supervised ViT-L/16's 0.829)
    assert [t4.rows[r] for r in best] == [("Supervised", "ViT-L/16")]
    assert [t4.rows[r] for r in second] == [("DINOv2", "ViT-L/14")]
    t6 = tables["table6_dinov2_vs_scratch"]
    mc = [col.label for col in t6.columns].index("MC")
    best, second = t6.ranked_rows(mc)                    # 0.974 twice, 0.973 twice
    assert {t6.rows[r][1] for r in best} == {"TransUnet", "ViT-L/14"}
    assert {t6.rows[r][1] for r in second} == {"U-Net", "ViT-g/14"}


def test_parameter_columns_are_computed_with_one_output_class():
    # the same cells as a run's (not the study's records, whose tables print the study's counts)
    import dataclasses
    run = [dataclasses.replace(r, weights="official") for r in published_records()
           if r.cell_id.split("-")[0] in ("unet", "transunet", "dinov2_vitl14", "dinov2_vitg14")]
    tables = build_tables(headline_frame(run))
    t6, t9 = tables["table6_dinov2_vs_scratch"], tables["table9_finetune_lora_bitfit"]
    assert [c.label for c in t6.columns[:2]] == ["Trainable Params. (%)", "Total Params."]
    assert (0, 0) in t6.entries          # a counter that raises must fail here, never skip
    assert t6.text(0, 0) == "31M (100%)" and t6.text(0, 1) == "31M"          # U-Net, as printed
    assert t6.text(2, 0).endswith("(5%)") and t6.text(3, 0).endswith("(3%)")  # frozen ViT-L, ViT-g
    lin = t9.rows.index(("Linear-probing",))
    assert t9.text(lin, 0).startswith("1,537 (")          # ViT-g/14: 1536 weights + 1 bias
    assert 1e-4 < 100 * t9.entries[(lin, 0)].value / t9.entries[(lin, 0)].total < 2e-4
    assert t9.text(t9.rows.index(("Fine-tuning",)), 0).endswith("(100%)")


def test_figure1_ranks_dinov2_first_and_second_from_published_numbers():
    from radbench_core.report.ranking import FIGURE1_MODELS, rank_models
    recs = [r for r in published_records() if r.model in FIGURE1_MODELS]
    table = rank_models(recs).table.set_index("model")
    assert set(table.index) == set(FIGURE1_MODELS)
    assert table.loc["dinov2_vitl14", "cls_rank"] == 1 and table.loc["dinov2_vitg14", "cls_rank"] == 2


def test_compare_to_published_in_and_outside_the_ci():
    recs = [CellResult("dinov2_vitl14-nih-linear", "dinov2_vitl14", "nih", "linear", "",
                       "classification", "xray", "paper", {"auroc": Metric(0.770, True, 0.760, 0.780)},
                       weights="official"),
            CellResult("dinov2_vitl14-mc-seg_unet@448", "dinov2_vitl14", "mc", "seg_unet", "448",
                       "segmentation", "xray", "paper",
                       {"dice_jaccard": Metric(0.950, True, 0.94, 0.96),
                        "dice_jaccard_study": Metric(0.970, True, 0.965, 0.972)}, weights="official"),
            CellResult("clip_vitl14-amos-seg_unet@448", "clip_vitl14", "amos", "seg_unet", "448",
                       "segmentation", "ct", "paper", {"dice_jaccard": Metric(0.5)}, weights="official")]
    cmp = compare_to_published(headline_frame(recs + published_records()[:3])).set_index("cell_id")
    assert list(cmp.index) == ["dinov2_vitl14-nih-linear", "dinov2_vitl14-mc-seg_unet@448"]
    nih, mc = cmp.loc["dinov2_vitl14-nih-linear"], cmp.loc["dinov2_vitl14-mc-seg_unet@448"]
    assert nih["published"] == 0.763 and nih["delta"] == pytest.approx(0.007) and nih["inside_ci"]
    assert mc["metric"] == "dice_jaccard_study" and mc["ours"] == 0.970
    assert mc["delta"] == pytest.approx(-0.004) and mc["inside_ci"] == False   # 0.974 > 0.972  # noqa: E712
