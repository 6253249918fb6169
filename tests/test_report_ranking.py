"""Figure 1's ranking: the study's published numbers, hand-computed scores, the missing-value rule."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.report.ranking import (CSV_COLUMNS, FIGURE1_MODELS, RANK_COLUMNS, figure1_cells,
                                          figure1_csv, rank_figure1, rank_models)
from radbench_core.core.results import DEMO_WEIGHTS, CellResult, Metric

CLIP, OCLIP, MAE, MSN, L14, G14 = FIGURE1_MODELS
# The study's published values (T3/T4 linear AUROC; T5 U-Net decoder (Dice + Jaccard)/2), typed in.
PUB_CLS = {
    "nih": {L14: .763, G14: .759, MAE: .724, MSN: .742, CLIP: .739, OCLIP: .737,
            "vit_l16_in21k": .751, "densenet201": .735},
    "chexpert": {L14: .821, G14: .818, MAE: .789, MSN: .753, CLIP: .816, OCLIP: .814,
                 "vit_l16_in21k": .829},
    "sarscov2": {L14: .950, G14: .978, "vit_l16_in21k": .983},
    "brain_tumor": {L14: .974, G14: .976, "vit_l16_in21k": .975},
}
PUB_SEG_224 = {
    "mc": {MAE: .969, MSN: .961, CLIP: .955, OCLIP: .962, L14: .966, G14: .966},
    "amos": {MAE: .547, MSN: .407, CLIP: .445, OCLIP: .501, L14: .512, G14: .511},
    "msd_heart": {MAE: .864, MSN: .810, CLIP: .762, OCLIP: .793, L14: .792, G14: .804},
    "msd_hippocampus": {MAE: .799, MSN: .788, CLIP: .748, OCLIP: .779, L14: .812, G14: .761},
    "msd_spleen": {MAE: .853, MSN: .784, CLIP: .747, OCLIP: .803, L14: .813, G14: .802},
}
PUB_SEG_448 = {"mc": {L14: .974, G14: .973}, "amos": {L14: .592, G14: .642},
               "msd_heart": {L14: .869, G14: .875}, "msd_hippocampus": {L14: .789, G14: .729},
               "msd_spleen": {L14: .898, G14: .900}}


def published_frame() -> pd.DataFrame:
    rows = [{"model": m, "dataset": d, "task": "classification", "protocol": "linear", "variant": "",
             "value": v} for d, vals in PUB_CLS.items() for m, v in vals.items()]
    for size, table in (("224", PUB_SEG_224), ("448", PUB_SEG_448)):
        rows += [{"model": m, "dataset": d, "task": "segmentation", "protocol": "seg_unet",
                  "variant": size, "value": v} for d, vals in table.items() for m, v in vals.items()]
    return pd.DataFrame(rows)


def test_published_numbers_rank_dinov2_first_and_second_in_classification():
    r = rank_figure1(published_frame())
    t = r.table.set_index("model")
    assert list(r.table["model"]) == list(FIGURE1_MODELS)            # supervised models left out
    # NIH: L 6, g 5, MSN 4, CLIP 3, OpenCLIP 2, MAE 1; CheXpert: L 6, g 5, CLIP 4, OpenCLIP 3,
    # MAE 2, MSN 1. SARS-CoV-2 / Brain tumor have only L and g: left out.
    assert t["cls_score"].to_dict() == {CLIP: 3.5, OCLIP: 2.5, MAE: 1.5, MSN: 2.5, L14: 6.0, G14: 5.0}
    assert t["cls_rank"].to_dict() == {CLIP: 3.0, OCLIP: 4.5, MAE: 6.0, MSN: 4.5, L14: 1.0, G14: 2.0}
    assert set(t["n_cls_datasets"]) == {2} and set(t["n_seg_datasets"]) == {5}
    # segmentation at 224 px (448 px ignored): MC L = g tie 4.5; sums MAE 29, L 22.5, g 17.5,
    # OpenCLIP 16, MSN 14, CLIP 6 over 5 datasets
    assert np.allclose(t.loc[[MAE, L14, G14, OCLIP, MSN, CLIP], "seg_score"],
                       [5.8, 4.5, 3.5, 3.2, 2.8, 1.2])
    assert t["seg_rank"].to_dict() == {MAE: 1.0, L14: 2.0, G14: 3.0, OCLIP: 4.0, MSN: 5.0, CLIP: 6.0}
    assert r.rule == {"classification": "complete datasets", "segmentation": "complete datasets"}
    assert any("sarscov2 left out (2 of 6" in n for n in r.notes)
    assert any("brain_tumor left out (2 of 6" in n for n in r.notes)
    assert all("at 224 px" in n for n in r.notes if "U-Net" in n)


def test_typed_values_match_the_study_csv():
    # the repo's copy of the study's CSV (its body is byte-identical to shared/study's; a comment line
    # on top): no test reads a file outside the repo
    path = Path(__file__).resolve().parents[1] / "radbench_core" / "report" / "published_tables.csv"
    text = "".join(ln for ln in path.read_text().splitlines(keepends=True) if not ln.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(text)))
    name = {("MAE", "ViT-L/16"): MAE, ("MSN", "ViT-L/16"): MSN, ("CLIP", "ViT-L/14"): CLIP,
            ("OpenCLIP", "ViT-H/14"): OCLIP, ("DINOv2", "ViT-L/14"): L14, ("DINOv2", "ViT-g/14"): G14,
            ("Supervised", "ViT-L/16"): "vit_l16_in21k", ("Supervised", "DenseNet201"): "densenet201"}
    checked = 0
    for row in rows:
        arch, _, size = row["arch"].partition("@")
        model = name.get((row["method"], arch))
        dataset = "brain_tumor" if row["dataset"] == "braintumor" else row["dataset"]
        table = {("linear", ""): PUB_CLS, ("seg_unet", "224"): PUB_SEG_224,
                 ("seg_unet", "448"): PUB_SEG_448}.get((row["protocol"], size))
        if model and table and row["table"] in ("T3", "T4", "T5") and model in table.get(dataset, {}):
            assert table[dataset][model] == float(row["value"]), row
            checked += 1
    assert checked >= 60


def test_published_records_rank_dinov2_first():
    from radbench_core.report import published
    t = rank_models(published.published_records()).table.set_index("model")
    assert t.loc[L14, "cls_rank"] == 1.0 and t.loc[G14, "cls_rank"] == 2.0
    assert t.loc[MAE, "seg_rank"] == 1.0


def cell(model, dataset, value, task="classification", protocol="linear", variant="", **kw):
    return {"model": model, "dataset": dataset, "task": task, "protocol": protocol,
            "variant": variant, "value": value, **kw}


def test_ties_lower_is_better_and_hand_computed_ranks():
    rows = [cell(L14, "nih", .9), cell(CLIP, "nih", .8), cell(MAE, "nih", .8),
            cell(L14, "chexpert", .7), cell(CLIP, "chexpert", .9), cell(MAE, "chexpert", .8)]
    t = rank_figure1(pd.DataFrame(rows)).table.set_index("model")
    # nih: L 3, CLIP 1.5, MAE 1.5; chexpert: CLIP 3, MAE 2, L 1 -> L 2.0, CLIP 2.25, MAE 1.75
    assert t["cls_score"].to_dict() == {CLIP: 2.25, MAE: 1.75, L14: 2.0}
    assert t["cls_rank"].to_dict() == {CLIP: 1.0, MAE: 3.0, L14: 2.0}
    assert t["seg_rank"].isna().all() and set(t["n_seg_datasets"]) == {0}
    low = [cell(L14, "nih", .1, higher_is_better=False), cell(CLIP, "nih", .2, higher_is_better=False)]
    assert rank_figure1(pd.DataFrame(low)).table.set_index("model")["cls_rank"].to_dict() == \
        {CLIP: 2.0, L14: 1.0}


def test_no_complete_dataset_scales_ranks_onto_1_to_n():
    # 4 models in the task; nih has L, CLIP, MAE; chexpert has CLIP, MSN; none complete.
    rows = [cell(L14, "nih", .9), cell(CLIP, "nih", .8), cell(MAE, "nih", .7),
            cell(CLIP, "chexpert", .6), cell(MSN, "chexpert", .7)]
    r = rank_figure1(pd.DataFrame(rows))
    t = r.table.set_index("model")
    # nih: 3, 2, 1 -> 1 + 3 (s - 1) / 2 = 4, 2.5, 1; chexpert: MSN 4, CLIP 1 -> CLIP (2.5 + 1) / 2
    assert t["cls_score"].to_dict() == {CLIP: 1.75, MAE: 1.0, MSN: 4.0, L14: 4.0}
    assert t["cls_rank"].to_dict() == {CLIP: 3.0, MAE: 4.0, MSN: 1.5, L14: 1.5}
    assert t["n_cls_datasets"].to_dict() == {CLIP: 2, MAE: 1, MSN: 1, L14: 1}
    assert r.rule == {"classification": "scaled"}
    alone = rank_figure1(pd.DataFrame([cell(L14, "nih", .9), cell(CLIP, "chexpert", .5)]))
    assert alone.table["cls_score"].tolist() == [1.5, 1.5]                  # the middle of 1..2


def test_segmentation_size_and_study_metric():
    seg = dict(task="segmentation", protocol="seg_unet")
    # no 224: 112 has three models, 448 two -> 112
    rows = [cell(L14, "mc", .7, variant="112", **seg), cell(CLIP, "mc", .8, variant="112", **seg),
            cell(MAE, "mc", .6, variant="112", **seg), cell(L14, "mc", .99, variant="448", **seg),
            cell(CLIP, "mc", .1, variant="448", **seg)]
    t = rank_figure1(pd.DataFrame(rows)).table.set_index("model")
    assert t["seg_score"].to_dict() == {CLIP: 3.0, MAE: 1.0, L14: 2.0}
    # equal counts at 112 and 448 and no 224: nearest 224 wins (112 is 112 away, 448 224 away)
    tie = [cell(L14, "mc", .7, variant="112", **seg), cell(L14, "mc", .9, variant="448", **seg)]
    assert "at 112 px" in rank_figure1(pd.DataFrame(tie)).notes[0]
    # the study metric is used when every compared cell of the dataset has it, never mixed
    both = [cell(L14, "amos", .5, variant="224", value_study=.9, **seg),
            cell(CLIP, "amos", .6, variant="224", value_study=.1, **seg)]
    r = rank_figure1(pd.DataFrame(both))
    assert r.table.set_index("model")["seg_rank"].to_dict() == {CLIP: 2.0, L14: 1.0}
    assert set(r.scores["metric"]) == {"dice_jaccard_study"}
    both[1]["value_study"] = math.nan
    r = rank_figure1(pd.DataFrame(both))
    assert r.table.set_index("model")["seg_rank"].to_dict() == {CLIP: 1.0, L14: 2.0}
    assert "dice_jaccard (no study metric" in r.notes[0]


def rec(model, dataset, protocol, variant="", value=0.5, weights="official", study=None):
    seg = protocol.startswith("seg")
    metrics = {"dice_jaccard" if seg else "auroc": Metric(value)}
    if study is not None:
        metrics["dice_jaccard_study"] = Metric(study)
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""),
                      model=model, dataset=dataset, protocol=protocol, variant=variant,
                      task="segmentation" if seg else "classification", modality="xray", profile="t",
                      metrics=metrics, weights=weights)


def test_records_to_cells_and_csv():
    recs = [rec(L14, "nih", "linear", value=.9), rec(CLIP, "nih", "linear", value=.8, weights=DEMO_WEIGHTS),
            rec("resnet152", "nih", "linear", value=.99), rec(L14, "nih", "knn", value=.1),
            rec(CLIP, "nih", "linear", "1024", value=.99), rec(L14, "mc", "seg_unet", "224", .7, study=.8),
            rec(CLIP, "mc", "seg_unet", "224", .6, study=.9), rec(CLIP, "mc", "seg_linear", "224", .9)]
    cells = figure1_cells(recs)
    assert sorted(zip(cells["model"], cells["protocol"], cells["variant"])) == [
        (CLIP, "linear", ""), (CLIP, "seg_unet", "224"), (L14, "linear", ""), (L14, "seg_unet", "224")]
    r = rank_models(recs)
    t = r.table.set_index("model")
    assert t["seg_rank"].to_dict() == {CLIP: 1.0, L14: 2.0}                  # by the study metric
    assert t["cls_rank"].to_dict() == {CLIP: 2.0, L14: 1.0}
    assert t["is_demo"].to_dict() == {CLIP: True, L14: False} and r.is_demo
    assert list(r.table.columns) == RANK_COLUMNS
    text = figure1_csv(r)
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert "DEMO — random-init weights, not a real result" in header[1]
    assert any("A dataset counts only when every ranked model has a value" in h for h in header)
    back = pd.read_csv(io.StringIO(text), comment="#")
    assert list(back.columns) == CSV_COLUMNS
    assert back.set_index("model").loc[L14, "label"] == "DINOv2 ViT-L/14"
    assert back.set_index("model")["n_seg_datasets"].to_dict() == {CLIP: 1, L14: 1}
    assert "DEMO" not in figure1_csv(rank_models(recs[:1]))


def test_empty_run_gives_empty_ranking():
    r = rank_models([])
    assert r.table.empty and list(r.table.columns) == RANK_COLUMNS and not r.is_demo


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=6, max_size=6),
                min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_rank_properties(table, rnd):
    datasets = ("nih", "chexpert", "sarscov2", "brain_tumor")
    rows = [cell(m, datasets[d], v) for d, row in enumerate(table) for m, v in zip(FIGURE1_MODELS, row)]
    r = rank_figure1(pd.DataFrame(rows)).table
    n = len(FIGURE1_MODELS)
    assert math.isclose(r["cls_rank"].sum(), n * (n + 1) / 2)            # average ranks sum
    assert math.isclose(r["cls_score"].sum(), n * (n + 1) / 2)           # so do dataset scores
    best = r["cls_score"].max()
    ties = int((r["cls_score"] == best).sum())
    assert np.allclose(r.loc[r["cls_score"] == best, "cls_rank"], (1 + ties) / 2)
    rnd.shuffle(rows)                                                    # row order does not matter
    pd.testing.assert_frame_equal(rank_figure1(pd.DataFrame(rows)).table, r)
    better = [dict(c, value=1.0) if c["model"] == MAE and c["dataset"] == "nih" else c for c in rows]
    up = rank_figure1(pd.DataFrame(better)).table.set_index("model")     # improving never hurts
    assert up.loc[MAE, "cls_rank"] <= r.set_index("model").loc[MAE, "cls_rank"]


def test_fidelity_rows_of_the_figures_match_the_code():
    from radbench_core.config.fidelity import SETTINGS
    from radbench_core.report.figures import FEWSHOT_COLUMNS, FEWSHOT_REFERENCE, FEWSHOT_ROWS
    from radbench_core.report.ranking import STUDY_SEG_SIZE
    rows = {(s.area, s.name): s for s in SETTINGS if s.area.startswith("report:figure")}
    assert len(rows) == 5 and not any(s.deviation or s.key for s in rows.values())
    assert "same six" in rows["report:figure1", "models ranked"].ours and len(FIGURE1_MODELS) == 6
    assert f"seg_unet@{STUDY_SEG_SIZE}" in rows["report:figure1", "cells compared"].ours
    assert FEWSHOT_REFERENCE == L14 and [c[:2] for c in FEWSHOT_COLUMNS] == [
        (("fewshot",), "nih"), (("seg_fewshot", "scratch_fewshot"), "mc")]
    assert FEWSHOT_ROWS[0][1] == (CLIP, OCLIP, MAE, MSN)
    supervised = rows["report:figure5", "panels"].ours
    assert all(m in supervised for m in FEWSHOT_ROWS[1][1])
